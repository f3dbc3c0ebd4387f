"""Inserts over ClickHouse's HTTP interface: a batch's JSON lines as ``INSERT ... FORMAT JSONEachRow``.

The server parses the lines (in C++), so the delivery process does not build column blocks in Python.  The
set-up's queries (version, schema, settings: sensor/clickhouse/connection.py) go the same way (``execute``),
so the delivery process never imports clickhouse-driver (a quarter of a second of CPU a run).  The
body is compressed in ClickHouse's own block format (``decompress=1``: LZ4 or ZSTD blocks, each with its
CityHash128 checksum, what the native protocol sends), which every server version reads; settings travel
as URL parameters.  HTTPS and HTTP Basic credentials as configured.  One keep-alive connection; any error
closes it, and the caller decides whether to retry (sensor/clickhouse/sink.py).
"""
from __future__ import annotations

import base64
import http.client
import re
import ssl
import struct
import time
from typing import Any
from urllib.parse import urlencode

import orjson

from otsensor.sensor.clickhouse.connection import Target, compression
from otsensor.sensor.config import ClickHouseConfig

BLOCK_BYTES = 1 << 20          # uncompressed bytes per compressed block (the server's default block size)
_METHOD = {"lz4": 0x82, "zstd": 0x90}
_HEADER = struct.Struct("<BII")          # method, compressed size with this header, uncompressed size
_CHECKSUM = struct.Struct("<QQ")
_CODE = re.compile(rb"Code: (\d+)")


