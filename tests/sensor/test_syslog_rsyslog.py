"""The syslog sink against a real rsyslogd on loopback: UDP, TCP, TLS and mutual TLS, every format.

What rsyslog writes (the raw message and its own parse of the header) is read
back with the spec-based parsers in ``siem_parsers``.  Skips when rsyslogd,
rsyslog-gnutls or certtool is missing (CI installs them: see .ci/run).
"""
from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from otsensor.sensor.config import SinkConfig
from otsensor.sensor.sinks.syslog import SinkError, SyslogSink
from tests.sensor.alert_checks import CHECKS, alert_id_of, check_cef_by_liblognorm, check_plain, check_sd_by_rsyslog
from tests.sensor.alert_samples import make_alert, tricky_alerts
from tests.sensor.siem_parsers import parse_rfc5424
from tests.sensor.ports import free_port
from tests.sensor.syslog_receiver import Rsyslog

FORMATS = ("cef", "leef", "json", "rfc5424")
SITE = 'north "A" ]\\ [x] é'   # every character RFC 5424 6.3.3 escapes, and non-ASCII
KINDS = ("udp", "tcp", "tls", "mtls")


def config(rs: Rsyslog, kind: str, certs, **kw) -> SinkConfig:
    mutual = kind == "mtls"
    return SinkConfig(url=rs.url(kind), ca_file=certs.ca, cert_file=certs.client_cert if mutual else None,
                      key_file=certs.client_key if mutual else None, **kw)


def alerts_for(app: str, n: int) -> list[dict]:
    return [a.to_dict() for a in tricky_alerts(app)] + [make_alert(100 + i, app=app).to_dict() for i in range(n)]


def check_receiver_reads_payload(fmt: str, msg: dict, parsed: dict) -> None:
    """What receivers key on: CEF and LEEF routed by how the message starts, JSON parsed by mmjsonparse.
    Only the plain-text format keeps RFC 5424's byte order mark, which would defeat both."""
    assert msg["bom"] is (fmt == "rfc5424")
    if fmt in ("cef", "leef"):
        assert parsed.get("starts_with") == f"{fmt.upper()}:", parsed
    if fmt == "json":
        assert parsed["json"]["event"]["kind"] == "alert" and "@timestamp" in parsed["json"], parsed["json"]


