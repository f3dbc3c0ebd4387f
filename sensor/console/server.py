"""The console's HTTP server: the standard library's ThreadingHTTPServer, optionally over TLS.

The standard library keeps the appliance lean (no web framework to install or patch) and is enough for a
handful of analysts: every answer is a small JSON document or page, computed from in-memory indexes.  This
module does the HTTP part only: access rules (security.Guard), static files, raw output files, and the
hand-over to the routes in api.py.
"""
from __future__ import annotations

import mimetypes
import os
import socket
import ssl
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import orjson

from otsensor.sensor.console.api import Console, Request, Response, error
from otsensor.sensor.console.pages import login_page
from otsensor.sensor.console.security import SECURITY_HEADERS, Guard

MAX_BODY = 64 << 10
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}


def static_files() -> dict[str, bytes]:
    """The console's own scripts and styles, read once: nothing else is served from the package."""
    folder = resources.files("otsensor.sensor.console").joinpath("static")
    return {f.name: f.read_bytes() for f in folder.iterdir() if os.path.splitext(f.name)[1] in STATIC_TYPES}


class ConsoleServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], console: Console, guard: Guard,
                 tls: ssl.SSLContext | None = None, verbose: bool = False) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, ConsoleHandler)
        self.console, self.guard, self.verbose = console, guard, verbose
        self.static = static_files()
        if tls is not None:
            # the handshake happens in the request's thread, so a slow client cannot hold up accept()
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)


