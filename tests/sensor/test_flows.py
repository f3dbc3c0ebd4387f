"""Flows end to end through the pipeline: originator choice, conn states, uids, caps, command-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from scapy.all import IP, TCP, UDP, Ether, Raw, wrpcap  # type: ignore

from otsensor.sensor.analyze import analyze
from otsensor.sensor.pipeline import Limits

REQ = bytes.fromhex("0001 0000 0006 01 03 0000 0002")
RESP = bytes.fromhex("0001 0000 0007 01 03 04 000a 000b")
HMI, PLC = "10.10.1.20", "10.10.1.10"


def tcp_session(client=HMI, server=PLC, sport=40000, handshake=True, close=True, t0=1000.0):
    """A Modbus exchange as real stacks send it, with its timestamps."""
    c2s = dict(src=client, dst=server)
    s2c = dict(src=server, dst=client)
    pkts = []
    if handshake:
        pkts += [IP(**c2s) / TCP(sport=sport, dport=502, flags="S", seq=100),
                 IP(**s2c) / TCP(sport=502, dport=sport, flags="SA", seq=500, ack=101),
                 IP(**c2s) / TCP(sport=sport, dport=502, flags="A", seq=101, ack=501)]
    pkts += [IP(**c2s) / TCP(sport=sport, dport=502, flags="PA", seq=101, ack=501) / Raw(REQ),
             IP(**s2c) / TCP(sport=502, dport=sport, flags="PA", seq=501, ack=113) / Raw(RESP)]
    if close:
        pkts += [IP(**c2s) / TCP(sport=sport, dport=502, flags="FA", seq=113, ack=514),
                 IP(**s2c) / TCP(sport=502, dport=sport, flags="FA", seq=514, ack=114),
                 IP(**c2s) / TCP(sport=sport, dport=502, flags="A", seq=114, ack=515)]
    frames = []
    for i, p in enumerate(pkts):
        f = Ether(src="00:1b:1b:00:00:01" if p[IP].src == PLC else "00:0c:29:00:00:02") / p
        f.time = t0 + i * 0.01
        frames.append(f)
    return frames


def run(tmp_path, frames, **kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    pcap = tmp_path / "in.pcap"
    wrpcap(str(pcap), frames)
    out = tmp_path / "out"
    result = analyze([str(pcap)], str(out), quiet=True, **kw)
    return result, out


def rows(out, log):
    path = out / f"{log}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_full_session_conn_and_modbus(tmp_path):
    result, out = run(tmp_path, tcp_session())
    [conn] = rows(out, "conn")
    assert (conn["id.orig_h"], conn["id.resp_h"], conn["id.resp_p"]) == (HMI, PLC, 502)
    assert conn["service"] == "modbus" and conn["conn_state"] == "SF"
    assert (conn["orig_pkts"], conn["resp_pkts"]) == (5, 3)
    assert (conn["orig_bytes"], conn["resp_bytes"]) == (len(REQ), len(RESP))
    [txn] = rows(out, "modbus")
    assert txn["uid"] == conn["uid"] and txn["matched"] and txn["response_values"] == [10, 11]
    assets = {a["ip"]: a for a in json.loads((out / "assets.json").read_text())["assets"]}
    assert assets[PLC]["role"] == "plc_rtu" and assets[HMI]["role"] == "hmi_scada"
    assert assets[PLC]["macs"][0]["vendor"].startswith("Siemens")
    graph = json.loads((out / "graph.json").read_text())
    [edge] = [e for e in graph["edges"] if e["protocol"] == "modbus"]
    assert (edge["source"], edge["target"]) == (HMI, PLC)
    assert edge["ranges_read"] == {"holding_registers": [[0, 1]]}


def test_uids_are_stable_across_runs(tmp_path):
    _, out1 = run(tmp_path / "a", tcp_session())
    _, out2 = run(tmp_path / "b", tcp_session())
    assert rows(out1, "conn")[0]["uid"] == rows(out2, "conn")[0]["uid"]


def test_mid_stream_pickup_uses_the_server_port(tmp_path):
    frames = tcp_session(handshake=False, close=False)[::-1]  # response seen first
    _, out = run(tmp_path, frames)
    [conn] = rows(out, "conn")
    assert (conn["id.orig_h"], conn["id.resp_p"], conn["conn_state"]) == (HMI, 502, "OTH")
    assert conn["service"] == "modbus"


def test_syn_decides_direction_even_on_unknown_ports(tmp_path):
    frames = [Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=50000, dport=40000, flags="S")]
    frames[0].time = 1.0
    _, out = run(tmp_path, frames)
    [conn] = rows(out, "conn")
    assert (conn["id.orig_h"], conn["id.orig_p"], conn["conn_state"]) == ("10.0.0.1", 50000, "S0")


def test_modbus_on_a_non_standard_port_is_found_by_content(tmp_path):
    frames = []
    for i, p in enumerate([IP(src=HMI, dst=PLC) / TCP(sport=40001, dport=5020, flags="PA", seq=1) / Raw(REQ),
                           IP(src=PLC, dst=HMI) / TCP(sport=5020, dport=40001, flags="PA", seq=1) / Raw(RESP)]):
        f = Ether() / p
        f.time = 10.0 + i
        frames.append(f)
    _, out = run(tmp_path, frames)
    assert rows(out, "conn")[0]["service"] == "modbus"
    assert len(rows(out, "modbus")) == 1


def test_non_modbus_on_port_502_is_not_reported_as_modbus(tmp_path):
    f = Ether() / IP(src=HMI, dst=PLC) / TCP(sport=40002, dport=502, flags="PA") / Raw(b"GET / HTTP/1.1\r\n\r\n")
    f.time = 1.0
    _, out = run(tmp_path, [f])
    assert rows(out, "conn")[0]["service"] is None
    assert rows(out, "modbus") == []


def test_flow_cap_evicts_and_counts(tmp_path):
    frames = []
    for i in range(50):
        f = Ether() / IP(src=f"10.0.{i}.1", dst="10.9.9.9") / UDP(sport=1000 + i, dport=9999) / Raw(b"x")
        f.time = 1.0 + i * 0.001
        frames.append(f)
    result, out = run(tmp_path, frames, limits=Limits(max_flows=10))
    assert result.stats["flows_evicted"] >= 40
    assert len(rows(out, "conn")) == 50  # evicted flows are still written, not lost


def test_idle_flows_time_out_on_capture_time(tmp_path):
    early = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / Raw(b"a")
    early.time = 0.0
    late = Ether() / IP(src="10.0.0.3", dst="10.0.0.4") / UDP(sport=1, dport=2) / Raw(b"b")
    late.time = 1000.0
    result, _ = run(tmp_path, [early, late])
    assert result.stats["flows_timed_out"] == 1


def cli(*args):
    return subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", *args], capture_output=True, text=True)


def test_cli_bad_file_is_one_error_line_and_keeps_the_good_file_output(tmp_path):
    good = tmp_path / "good.pcap"
    wrpcap(str(good), tcp_session())
    bad = tmp_path / "bad.pcap"
    bad.write_text("not a capture")
    out = tmp_path / "out"
    proc = cli("analyze", str(good), str(bad), str(tmp_path / "missing.pcap"), "-o", str(out), "-q")
    assert proc.returncode == 2
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("otsensor: error: ") for line in errors)
    assert "bad.pcap: not a pcap" in errors[0] and "missing.pcap: no such file" in errors[1]
    assert "Traceback" not in proc.stderr
    assert len(rows(out, "modbus")) == 1


def test_cli_bad_option_is_one_line(tmp_path):
    proc = cli("analyze", "x.pcap", "-o", str(tmp_path), "--max-flows", "lots")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--max-flows" in proc.stderr


def test_cli_truncated_capture_warns_where_it_stopped(tmp_path):
    good = tmp_path / "good.pcap"
    wrpcap(str(good), tcp_session())
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(good.read_bytes()[:-5])
    proc = cli("analyze", str(cut), "-o", str(tmp_path / "out"))
    assert proc.returncode == 0
    assert "warning:" in proc.stderr and "truncated at byte" in proc.stderr
    assert "Assets" in proc.stdout and len(rows(tmp_path / "out", "modbus")) == 1


@pytest.mark.parametrize("args", [["--help"], ["analyze", "--help"]])
def test_cli_help(args):
    proc = cli(*args)
    assert proc.returncode == 0 and "otsensor" in proc.stdout


def test_mid_stream_on_odd_ports_is_oriented_by_what_the_pdus_are(tmp_path):
    """Both ports below 1024 and no handshake (as in a public S7/Modbus lab capture): the response came first."""
    frames = []
    for i, p in enumerate([IP(src=PLC, dst=HMI) / TCP(sport=505, dport=3, flags="PA", seq=1) / Raw(RESP),
                           IP(src=HMI, dst=PLC) / TCP(sport=3, dport=505, flags="PA", seq=1) / Raw(REQ),
                           IP(src=PLC, dst=HMI) / TCP(sport=505, dport=3, flags="PA", seq=1 + len(RESP)) / Raw(RESP)]):
        f = Ether() / p
        f.time = 20.0 + i
        frames.append(f)
    _, out = run(tmp_path, frames)
    [conn] = rows(out, "conn")
    assert (conn["id.orig_h"], conn["id.orig_p"], conn["id.resp_h"], conn["id.resp_p"]) == (HMI, 3, PLC, 505)
    assert (conn["orig_pkts"], conn["resp_pkts"]) == (1, 2)
    assert [r["pdu_type"] for r in rows(out, "modbus")] == ["RESP", "REQ+RESP"]


def test_unrelated_captures_do_not_share_connections(tmp_path):
    """Two captures of the same 5-tuple, the second one recorded earlier: two connections, not one."""
    later, earlier = tmp_path / "later.pcap", tmp_path / "earlier.pcap"
    wrpcap(str(later), tcp_session(t0=5000.0, close=False))
    wrpcap(str(earlier), tcp_session(t0=1000.0, close=False))
    out = tmp_path / "out"
    analyze([str(later), str(earlier)], str(out), quiet=True)
    conns = rows(out, "conn")
    assert len(conns) == 2 and len(rows(out, "modbus")) == 2
    assert all(r["matched"] for r in rows(out, "modbus"))


def test_rotated_captures_continue_their_connections(tmp_path):
    frames = tcp_session(t0=1000.0)
    first, second = tmp_path / "a.pcap", tmp_path / "b.pcap"
    wrpcap(str(first), frames[:4])      # handshake and the request
    wrpcap(str(second), frames[4:])     # the response and the close, a moment later
    out = tmp_path / "out"
    analyze([str(first), str(second)], str(out), quiet=True)
    [conn] = rows(out, "conn")
    assert conn["conn_state"] == "SF" and rows(out, "modbus")[0]["matched"]


def test_a_failing_analyzer_is_contained_and_counted(tmp_path):
    class Broken:
        def observe_record(self, flow, record, op, ident):
            raise RuntimeError("analyzer bug")

        def observe_flow(self, flow):
            raise KeyError("flow bug")

    result, out = run(tmp_path, tcp_session(), extra_analyzers=[Broken()])
    assert result.stats["analyzer_errors"] == 2
    assert "analyzer bug" in result.stats["error_samples"][0]
    assert len(rows(out, "modbus")) == 1 and len(rows(out, "conn")) == 1   # records and flows still written


def test_a_reused_five_tuple_right_after_close_is_a_new_connection(tmp_path):
    first = tcp_session(t0=1000.0)
    second = tcp_session(t0=1001.0)   # same ports, one second later, well inside the close linger
    _, out = run(tmp_path, first + second)
    conns = rows(out, "conn")
    assert [c["conn_state"] for c in conns] == ["SF", "SF"] and len({c["uid"] for c in conns}) == 2
    assert len(rows(out, "modbus")) == 2


def test_a_record_that_cannot_describe_itself_is_contained(tmp_path, monkeypatch):
    from otsensor.dissectors.base import Record
    from otsensor.dissectors.modbus import ModbusTransaction
    from otsensor.dissectors.modbus.dissector import ModbusDissector

    class Broken(Record):   # stands in for the transaction (a compiled record's methods cannot be patched)
        LOG = "modbus"

        def fill_row(self, row):
            raise ValueError("fill_row bug")

    original = ModbusDissector.feed

    def feed(self, data, direction, ts):
        return [Broken(r.ts) if isinstance(r, ModbusTransaction) else r for r in original(self, data, direction, ts)]

    monkeypatch.setattr(ModbusDissector, "feed", feed)
    result, out = run(tmp_path, tcp_session())
    assert result.stats["dissector_errors"] == 1 and rows(out, "modbus") == []
    assert any("modbus.fill_row: ValueError: fill_row bug" in s for s in result.stats["error_samples"])
    assert len(rows(out, "conn")) == 1


def test_icmp_echo_request_and_reply_are_one_connection_as_in_zeek(tmp_path):
    from scapy.all import ICMP  # type: ignore
    frames = []
    for i, p in enumerate([IP(src=HMI, dst=PLC) / ICMP(type=8, id=7, seq=1),
                           IP(src=PLC, dst=HMI) / ICMP(type=0, id=7, seq=1)]):
        f = Ether() / p
        f.time = 30.0 + i * 0.001
        frames.append(f)
    _, out = run(tmp_path, frames)
    [conn] = rows(out, "conn")
    assert (conn["proto"], conn["id.orig_h"], conn["id.orig_p"], conn["id.resp_p"]) == ("icmp", HMI, 8, 0)
    assert (conn["orig_pkts"], conn["resp_pkts"], conn["conn_state"]) == (1, 1, "OTH")


@pytest.mark.parametrize("number, name", [(2, "igmp"), (47, "gre"), (50, "esp"), (89, "ospf"), (112, "vrrp"),
                                          (132, "sctp"), (253, "ip-253")])
def test_ip_protocols_without_ports_are_named_and_keyed_without_a_port(tmp_path, number, name):
    frames = []
    for i, p in enumerate([IP(src=HMI, dst=PLC, proto=number) / Raw(b"\x11" * 8),
                           IP(src=PLC, dst=HMI, proto=number) / Raw(b"\x12" * 8)]):
        f = Ether() / p
        f.time = 40.0 + i * 0.001
        frames.append(f)
    _, out = run(tmp_path, frames)
    [conn] = rows(out, "conn")
    assert conn["proto"] == name
    assets = {a["ip"]: a for a in json.loads((out / "assets.json").read_text())["assets"]}
    assert assets[HMI]["protocols_used"] == {name: 1} and assets[PLC]["protocols_served"] == {name: 1}
    [edge] = json.loads((out / "graph.json").read_text())["edges"]
    assert edge["protocol"] == name


def test_a_flows_row_prefix_is_built_once_and_follows_a_swap():
    """Every row of a flow's records starts from the flow's prefix (ts first, then the ids); when the first
    sender turns out to be the server, the prefix names the sides anew."""
    from otsensor.sensor.flows.table import Flow
    flow = Flow("Cabc", ("as sent by the HMI", "as sent by the PLC"), 6, (HMI, 40000), (PLC, 502), 0, 0, 1.0)
    head = flow.row_head()
    assert list(head) == ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"]
    assert flow.row_head() is head and {k: head[k] for k in list(head)[1:]} == flow.id_fields()
    flow.swap()
    assert flow.row_head() == {"ts": 0.0, "uid": "Cabc", "id.orig_h": PLC, "id.orig_p": 502,
                               "id.resp_h": HMI, "id.resp_p": 40000}
