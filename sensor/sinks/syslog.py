"""A syslog sink: alerts (and optionally protocol records) to a SIEM, with nothing lost.

Messages are RFC 5424 (or the old RFC 3164 header for old receivers) carrying
a CEF, LEEF, ECS JSON or plain payload (``sensor.sinks.formats``).  They go
over UDP (one per datagram), TCP with octet-counting framing (RFC 6587 3.4.1)
or TLS (RFC 5425, same framing).

Delivery: every accepted message is first appended to the sink's spool
(``sensor.sinks.spool``), then sent.  A stream connection is confirmed by a
graceful close every ``confirm_every`` messages or ``confirm_interval``
seconds and at the end (see ``sensor.sinks.transport``); only then does the
spool's acknowledged position move.  When the receiver goes away, the sink
reconnects with exponential backoff and re-sends from the acknowledged
position, in order, so a message may arrive twice but is never lost; alerts
carry a stable id (CEF externalId, LEEF alertId, ECS event.id) for the
receiver to drop the duplicate.  UDP cannot be confirmed: a datagram counts as
delivered once sent.
"""
from __future__ import annotations

import os
import re
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from otsensor.baselines.alerts import SEVERITY_RANK
from otsensor.sensor import __version__
from otsensor.sensor.config import SinkConfig, facility_code
from otsensor.sensor.sinks.errors import SinkError
from otsensor.sensor.sinks.formats import FORMATS, iso_time, sd_params, severity_of
from otsensor.sensor.sinks.spool import Spool, SpoolError
from otsensor.sensor.sinks.transport import HandshakeError, StreamTransport, Transport, UdpTransport, tls_context

SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}   # crit, err, warning, notice, info
DEFAULT_PORTS = {"udp": 514, "tcp": 514, "tls": 6514}
BOM = b"\xef\xbb\xbf"   # RFC 5424 6.4: MSG-UTF8 starts with a byte order mark
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NOT_HEADER_SAFE = re.compile(r"[^!-~]")   # RFC 5424 header fields: PRINTUSASCII, no spaces


def parse_url(url: str) -> tuple[str, str, int]:
    """``udp://host:port``, ``tcp://host:port`` or ``tls://host:port`` (IPv6 as ``[::1]``) -> parts."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"unsupported URL {url!r}: use udp://, tcp:// or tls://host:port")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise ValueError(f"bad port in URL {url!r}") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(f"bad URL {url!r}: expected {scheme}://host:port")
    return scheme, parts.hostname, port


def default_name(cfg: SinkConfig) -> str:
    """Stable across runs (it names the spool directory): the URL and format, made file-name safe."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", f"syslog-{cfg.url.split('://')[-1]}-{cfg.format}").strip("-")