class ConsoleHandler(BaseHTTPRequestHandler):
    server: ConsoleServer
    server_version = "otsensor-console"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 30            # an idle or stalled connection gives its thread back

    def log_message(self, format: str, *args: Any) -> None:  # the base class names the argument "format"
        if self.server.verbose:
            sys.stderr.write(f"otsensor: console: {self.address_string()} {format % args}\n")

    def do_GET(self) -> None:   # the base class dispatches on these names
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("GET", head=True)

    def do_POST(self) -> None:
        self._serve("POST")

    # -- one request ------------------------------------------------------------------------------------

    def _serve(self, method: str, head: bool = False) -> None:
        self.answered = False
        guard = self.server.guard
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        if not guard.host_ok(self.headers.get("Host")):
            return self._send(error(421, "this console answers only to its own address"), head=head)
        found = guard.session_of(self.headers.get("Cookie"))
        session, authed = found if found else (guard.new_session(False), False)
        set_cookie = None if found else session
        if method == "GET" and "token" in params:       # the printed address: trade the token for a session
            return self._token_link(url, params["token"], head)
        if path == "/favicon.ico":      # browsers ask; the console has none
            return self._send(Response(204, b"", "text/plain"), set_cookie, head)
        if path.startswith("/static/") and method == "GET":
            return self._send(self._static(path[len("/static/"):]), set_cookie, head)
        if path == "/login":
            return self._login(method, session, set_cookie, head)
        bearer = self._bearer()
        if not guard.authorized(authed, bearer):
            if path.startswith(("/api/", "/files/")):
                return self._send(error(401, "sign in first: the console needs its token"), set_cookie, head)
            return self._send(Response(303, b"", "text/plain", {"Location": "/login"}), set_cookie, head)
        body = None
        if method == "POST":
            body = self._post_body(session, bearer)
            if isinstance(body, Response):
                return self._send(body, set_cookie)
        if path.startswith("/files/") and method == "GET":
            return self._send_file(path[len("/files/"):], set_cookie, head)
        response = self.server.console.handle(Request(method, path, params, session, body))
        self._send(response or error(404, f"no page {path}"), set_cookie, head)

    def _bearer(self) -> str | None:
        value = self.headers.get("Authorization", "")
        return value[7:].strip() if value.lower().startswith("bearer ") else None

    def _post_body(self, session: str, bearer: str | None) -> Any:
        """A state change: same origin, the session's CSRF token (or the bearer token), a bounded JSON body."""
        guard = self.server.guard
        if not guard.origin_ok(self.headers.get("Origin"), self.headers.get("Host")):
            return error(403, "cross-origin request refused")
        if not (guard.csrf_ok(session, self.headers.get("X-CSRF-Token")) or guard.token_ok(bearer)):
            return error(403, "missing or wrong CSRF token")
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return error(415, "send JSON (Content-Type: application/json)")
        raw = self._read_body()
        if raw is None:
            return error(413, f"a request body is at most {MAX_BODY} bytes")
        try:
            return orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            return error(400, "the body is not JSON")

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY:
            return None
        return self.rfile.read(length)

    def _token_link(self, url: urllib.parse.SplitResult, token: str, head: bool) -> None:
        guard = self.server.guard
        if not guard.token_ok(token):
            return self._send(Response(303, b"", "text/plain", {"Location": "/login?failed=1"}), head=head)
        rest = urllib.parse.urlencode([(k, v) for k, v in urllib.parse.parse_qsl(url.query) if k != "token"])
        location = url.path + (f"?{rest}" if rest else "")
        self._send(Response(303, b"", "text/plain", {"Location": location}), guard.new_session(True), head)

    def _login(self, method: str, session: str, set_cookie: str | None, head: bool) -> None:
        guard = self.server.guard
        if method == "GET":
            failed = "failed" in urllib.parse.urlsplit(self.path).query
            page = login_page(guard.csrf_token(session), failed)
            return self._send(Response(200, page.encode(), "text/html; charset=utf-8"), set_cookie, head)
        raw = self._read_body() or b""
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode("utf-8", "replace")).items()}
        if not guard.csrf_ok(session, form.get("csrf")) or not guard.token_ok(form.get("token")):
            return self._send(Response(303, b"", "text/plain", {"Location": "/login?failed=1"}), set_cookie)
        self._send(Response(303, b"", "text/plain", {"Location": "/"}), guard.new_session(True))

    def _static(self, name: str) -> Response:
        data = self.server.static.get(name)
        if data is None:
            return error(404, "no such file")
        return Response(200, data, STATIC_TYPES[os.path.splitext(name)[1]], {"Cache-Control": "no-cache"})

    def _send_file(self, name: str, set_cookie: str | None, head: bool) -> None:
        """A raw output file, only if it is a regular file directly under DIR (no other path, no symlink out)."""
        if self.server.console.directory is None:     # a ClickHouse console without DIR has no files
            return self._send(error(404, "no such output file"), set_cookie, head)
        directory = os.path.realpath(self.server.console.directory)
        name = urllib.parse.unquote(name)
        path = os.path.realpath(os.path.join(directory, name))
        if "/" in name or name.startswith(".") or os.path.dirname(path) != directory or not os.path.isfile(path):
            return self._send(error(404, "no such output file"), set_cookie, head)
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                kind = mimetypes.guess_type(name)[0] if name.endswith(".gz") else "application/octet-stream"
                self._head(200, kind or "application/octet-stream", size, set_cookie,
                           {"Content-Disposition": f'attachment; filename="{name}"'})
                while not head and (chunk := fh.read(1 << 20)):
                    self.wfile.write(chunk)
        except OSError:     # unreadable, or gone since the check; the answer may be cut short
            if not self.answered:
                self._send(error(404, "no such output file"), set_cookie, head)

    def _send(self, response: Response, set_cookie: str | None = None, head: bool = False) -> None:
        extra = dict(response.headers)
        if response.content_type.startswith("application/json"):
            extra.setdefault("Cache-Control", "no-store")
        self._head(response.status, response.content_type, len(response.body), set_cookie, extra)
        if not head:
            self.wfile.write(response.body)

    def _head(self, status: int, content_type: str, length: int, set_cookie: str | None,
              extra: dict[str, str]) -> None:
        self.answered = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in {**SECURITY_HEADERS, **extra}.items():
            self.send_header(name, value)
        if self.server.guard.tls:
            self.send_header("Strict-Transport-Security", "max-age=31536000")
        if set_cookie:
            self.send_header("Set-Cookie", self.server.guard.cookie(set_cookie))
        self.end_headers()
