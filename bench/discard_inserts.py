"""An HTTP front for a ClickHouse server that reads every INSERT's body and drops it (bench/clickhouse_bench.py
``--server-away``).

What a sink costs a sensor whose server runs on another machine, as a fleet's does, cannot be measured on a
two-core machine running the server beside it: the server's parsing and part writing take the second core
and contend with capture for the shared cache.  With this front the sensor does all of its own work (rows
batched, piped, prepared, sent over HTTP, chunked or whole), and the server does none: an insert is read to its
end, into one small buffer, and answered 200 as the server answers a stored insert.  Every other request (the
sink's set-up: version, schema, settings) is forwarded to the real server.  Not a stand-in for the server in
tests: the bench says which figures were taken this way.
"""
from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SKIP = 1 << 20       # bytes read at a time into the one buffer a connection reuses


class DiscardInserts:
    """Listens on a free loopback port (``port``) in a thread of the calling process."""

    def __init__(self, server_http_port: int) -> None:
        handler = type("Handler", (_Handler,), {"upstream": server_http_port})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"    # keep-alive, as the sink's connections are
    upstream = 0

    def log_message(self, format: str, *args: object) -> None:   # noqa: A002 - the base class's name
        pass

    def do_POST(self) -> None:   # noqa: N802 - the base class's name
        query = parse_qs(urlsplit(self.path).query).get("query", [""])[0]
        if query.lstrip().upper().startswith("INSERT"):
            self._drop_body()
            self._answer(200, b"")
        else:
            self._forward()

    def _drop_body(self) -> None:
        buffer = memoryview(bytearray(SKIP))
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while size := int(self.rfile.readline().split(b";")[0], 16):
                self._skip(buffer, size + 2)               # the chunk and its CRLF
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):   # trailers, up to the blank line
                pass
        else:
            self._skip(buffer, int(self.headers.get("Content-Length", 0)))

    def _skip(self, buffer: memoryview, n: int) -> None:
        while n > 0:
            got = self.rfile.readinto(buffer[:min(n, SKIP)])
            if not got:
                raise ConnectionError("the client closed the insert before its end")
            n -= got

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request("POST", self.path, body, headers)
            answer = conn.getresponse()
            self._answer(answer.status, answer.read())
        finally:
            conn.close()

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