def first_seen_ids(fmt: str, rows: list[dict]) -> list[str]:
    """Alert ids in order of first arrival (a replay after a failure may repeat some: receivers dedup)."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.setdefault(alert_id_of(fmt, parse_rfc5424(row["raw"])), None)
    return list(seen)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_alert_arrives_and_parses_back(receiver, certs, tmp_path, kind: str, fmt: str) -> None:
    app = f"all-{kind}-{fmt}"
    cfg = config(receiver, kind, certs, format=fmt, app_name=app, hostname="sensor-7", facility="local3",
                 confirm_every=7, structured_data={"site@32473": {"plant": SITE}})
    sink = SyslogSink(cfg, str(tmp_path))
    sink.start()
    rows = alerts_for(app, 30)
    for row in rows:
        sink.write("alerts", row)
    sink.write("modbus", {"ts": 1.0, "func": "read"})   # records=false: not sent
    sink.close()
    report = sink.report()
    assert (report["accepted"], report["delivered"], report["spooled"], report["dropped"]) == (len(rows),) * 2 + (0, 0)
    got = receiver.wait_for(kind, app, len(rows))
    assert len(got) == len(rows), f"{kind}/{fmt}: {len(got)} of {len(rows)} arrived"
    by_id = {row["id"]: row for row in rows}
    for received in got:
        msg = parse_rfc5424(received["raw"])
        # rsyslog's own reading of our header agrees with ours
        assert (received["app"], received["host"], received["msgid"]) == (app, "sensor-7", "alerts")
        assert int(received["pri"]) == msg["pri"] and msg["pri"] // 8 == 19
        check_receiver_reads_payload(fmt, msg, received["parsed"])
        row = by_id[alert_id_of(fmt, msg)]
        assert msg["pri"] % 8 == {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}[row["severity"]]
        if fmt == "rfc5424":
            check_plain(msg, row)
            check_sd_by_rsyslog(received["parsed"], row)
        else:
            CHECKS[fmt](msg["msg"], row)
        if fmt == "cef":
            check_cef_by_liblognorm(received["parsed"], row)
        assert received["parsed"]["rfc5424-sd"]["site@32473"] == {"plant": SITE}   # RFC 5424 6.3.3 escaping
    assert first_seen_ids(fmt, got) == [row["id"] for row in rows]


@pytest.mark.parametrize("kind", ["udp", "tcp"])
def test_rfc3164_for_old_receivers(receiver, certs, tmp_path, kind: str) -> None:
    app = f"bsd{kind}"
    sink = SyslogSink(config(receiver, kind, certs, format="cef", header="rfc3164", app_name=app,
                             hostname="oldhost"), str(tmp_path))
    sink.start()
    rows = alerts_for(app, 5)
    for row in rows:
        sink.write("alerts", row)
    sink.close()
    got = receiver.wait_for(kind, app, len(rows))
    assert len(got) == len(rows) and all(r["host"] == "oldhost" for r in got)
    # rsyslog keeps the space after "TAG:" in the BSD msg property (its documented 3164 behaviour)
    assert all(r["msg"].lstrip(" ").startswith("CEF:0|otsensor|") for r in got), got[0]
    bsd = re.compile(rf"<\d{{1,3}}>[A-Z][a-z]{{2}} [ \d]\d \d\d:\d\d:\d\d oldhost {app}\[\d+\]: CEF:0\|")
    assert all(bsd.match(r["raw"]) for r in got), got[0]["raw"]
    by_id = {row["id"]: row for row in rows}
    for r in got:
        check_cef_by_liblognorm(r["parsed"], by_id[r["parsed"]["cef"]["Extensions"]["externalId"]])


def test_records_flag_sends_protocol_records(receiver, certs, tmp_path) -> None:
    sink = SyslogSink(config(receiver, "tcp", certs, format="json", app_name="recs", records=True), str(tmp_path))
    sink.start()
    for i in range(5):
        sink.write("modbus", {"ts": 1_764_000_000.0 + i, "uid": f"C{i}", "id.orig_h": "10.0.0.1", "id.orig_p": 1,
                              "id.resp_h": "10.0.0.2", "id.resp_p": 502, "func": "read_coils"})
    sink.close()
    got = receiver.wait_for("tcp", "recs", 5)
    assert [r["msgid"] for r in got] == ["modbus"] * 5


@pytest.mark.parametrize("outage", ["graceful", "hang-then-crash"])
@pytest.mark.parametrize("kind", ["tcp", "tls"])
def test_receiver_outage_loses_nothing(own_receiver, certs, tmp_path, kind: str, outage: str) -> None:
    """The receiver goes away mid-stream and comes back; every alert arrives, in order.

    "graceful": rsyslog is stopped (SIGTERM) at alert 100 and started again at 200.
    "hang-then-crash": it stops reading at 100 (SIGSTOP: what we send piles up in its socket buffer
    and is acknowledged by its kernel), is killed at 150 (that data is lost) and restarted at 200.
    Only re-sending from the last confirmed position recovers the alerts sent during the hang.
    """
    app = f"outage-{kind}-{outage}"
    cfg = config(own_receiver, kind, certs, format="cef", app_name=app, confirm_every=25, confirm_interval=0.3,
                 backoff_initial=0.05, backoff_max=0.4, connect_timeout=0.5)
    sink = SyslogSink(cfg, str(tmp_path))
    sink.start()
    rows = [make_alert(i, app=app).to_dict() for i in range(300)]
    events = {100: own_receiver.stop, 200: own_receiver.start} if outage == "graceful" else \
        {100: own_receiver.freeze, 150: own_receiver.crash, 200: own_receiver.start}
    for i, row in enumerate(rows):
        if i in events:
            events[i]()
        sink.write("alerts", row)
        time.sleep(0.003)
    sink.close()
    report = sink.report()
    assert report["connect_failures"] + report["reconnects"] > 1, report   # the outage was seen ...
    assert (report["delivered"], report["spooled"], report["dropped"]) == (300, 0, 0), report
    got = own_receiver.wait_for(kind, app, 300)
    assert first_seen_ids("cef", got) == [r["id"] for r in rows]   # ... and nothing lost, in order


def test_spool_survives_a_sensor_restart(own_receiver, certs, tmp_path) -> None:
    app = "survive"
    cfg = config(own_receiver, "tls", certs, format="json", app_name=app, drain_timeout=0.3, backoff_initial=0.05)
    own_receiver.stop()
    first = SyslogSink(cfg, str(tmp_path / "spool"))
    first.start()
    rows = [make_alert(i, app=app).to_dict() for i in range(50)]
    for row in rows[:40]:
        first.write("alerts", row)
    first.close()
    assert (first.report()["delivered"], first.report()["spooled"]) == (0, 40)

    own_receiver.start()
    second = SyslogSink(cfg, str(tmp_path / "spool"))   # a new process would build exactly this
    assert second.report()["from_previous_run"] == 40
    second.start()
    for row in rows[40:]:
        second.write("alerts", row)
    second.close()
    assert (second.report()["delivered"], second.report()["spooled"]) == (50, 0)
    got = own_receiver.wait_for("tls", app, 50)
    assert first_seen_ids("json", got) == [r["id"] for r in rows]


def test_wrong_ca_is_a_handshake_error_naming_the_sink(receiver, certs, tmp_path) -> None:
    sink = SyslogSink(SinkConfig(url=receiver.url("tls"), name="soc-tls", ca_file=certs.other_ca), str(tmp_path))
    with pytest.raises(SinkError) as err:
        sink.start()
    assert "sink 'soc-tls'" in str(err.value) and "certificate" in str(err.value)
    sink.close()


def test_certificate_name_mismatch_is_a_handshake_error(receiver, certs, tmp_path) -> None:
    sink = SyslogSink(SinkConfig(url=receiver.url("tls"), name="soc-name", ca_file=certs.ca,
                                 server_name="siem.example.org"), str(tmp_path))
    with pytest.raises(SinkError) as err:
        sink.start()
    assert "sink 'soc-name'" in str(err.value) and "siem.example.org" in str(err.value)
    sink.close()


def test_drop_counter_with_a_tiny_spool(tmp_path) -> None:
    port = free_port(socket.SOCK_STREAM)   # nothing listens here
    sink = SyslogSink(SinkConfig(url=f"tcp://127.0.0.1:{port}", name="tiny", spool_max_bytes=3000,
                                 drain_timeout=0.2, backoff_initial=0.05), str(tmp_path))
    sink.start()
    for i in range(50):
        sink.write("alerts", make_alert(i).to_dict())
    sink.close()
    r = sink.report()
    assert r["dropped"] > 0 and r["accepted"] + r["dropped"] == 50 and r["spooled"] == r["accepted"], r
    assert r["delivered"] == 0 and "refused" in (r["last_error"] or "").lower()


def test_tiny_spool_with_a_healthy_receiver_drops_nothing(receiver, certs, tmp_path) -> None:
    """Unconfirmed messages fill a small spool: the sink confirms early instead of dropping."""
    sink = SyslogSink(config(receiver, "tcp", certs, app_name="smallspool", spool_max_bytes=4000), str(tmp_path))
    sink.start()
    rows = [make_alert(i, app="smallspool").to_dict() for i in range(60)]
    for row in rows:
        sink.write("alerts", row)
    sink.close()
    assert (sink.report()["dropped"], sink.report()["delivered"]) == (0, 60), sink.report()
    assert first_seen_ids("cef", receiver.wait_for("tcp", "smallspool", 60)) == [r["id"] for r in rows]


class StubbornReceiver:
    """A TCP receiver that reads octet-counted messages but never closes a half-closed connection."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.data = bytearray()
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        while chunk := conn.recv(65536):
            with self.lock:
                self.data += chunk
        # end of stream: deliberately keep the connection open

    def messages(self) -> list[bytes]:
        out, buf = [], bytes(self.data)
        while buf:
            length, _, rest = buf.partition(b" ")
            out.append(rest[:int(length)])
            buf = rest[int(length):]
        return out

    def close(self) -> None:
        self.server.close()
        for conn in self.conns:
            conn.close()


