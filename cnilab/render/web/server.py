"""The page's server: the standard library's threading HTTP server and Server-Sent Events.

One page, its script and its style (shipped in the package, cnilab/render/web/static), the
current scene as JSON (/state) and a stream of scenes (/events, text/event-stream), each in
English or Korean (?lang=). Read-only: GET and HEAD, anything else 405. Every answer carries a
Content-Security-Policy that allows the page's own origin only, and no third-party URL exists
anywhere in the page. On loopback, a request that names another host is refused (a web page
elsewhere cannot reach the lab through DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Callable
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cnilab.i18n import LANGS, t

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
STATIC = {"/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
KEEPALIVE = 15.0  # seconds between SSE comments on a quiet stream (proxies, dead clients)


def asset(name: str) -> bytes:
    """A file shipped in cnilab/render/web/static."""
    return resources.files("cnilab.render.web").joinpath("static").joinpath(name).read_bytes()


class Hub:
    """The latest scene and trace, per language, and a version number streams wait on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._parts: dict[str, dict[str, Any]] = {}  # part -> lang -> data
        self._cache: dict[str, bytes] = {}
        self.version = 0
        self.closed = False

    def publish(self, part: str, by_lang: dict[str, Any]) -> None:
        """Replace one part (scene, trace) in every language; wake the streams if it changed."""
        with self._cond:
            if self._parts.get(part) == by_lang:
                return
            self._parts[part] = by_lang
            self._cache.clear()
            self.version += 1
            self._cond.notify_all()

    def data(self, lang: str) -> bytes:
        """The current page data in `lang`, as JSON."""
        with self._cond:
            if lang not in self._cache:
                body = {p: by_lang.get(lang) for p, by_lang in self._parts.items()}
                body["version"] = self.version
                self._cache[lang] = json.dumps(body, ensure_ascii=False).encode()
            return self._cache[lang]

    def wait(self, seen: int, timeout: float) -> int | None:
        """The version after `seen` once there is one; None after `timeout` or when closed."""
        with self._cond:
            self._cond.wait_for(lambda: self.version != seen or self.closed, timeout)
            return None if self.closed or self.version == seen else self.version

    def close(self) -> None:
        """End every stream."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()


def loopback(host: str) -> bool:
    """Whether `host` is a loopback address."""
    return ipaddress.ip_address(host).is_loopback


class Handler(BaseHTTPRequestHandler):
    """GET and HEAD of the page, its files, /state and /events; nothing else."""

    server: PageServer
    protocol_version = "HTTP/1.1"
    server_version, sys_version = "cnilab", ""  # no version numbers for a scanner to read

    def __getattr__(self, name: str) -> Callable[[], None]:
        if name.startswith("do_"):  # POST, PUT, DELETE, any method at all: refused
            return self._refuse
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the terminal belongs to the instructor."""

    def _headers(self, status: int, kind: str, length: int | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self._headers(status, kind, len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        self.close_connection = True

    def _host_ok(self) -> bool:
        """On loopback, only a Host header that names loopback (DNS rebinding)."""
        if not loopback(self.server.host):
            return True
        host = self.headers.get("Host") or ""
        if host.startswith("["):  # [::1]:8765
            host = host[1:].split("]", 1)[0]
        elif host.count(":") == 1:  # 127.0.0.1:8765, localhost:8765
            host = host.split(":", 1)[0]
        return host == "localhost" or (_is_ip(host) and loopback(host))

    def do_GET(self) -> None:
        """The page, its files, the state, the stream."""
        if not self._host_ok():
            self._send(HTTPStatus.MISDIRECTED_REQUEST, "text/plain", b"")
            return
        url = urlsplit(self.path)
        lang = (parse_qs(url.query).get("lang") or [self.server.lang])[0]
        lang = lang if lang in LANGS else self.server.lang
        if url.path == "/":
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", page(lang))
        elif url.path in STATIC:
            name, kind = STATIC[url.path]
            self._send(HTTPStatus.OK, kind, asset(name))
        elif url.path == "/state":
            self._send(HTTPStatus.OK, "application/json", self.server.hub.data(lang))
        elif url.path == "/events":
            self._stream(lang)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"")

    def do_HEAD(self) -> None:
        """As GET, without the body (and without a stream)."""
        if urlsplit(self.path).path == "/events":
            self._headers(HTTPStatus.OK, "text/event-stream", None)
            self.close_connection = True  # no length, no body: the end of the answer
            return
        self.do_GET()

    def _stream(self, lang: str) -> None:
        """Server-Sent Events: the whole page data now, then again at every new version."""
        hub = self.server.hub
        self._headers(HTTPStatus.OK, "text/event-stream; charset=utf-8", None)
        self.close_connection = True
        try:
            seen = hub.version
            self.wfile.write(b"data: " + hub.data(lang) + b"\n\n")
            self.wfile.flush()
            while True:
                got = hub.wait(seen, KEEPALIVE)
                if hub.closed:
                    return
                if got is None:
                    self.wfile.write(b": still here\n\n")
                else:
                    seen = got
                    self.wfile.write(b"data: " + hub.data(lang) + b"\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return  # the page was closed


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def page(lang: str) -> bytes:
    """index.html in `lang`: its language, title and the sentence shown without JavaScript."""
    html = asset("index.html").decode()
    for key in ("title", "noscript", "connecting"):
        html = html.replace("{{" + key + "}}", escape(t(f"serve.page_{key}", lang)))
    return html.replace("{{lang}}", lang).encode()


class PageServer(ThreadingHTTPServer):
    """The HTTP server, with the hub its handlers read and the language by default."""

    daemon_threads = True  # a stream open in a browser never holds up Ctrl-C
    block_on_close = False

    def __init__(self, host: str, port: int, hub: Hub, lang: str) -> None:
        self.host, self.hub, self.lang = host, hub, lang
        self.address_family = (socket.AF_INET6 if ipaddress.ip_address(host).version == 6
                                else socket.AF_INET)
        self._thread: threading.Thread | None = None
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        """http://HOST:PORT/ as a browser takes it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.server_address[1]}/"

    def start(self) -> threading.Thread:
        """Serve in a thread (the main one follows the kernel)."""
        self._thread = threading.Thread(target=self.serve_forever, name="serve", daemon=True,
                                        kwargs={"poll_interval": 0.25})
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """End the streams, stop serving, close the socket."""
        self.hub.close()
        if self._thread is not None:  # shutdown() waits for a serve_forever() that runs
            self.shutdown()
        self.server_close()
