"""A tiny web server that runs inside a lab namespace (step 9's target), started by cnilab.

`python -m cnilab.kernel.webserver --netns blue --port 80 --body TEXT --pidfile F`: enters the
namespace, binds, writes its PID (so teardown can stop it by PID), then serves TEXT forever.
"""

from __future__ import annotations

import argparse
import os
import signal
import socketserver
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cnilab.runfiles import open_file

# Teardown checks /proc/PID/cmdline for it before sending a signal.
MARKER = "cnilab.kernel.webserver"


class _Server(ThreadingHTTPServer):
    def server_bind(self) -> None:
        # HTTPServer.server_bind() asks socket.getfqdn(): a DNS query from inside the lab's
        # namespace, which can only time out there (and must not try to leave the lab).
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "cnilab", self.server_address[1]


def serve(netns: str | None, port: int, body: str, pidfile: Path) -> None:
    """Enter `netns`, listen on `port`, record our PID, answer every GET with `body`."""
    if netns:
        from cnilab.kernel.netns import CLONE_NEWNET, LIBC, netns_path

        fd = os.open(netns_path(netns), os.O_RDONLY)
        if LIBC.setns(fd, CLONE_NEWNET) != 0:
            sys.exit(f"{MARKER}: cannot enter namespace {netns}")
        os.close(fd)
    payload = body.encode() + b"\n"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass  # no terminal to write to: cnilab starts us detached

    server = _Server(("0.0.0.0", port), Handler)
    # Written as root (runfiles: no planted link followed, the mode whatever the umask); new
    # (O_EXCL): the caller removed any old one.
    fd = open_file(pidfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        pidfile.unlink(missing_ok=True)


def main() -> None:
    """Command-line entry (used only by cnilab itself)."""
    parser = argparse.ArgumentParser(prog=MARKER)
    parser.add_argument("--netns")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", required=True)
    parser.add_argument("--pidfile", type=Path, required=True)
    args = parser.parse_args()
    serve(args.netns, args.port, args.body, args.pidfile)


if __name__ == "__main__":
    main()