@pytest.mark.parametrize("mode", ["close", "tcp"])
def test_receiver_that_never_closes(tmp_path, mode: str) -> None:
    stub = StubbornReceiver()
    try:
        sink = SyslogSink(SinkConfig(url=f"tcp://127.0.0.1:{stub.port}", confirm=mode, confirm_every=10,
                                     connect_timeout=0.3, drain_timeout=1.0), str(tmp_path))
        sink.start()
        rows = [make_alert(i).to_dict() for i in range(25)]
        for row in rows:
            sink.write("alerts", row)
        sink.close()
        report = sink.report()
        ids = [alert_id_of("cef", parse_rfc5424(m.decode())) for m in stub.messages()]
        if mode == "tcp":   # confirmed once its TCP acknowledged every byte
            assert ids == [r["id"] for r in rows] and (report["delivered"], report["spooled"]) == (25, 0), report
        else:   # without a close nothing can be confirmed: all kept for later, and the report says why
            assert report["delivered"] == 0 and report["spooled"] == 25 and 'confirm = "tcp"' in report["last_error"]
    finally:
        stub.close()


def test_poll_confirms_and_retries_without_new_alerts(own_receiver, certs, tmp_path) -> None:
    """A live sensor calls poll(): the last alerts are confirmed, and a spool is replayed, with no new row."""
    sink = SyslogSink(config(own_receiver, "tcp", certs, app_name="poll", confirm_interval=0.1,
                             backoff_initial=0.05), str(tmp_path))
    sink.start()
    rows = [make_alert(i, app="poll").to_dict() for i in range(6)]
    for row in rows[:3]:
        sink.write("alerts", row)
    time.sleep(0.15)
    sink.poll()
    assert sink.report()["delivered"] == 3
    own_receiver.stop()
    for row in rows[3:]:
        sink.write("alerts", row)
    own_receiver.start()
    deadline = time.monotonic() + 5
    while sink.report()["delivered"] < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
        sink.poll()
    assert sink.report()["delivered"] == 6, sink.report()
    assert first_seen_ids("cef", own_receiver.wait_for("tcp", "poll", 6)) == [r["id"] for r in rows]
    sink.close()


@pytest.mark.parametrize("fmt", ("cef", "json"))
def test_a_bom_asked_for_is_sent_and_defeats_the_receivers_rules(receiver, certs, tmp_path, fmt: str) -> None:
    app = f"bom-{fmt}"
    sink = SyslogSink(config(receiver, "tcp", certs, format=fmt, app_name=app, bom=True), str(tmp_path))
    sink.start()
    sink.write("alerts", make_alert(1, app=app).to_dict())
    sink.close()
    (got,) = receiver.wait_for("tcp", app, 1)
    assert parse_rfc5424(got["raw"])["bom"] and got["msg"].startswith("\ufeff")
    assert "starts_with" not in got["parsed"] and "event" not in got["parsed"]["json"]