class HttpServerError(Exception):
    """The server answered the insert with an error; ``code`` is ClickHouse's error code (0 if none given)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _compressor(method: str) -> Any:
    if method == "lz4":
        from lz4 import block
        return lambda data: block.compress(data, store_size=False)
    import zstd
    return lambda data: zstd.compress(data, 1)


class HttpInserter:
    """Sends bodies of JSON lines to one table at a time; see the module docstring."""

    def __init__(self, cfg: ClickHouseConfig, target: Target) -> None:
        self.target = target
        self.timeout = cfg.send_timeout
        self.connect_timeout = cfg.connect_timeout
        self.port = cfg.http_port or (8443 if target.secure else 8123)
        self.method = _METHOD.get(compression(cfg, target))
        self.compress = _compressor(compression(cfg, target)) if self.method else None
        self.context = _tls_context(cfg) if target.secure else None
        self.server_name = cfg.server_name
        token = base64.b64encode(f"{target.user}:{target.password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/octet-stream"}
        self.conn: http.client.HTTPConnection | None = None
        self.compress_cpu = 0.0        # CPU seconds of this thread spent compressing (the delivery's parts)

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = self._connect()
        return self.conn

    def _connect(self) -> http.client.HTTPConnection:
        """Connected within ``connect_timeout`` (a server away is found out as soon as over the native port),
        then ``send_timeout`` for each request."""
        if self.context is not None:
            conn: http.client.HTTPConnection = _HTTPS(self.target.host, self.port, timeout=self.connect_timeout,
                                                      context=self.context, server_name=self.server_name)
        else:
            conn = http.client.HTTPConnection(self.target.host, self.port, timeout=self.connect_timeout)
        try:
            conn.connect()
        except BaseException:
            conn.close()
            raise
        conn.sock.settimeout(self.timeout)
        conn.timeout = self.timeout
        return conn

    def open_stream(self, query: str, settings: dict[str, Any]) -> http.client.HTTPConnection:
        """A connection of its own with an insert's request line and headers sent, its body to follow in
        chunks (``send_chunk``, then ``end_stream``): the server parses the rows as they come (stream.py)."""
        params = {"query": query, **settings}
        if self.compress is not None:
            params["decompress"] = 1
        conn = self._connect()
        try:
            conn.putrequest("POST", "/?" + urlencode(params), skip_accept_encoding=True)
            for name, value in self.headers.items():
                conn.putheader(name, value)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
        except BaseException:
            conn.close()
            raise
        return conn

    def send_chunk(self, conn: http.client.HTTPConnection, rows: bytes) -> float:
        """Part of a streamed insert's body: JSON lines, a newline put after the last; compressed as configured.
        Returns the CPU seconds of the calling thread spent compressing it."""
        spent = 0.0
        if self.compress is not None:
            started = time.thread_time()
            data, end = self._framed(rows + b"\n"), b"\r\n"
            spent = time.thread_time() - started
        else:
            data, end = rows, b"\n\r\n"
        # one write: no small segment left waiting for an acknowledgement
        conn.send(b"".join((b"%x\r\n" % (len(data) + len(end) - 2), data, end)))
        return spent

    def end_stream(self, conn: http.client.HTTPConnection) -> None:
        """The streamed body's end, and the server's answer: it has stored the rows, or HttpServerError."""
        try:
            conn.send(b"0\r\n\r\n")
            response = conn.getresponse()
            answer = response.read()
        finally:
            conn.close()
        _check(response.status, answer)

    def insert(self, query: str, body: bytes, settings: dict[str, Any]) -> None:
        """Run ``query`` (an INSERT ... FORMAT) with ``body`` as its data; HttpServerError or OSError on failure."""
        params = {"query": query, **settings}
        if self.compress is not None:
            params["decompress"] = 1
            started = time.thread_time()
            body = self._framed(body)
            self.compress_cpu += time.thread_time() - started
        self._request(params, body)

    def execute(self, sql: str, params: dict[str, str] | None = None) -> list[tuple[Any, ...]]:
        """One statement, sent as the request's body (a CREATE TABLE is long for a URL); a SELECT's rows.
        What the set-up asks of clickhouse-driver's ``Client.execute`` (string parameters only)."""
        if params:
            sql = sql % {name: _literal(value) for name, value in params.items()}
        if not sql.lstrip().upper().startswith("SELECT"):
            self._request({}, sql.encode())
            return []
        answer = self._request({}, f"{sql} FORMAT JSONCompact".encode())
        return [tuple(row) for row in orjson.loads(answer)["data"]]

    def _request(self, params: dict[str, Any], body: bytes) -> bytes:
        conn = self._connection()
        try:
            conn.request("POST", "/?" + urlencode(params), body, self.headers)
            response = conn.getresponse()
            answer = response.read()
        except BaseException:
            self.close()
            raise
        if response.status != 200:
            self.close()
            _check(response.status, answer)
        return answer

    def _framed(self, data: bytes) -> bytes:
        """``data`` as ClickHouse compressed blocks: checksum, method, sizes, payload."""
        from clickhouse_cityhash.cityhash import CityHash128
        out = []
        for start in range(0, len(data), BLOCK_BYTES):
            chunk = data[start:start + BLOCK_BYTES]
            packed = self.compress(chunk)                 # type: ignore[misc]
            block = _HEADER.pack(self.method, _HEADER.size + len(packed), len(chunk)) + packed
            digest = CityHash128(block)
            out.append(_CHECKSUM.pack(digest >> 64, digest & 0xFFFFFFFFFFFFFFFF) + block)
        return b"".join(out)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _check(status: int, answer: bytes) -> None:
    """HttpServerError with the server's code and message, unless ``status`` is 200."""
    if status != 200:
        code = _CODE.search(answer)
        text = answer.decode("utf-8", "replace").strip().split(", e.what()")[0]
        raise HttpServerError(int(code.group(1)) if code else 0, f"HTTP {status}: {text}")


def _literal(value: str) -> str:
    """A string as a ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _tls_context(cfg: ClickHouseConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cfg.ca_file)
    if not cfg.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, cfg.key_file)
    return context


class _HTTPS(http.client.HTTPSConnection):
    """HTTPS whose certificate is checked against ``server_name`` when one is configured, not the URL host."""

    def __init__(self, host: str, port: int, *, timeout: float, context: ssl.SSLContext,
                 server_name: str | None) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.server_name = server_name

    def connect(self) -> None:
        if self.server_name is None:
            super().connect()
            return
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_name)  # type: ignore[attr-defined]