def escape_sd_value(value: str) -> str:
    """RFC 5424 6.3.3: '"', '\\' and ']' inside PARAM-VALUE are escaped with a backslash."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def structured_data(elements: list[tuple[str, list[tuple[str, str]]]]) -> str:
    if not elements:
        return "-"
    return "".join(f"[{sd_id}" + "".join(f' {k}="{escape_sd_value(v)}"' for k, v in params) + "]"
                   for sd_id, params in elements)


def header_safe(value: str, limit: int) -> str:
    return _NOT_HEADER_SAFE.sub("_", value)[:limit] or "-"


class SyslogSink:
    """Sends the rows that pass its filter to one syslog receiver; see the module docstring."""

    def __init__(self, cfg: SinkConfig, spool_dir: str, clock=time.monotonic, wall=time.time) -> None:
        self.cfg = cfg
        self.name = cfg.name or default_name(cfg)
        self.clock, self.wall = clock, wall
        try:
            self.scheme, host, port = parse_url(cfg.url)
            self._resolve(host, port)
        except (ValueError, OSError) as exc:
            raise SinkError(f"sink {self.name!r}: {exc}") from None
        self.transport = self._transport(host, port)
        self.min_rank = SEVERITY_RANK[cfg.min_severity]
        self.formatter = FORMATS[cfg.format]
        self.facility = facility_code(cfg.facility) or 0
        self.hostname = header_safe(cfg.hostname or socket.gethostname(), 255)
        self.app_name = header_safe(cfg.app_name, 48)
        self.procid = str(os.getpid())
        self.static_sd = [(k, [(n, str(v)) for n, v in p.items()]) for k, p in cfg.structured_data.items()]
        self.spool_path = os.path.join(spool_dir, self.name)
        try:
            self.spool = Spool(self.spool_path, max_bytes=cfg.spool_max_bytes)
        except SpoolError as exc:
            raise SinkError(f"sink {self.name!r}: {exc}") from None
        self.connected = False
        self.sent_pos = self.spool.ack_pos     # spool position up to which the connection has been sent
        self.in_flight = 0                     # sent on this connection, not yet confirmed
        self.oldest_unconfirmed = 0.0
        self.next_attempt = 0.0
        self.backoff = cfg.backoff_initial
        self.counts = {"accepted": 0, "filtered": 0, "delivered": 0, "truncated": 0, "reconnects": 0,
                       "connect_failures": 0, "from_previous_run": self.spool.pending}
        self.last_error: str | None = None
        self.last_confirm_ok = False
        self.last_fsync = 0.0
        self.closed = False

    # -- set-up --------------------------------------------------------------------------------------

    @staticmethod
    def _resolve(host: str, port: int) -> None:
        try:
            socket.getaddrinfo(host, port)
        except socket.gaierror as exc:
            raise ValueError(f"cannot resolve host {host!r}: {exc.strerror}") from None

    def _transport(self, host: str, port: int) -> Transport:
        cfg = self.cfg
        if self.scheme == "udp":
            return UdpTransport(host, port)
        context = None
        if self.scheme == "tls":
            try:
                context = tls_context(cfg.ca_file, cfg.cert_file, cfg.key_file)
            except (OSError, ssl.SSLError) as exc:
                files = ", ".join(f for f in (cfg.ca_file, cfg.cert_file, cfg.key_file) if f)
                raise SinkError(f"sink {self.name!r}: cannot load TLS certificate/key ({files}): "
                                f"{getattr(exc, 'strerror', None) or exc}") from None
        return StreamTransport(host, port, cfg.connect_timeout, context, cfg.server_name)

    def start(self) -> None:
        """Connect once now, so a TLS configuration error stops the run before it starts.

        An unreachable receiver is not an error: messages wait in the spool.
        """
        try:
            self.transport.open()
        except HandshakeError as exc:
            raise SinkError(f"sink {self.name!r} ({self.cfg.url}): {exc}") from None
        except OSError as exc:
            self._failed(exc, connecting=True)
            return
        self.connected = True
        self._pump()

    # -- the Sink protocol -----------------------------------------------------------------------------

    def accepts(self, log: str, row: dict[str, Any]) -> bool:
        """Alerts at or above the minimum severity; protocol records only when the sink asks for them."""
        if log == "alerts":
            return SEVERITY_RANK.get(row.get("severity", ""), 0) >= self.min_rank
        return self.cfg.records and log != "sink_drops"

    def write(self, log: str, row: dict[str, Any]) -> None:
        if self.closed or not self.accepts(log, row):
            if log == "alerts":
                self.counts["filtered"] += 1
            return
        data = self.message(log, row)
        if self.in_flight and self.connected and not self.spool.fits(len(data)):
            self._confirm()   # what the receiver has read need not be kept: free the spool before dropping
        caught_up = self.connected and self.sent_pos == self.spool.end
        if not self.spool.append(data):
            return   # counted by the spool as dropped
        self.counts["accepted"] += 1
        if caught_up:
            self._send_one(data)
        else:
            self._pump()
        if not self.connected:
            self._keep_safe()

    def _keep_safe(self) -> None:
        """While the receiver is away the spool is the only copy: fsync it at most every second.

        (Each append is already in the OS, so a crash of the sensor loses nothing; this covers a power cut.)
        """
        now = self.clock()
        if now - self.last_fsync >= 1.0:
            self.spool.sync()
            self.last_fsync = now

    def flush(self) -> None:
        self.spool.sync()

    def poll(self) -> None:
        """For a long-running sensor, call every second or so: confirms the last messages and retries the
        spool when no new row comes to do it (an offline run needs none: close() does both)."""
        if self.closed:
            return
        if self.connected and self.in_flight and self.clock() - self.oldest_unconfirmed >= self.cfg.confirm_interval:
            self._confirm()
        if self.spool.pending and not (self.connected and self.sent_pos == self.spool.end):
            self._pump()

    # -- messages ------------------------------------------------------------------------------------

    def message(self, log: str, row: dict[str, Any]) -> bytes:
        sev = severity_of(log, row)
        pri = self.facility * 8 + SYSLOG_SEVERITY[sev]
        text = self.formatter(log, row, __version__, self.hostname)
        msgid = header_safe(log, 32)
        if self.cfg.header == "rfc3164":
            data = self._rfc3164(pri, text)
        else:
            sd = list(self.static_sd)
            if self.cfg.format == "rfc5424":
                sd.append((self.cfg.sd_id, sd_params(log, row)))
            head = (f"<{pri}>1 {iso_time(self.wall())} {self.hostname} {self.app_name} {self.procid} {msgid} "
                    f"{structured_data(sd)} ")
            data = head.encode() + (BOM if self.cfg.with_bom else b"") + text.encode("utf-8")
        if self.scheme == "udp" and len(data) > self.cfg.max_message_size:
            self.counts["truncated"] += 1
            data = data[:self.cfg.max_message_size].decode("utf-8", "ignore").encode("utf-8")
        return data

    def _rfc3164(self, pri: int, text: str) -> bytes:
        """RFC 3164 4.1: <PRI>Mmm dd hh:mm:ss HOSTNAME TAG[pid]: MSG, local time, one line."""
        t = time.localtime(self.wall())
        stamp = f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        text = text.replace("\r", " ").replace("\n", " ")
        return f"<{pri}>{stamp} {self.hostname} {self.app_name[:32]}[{self.procid}]: {text}".encode()

    def _frame(self, data: bytes) -> bytes:
        if not self.transport.stream:
            return data
        if self.cfg.header == "rfc3164":
            return data + b"\n"   # RFC 6587 3.4.2 non-transparent framing, what old receivers expect
        return b"%d " % len(data) + data   # RFC 6587 3.4.1 octet counting

    # -- delivery ------------------------------------------------------------------------------------

    def _send_one(self, data: bytes) -> None:
        try:
            if self.transport.stream and self.transport.broken():
                raise ConnectionResetError("receiver closed the connection")
            self.transport.send(self._frame(data))
        except OSError as exc:
            self._failed(exc)
            return
        self._sent(self.spool.end)

    def _sent(self, pos: tuple[int, int]) -> None:
        self.sent_pos = pos
        if not self.transport.stream:
            self.spool.ack(pos, 1, persist=False)
            self.counts["delivered"] += 1
            return
        if not self.in_flight:
            self.oldest_unconfirmed = self.clock()
        self.in_flight += 1
        if self.in_flight >= self.cfg.confirm_every or \
                self.clock() - self.oldest_unconfirmed >= self.cfg.confirm_interval:
            self._confirm()

    def _pump(self, force: bool = False) -> None:
        """(Re)connect if it is time, then send everything the spool holds past ``sent_pos``."""
        while self.connected or self._connect(force):
            if not self._send_pending():
                return

    def _send_pending(self) -> bool:
        """Send from ``sent_pos`` on; True if a confirmation closed the connection and there may be more."""
        try:
            for pos, data in self.spool.read_from(self.sent_pos):
                if self.transport.stream and self.transport.broken():
                    raise ConnectionResetError("receiver closed the connection")
                self.transport.send(self._frame(data))
                self._sent(pos)
                if not self.connected:
                    return self.last_confirm_ok
        except OSError as exc:
            self._failed(exc)
        return False

    def _connect(self, force: bool) -> bool:
        if not force and self.clock() < self.next_attempt:
            return False
        try:
            self.transport.open()
        except (OSError, HandshakeError) as exc:
            self._failed(exc, connecting=True)
            return False
        self.connected = True
        self.counts["reconnects"] += 1
        self.backoff = self.cfg.backoff_initial
        return True

    def _confirm(self) -> None:
        """Close gracefully; on success everything sent so far is acknowledged in the spool."""
        n = self.in_flight
        self.spool.sync()
        ok = self.transport.confirm(self.cfg.connect_timeout, by_close=self.cfg.confirm == "close")
        self.connected = False
        self.in_flight = 0
        self.last_confirm_ok = ok
        if ok:
            self.spool.ack(self.sent_pos, n)
            self.counts["delivered"] += n
        else:
            self._failed(ConnectionResetError(
                "receiver did not confirm the connection's messages (it reset the connection or did not close "
                f"it within {self.cfg.connect_timeout}s of the end of stream; a receiver that never closes needs "
                'confirm = "tcp")'))

    def _failed(self, exc: BaseException, connecting: bool = False) -> None:
        self.transport.abort()
        self.connected = False
        self.in_flight = 0
        self.sent_pos = self.spool.ack_pos   # unconfirmed messages are sent again, in order
        self.last_error = str(exc)
        if connecting:
            self.counts["connect_failures"] += 1
        self.next_attempt = self.clock() + self.backoff
        self.backoff = min(self.backoff * 2, self.cfg.backoff_max)

    # -- the end -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Deliver what is pending within ``drain_timeout``; what is left stays spooled for the next run."""
        if self.closed:
            return
        deadline = self.clock() + self.cfg.drain_timeout
        while self.spool.pending and self.clock() < deadline:
            if not self.connected:
                wait = min(self.next_attempt, deadline) - self.clock()
                if wait > 0:
                    time.sleep(wait)
                if not self._connect(force=True):
                    continue
            self._pump()
            if self.connected and self.transport.stream:
                self._confirm()
        self.transport.abort()
        self.connected = False
        self.spool.close()
        self.closed = True

    def report(self) -> dict[str, Any]:
        """What happened to the messages of this sink (for summary.json and the terminal)."""
        return {"name": self.name, "url": self.cfg.url, "format": self.cfg.format,
                "min_severity": self.cfg.min_severity, "records": self.cfg.records,
                **self.counts, "spooled": self.spool.pending, "dropped": self.spool.dropped,
                "spool_dir": self.spool_path, "last_error": self.last_error, "spool_error": self.spool.error}
