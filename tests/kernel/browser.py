"""A real headless browser (Debian's chromium) driven through the DevTools protocol.

The protocol speaks JSON over a WebSocket; the few lines of WebSocket a client needs (RFC 6455:
the upgrade, masked text frames out, frames in) are written here with the standard library, so
the tests need no Python package beyond cnilab's own. Chromium listens on loopback only, on a
port it picks, with a fresh profile; it is ended by its PID.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0")
START = 30.0  # seconds for chromium to start on a busy shared machine: a bound, not a claim


def chromium() -> str | None:
    """The chromium binary, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class WebSocket:
    """A WebSocket client: text frames out (masked, as a client must), whole messages in."""

    def __init__(self, url: str) -> None:
        rest = url.split("://", 1)[1]
        hostport, path = rest.split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=START)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("the browser closed the connection")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.decode(errors="replace"))

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the browser closed the connection")
            data += chunk
        return data

    def send(self, text: str) -> None:
        """One masked text frame."""
        payload = text.encode()
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x81, 0x80 | size)
        elif size < 1 << 16:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def receive(self, timeout: float) -> str:
        """The next whole text message (pings answered, fragments joined)."""
        self.sock.settimeout(timeout)
        parts: list[bytes] = []
        while True:
            first, second = self._read(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", self._read(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(size)
            opcode = first & 0x0F
            if opcode == 0x9:  # ping
                self.sock.sendall(struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\0" * 4
                                  + payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("the browser closed the connection")
            parts.append(payload)
            if first & 0x80:
                return b"".join(parts).decode()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


class Browser:
    """One chromium with one page, at a given window size."""

    def __init__(self, url: str, width: int, height: int, profile: Path) -> None:
        exe = chromium()
        assert exe is not None
        profile.mkdir(parents=True, exist_ok=True)
        self.log = profile / "chromium.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}",
                                          f"--window-size={width},{height}", "about:blank"],
                                         stdout=log, stderr=log, start_new_session=True)
        self.next_id = 0
        try:
            port = self._port(profile / "DevToolsActivePort")
            self.ws = WebSocket(self._page(port))
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
            self.call("Page.enable")
            self.call("Page.navigate", url=url)
        except BaseException:
            self.close()
            raise

    def _port(self, path: Path) -> int:
        end = time.monotonic() + START
        while time.monotonic() < end:
            if path.exists() and path.read_text().strip():
                return int(path.read_text().split()[0])
            if self.proc.poll() is not None:
                raise RuntimeError("chromium ended: " + self.log.read_text(errors="replace"))
            time.sleep(0.1)
        raise TimeoutError("chromium did not start: " + self.log.read_text(errors="replace"))

    @staticmethod
    def _page(port: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=START) as r:
            targets = json.load(r)
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")

    def send(self, method: str, **params: Any) -> int:
        """Send a command; its id (read its answer with result())."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        return self.next_id

    def result(self, call_id: int, timeout: float = START) -> Any:
        """The answer to command `call_id` (events meanwhile are skipped)."""
        end = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.receive(max(0.1, end - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(message["error"])
                return message["result"]

    def call(self, method: str, **params: Any) -> Any:
        """Send a command and wait for its answer."""
        return self.result(self.send(method, **params))

    def evaluate(self, expression: str, timeout: float = START) -> Any:
        """Run JavaScript in the page (a promise is awaited); its value."""
        found = self.result(self.send("Runtime.evaluate", expression=expression,
                                      awaitPromise=True, returnByValue=True), timeout)
        if "exceptionDetails" in found:
            raise RuntimeError(found["exceptionDetails"])
        return found["result"].get("value")

    def until(self, condition: str, timeout: float = START) -> Any:
        """Wait in the page until the JavaScript `condition` is truthy; its value."""
        return self.evaluate(f"""new Promise((resolve, reject) => {{
            const end = Date.now() + {int(timeout * 1000)};
            const look = () => {{
              let v; try {{ v = ({condition}); }} catch (e) {{ v = null; }}
              if (v) resolve(v); else if (Date.now() > end) reject(new Error("timed out"));
              else setTimeout(look, 20);
            }};
            look();
        }})""", timeout + 5)

    def screenshot(self, path: Path) -> None:
        """A PNG of the window as it is."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """End chromium (its process group: the browser and its helpers) by PID."""
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # a helper left behind in its group
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
