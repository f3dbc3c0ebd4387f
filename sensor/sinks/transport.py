"""Syslog transports: UDP datagrams (RFC 5426), TCP (RFC 6587) and TLS (RFC 5425) streams.

A transport only moves bytes; framing and delivery bookkeeping live in
``sensor.sinks.syslog``.  Plain syslog has no application acknowledgement, so
a stream transport offers :meth:`StreamTransport.confirm`: a graceful close
that tells whether the receiver read everything sent on the connection.  We
half-close (TCP FIN, or a TLS close_notify) after the last byte; a receiver
that reads to the end of the stream sees it after all our data and closes its
side, which we see as end-of-file.  A receiver that dies or closes with our
bytes still unread resets the connection (or never answers) instead.
"""
from __future__ import annotations

import fcntl
import select
import socket
import ssl
import struct
import termios
import time
from typing import Protocol


class HandshakeError(Exception):
    """TLS negotiation failed: a configuration problem (certificate, CA, name), not an outage."""


class Transport(Protocol):
    stream: bool

    def open(self) -> None: ...
    def send(self, data: bytes) -> None: ...
    def broken(self) -> bool: ...
    def confirm(self, timeout: float, by_close: bool = True) -> bool: ...
    def abort(self) -> None: ...


class UdpTransport:
    """One message per datagram on a connected socket, so an ICMP port-unreachable shows up as an error."""

    stream = False

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.sock: socket.socket | None = None

    def open(self) -> None:
        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.connect(self.address)
        except OSError:
            sock.close()
            raise
        self.sock = sock

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.send(data)

    def broken(self) -> bool:
        return self.sock is None

    def confirm(self, timeout: float, by_close: bool = True) -> bool:
        return True   # nothing more can be known about a datagram once it has left

    def abort(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class StreamTransport:
    """TCP, or TLS over TCP when given an SSL context (the server certificate is verified by the context)."""

    stream = True

    def __init__(self, host: str, port: int, timeout: float, context: ssl.SSLContext | None = None,
                 server_name: str | None = None) -> None:
        self.address = (host, port)
        self.timeout = timeout
        self.context = context
        self.server_name = server_name or host
        self.sock: socket.socket | None = None

    def open(self) -> None:
        raw = socket.create_connection(self.address, timeout=self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.context is None:
            self.sock = raw
            return
        try:
            self.sock = self.context.wrap_socket(raw, server_hostname=self.server_name)
        except ssl.SSLError as exc:   # includes SSLCertVerificationError
            raw.close()
            raise HandshakeError(_describe_tls_error(exc)) from exc
        except OSError:
            raw.close()
            raise

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def broken(self) -> bool:
        """True when the receiver has closed or reset the connection (it never sends us data)."""
        sock = self.sock
        if sock is None:
            return True
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        sock.setblocking(False)   # readable: end-of-file, a reset, or (TLS 1.3) a session ticket
        try:
            return sock.recv(4096) == b""
        except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        finally:
            sock.settimeout(self.timeout)

    def confirm(self, timeout: float, by_close: bool = True) -> bool:
        """Half-close and wait for the receiver to close in turn: True if it read everything we sent.

        ``by_close=False`` is for receivers that never close a half-closed connection: it only waits
        until the receiver's TCP has acknowledged every byte (weaker: a receiver that dies with our
        bytes unread in its socket buffer loses them), then closes.
        """
        sock, self.sock = self.sock, None
        if sock is None:
            return False
        sock.settimeout(timeout)
        if not by_close:
            try:
                return _drained(sock, timeout)
            finally:
                sock.close()
        try:
            if isinstance(sock, ssl.SSLSocket):
                try:
                    sock = sock.unwrap()   # sends close_notify; returns once the peer answers in kind
                except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                    return not _error_pending(sock)   # the peer closed the TCP connection: read to the end
            sock.shutdown(socket.SHUT_WR)
            while True:
                if not sock.recv(4096):
                    return not _error_pending(sock)
        except OSError:   # reset, timeout, or the TLS layer failed
            return False
        finally:
            sock.close()

    def abort(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


def _drained(sock: socket.socket, timeout: float) -> bool:
    """Wait until the kernel's send queue is empty (SIOCOUTQ: bytes not yet acknowledged by the peer)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except OSError:
            return False
        if queued == 0:
            return not _error_pending(sock)
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def _error_pending(sock: socket.socket) -> bool:
    try:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0
    except OSError:
        return True


def _describe_tls_error(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS handshake failed: server certificate not accepted ({exc.verify_message or exc.reason})"
    return f"TLS handshake failed: {exc.reason or exc}"


def tls_context(ca_file: str | None, cert_file: str | None, key_file: str | None) -> ssl.SSLContext:
    """A client context: TLS 1.2 or later, server certificate checked against ``ca_file`` and its name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)   # CERT_REQUIRED and check_hostname by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    else:
        ctx.load_default_certs()
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file or None)
    return ctx
