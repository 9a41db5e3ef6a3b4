"""A stand-in Kubernetes component: holds the sockets it was given, under the component's name.

Run as `python -S -I listener.py --cnilab-component=LAB/NODE/NAME --fds=3,4,...` with argv[0] set
to the component's name (what `netstat -p` shows) and sockets made by the parent inside the node's
namespace. It renames itself with prctl(PR_SET_NAME) (what `ss -p` and `ps` show), then accepts
connections on its listening sockets and keeps every connection open until the peer closes it.
Standard library only, so it starts fast and imports nothing of cnilab.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import socket
import sys

PR_SET_NAME = 15


def main(argv: list[str]) -> None:
    """Rename, tell the parent we are ready, then serve until killed."""
    # sys.argv[0] is this script's path; the component's name ends the token LAB/NODE/NAME.
    token = next(a for a in argv[1:] if a.startswith("--cnilab-component="))
    name = token.rsplit("/", 1)[-1].encode()
    # The kernel keeps 15 bytes of a task name: kube-controller-manager shows as kube-controller.
    ctypes.CDLL(None).prctl(PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
    fds = [int(f) for a in argv[1:] if a.startswith("--fds=") for f in a[6:].split(",") if f]
    ready = next((int(a[8:]) for a in argv[1:] if a.startswith("--ready=")), None)
    sel = selectors.DefaultSelector()
    for fd in fds:
        given = socket.socket(fileno=fd)
        listening = given.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        sel.register(given, selectors.EVENT_READ, listening)
    if ready is not None:
        # The parent may be gone (an `up` killed meanwhile): serve anyway, `down` finds us by
        # our token. Python ignores SIGPIPE, so the write raises instead of killing us.
        with contextlib.suppress(BrokenPipeError):
            os.write(ready, b"1")
        os.close(ready)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)  # only sockets are registered
            if key.data:
                conn, _ = sock.accept()
                sel.register(conn, selectors.EVENT_READ, False)
                continue
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if not data:  # the peer closed: so do we
                sel.unregister(sock)
                sock.close()


if __name__ == "__main__":
    main(sys.argv)
