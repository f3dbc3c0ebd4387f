"""`otsensor analyze --workers N`: flows sharded across processes write exactly what one process writes.

Every comparison runs the real sensor on real captures once with one process and once with 2 and 3
workers, and compares the files byte for byte (JSONL logs, assets.json, graph.json) and summary.json
counter by counter (all but the elapsed time, the flow-memory budget each worker holds a share of, and
the warning that 3 workers outnumber this machine's CPUs).
"""
from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from otsensor.sensor.analyze import analyze
from otsensor.sensor.decode import ETHERNET, TCP, UDP, Defragmenter, decode
from otsensor.sensor.parallel.shard import UNKNOWN, frame_owner, shard_of
from otsensor.sensor.pipeline import Limits
from scapy.all import (ARP, IP, TCP as TCPLayer, UDP as UDPLayer, Dot1Q, Ether, IPv6, Raw, fragment,  # type: ignore
                       wrpcap)

from bench import synth
from tests.cli import PCAPS, REPO, otsensor
from tests.corpus import manifest_files

UNCOMPARED = ("elapsed_s", "flow_memory", "warnings")
OWN_CAPTURES = sorted(PCAPS.glob("*.pcap")) + sorted((PCAPS / "scenarios").glob("*.pcap"))


def corpus_sample() -> list[Path]:
    """The two largest corpus captures under 3 MB for each of the four protocols (none without the corpus)."""
    chosen: list[Path] = []
    for token in ("modbus_adu=", "s7comm", "dnp3", "enip="):
        files = manifest_files(lambda row, t=token: t in row.get("ot_pdus_by_tshark_4.0.17", "")
                               and int(row["bytes"]) < 3_000_000)
        sized = sorted(files, key=lambda p: p.stat().st_size)
        chosen.extend(p for p in sized[-2:] if p not in chosen)
    return chosen


def run(paths: list[Path], outdir: Path, workers: int, limits: Limits | None = None) -> dict[str, bytes]:
    """Analyse ``paths`` into ``outdir``; every output file's bytes by name."""
    analyze([str(p) for p in paths], str(outdir), limits=limits, quiet=True, workers=workers,
            err=io.StringIO(), out=io.StringIO())
    return {p.name: p.read_bytes() for p in sorted(outdir.iterdir()) if p.is_file()}


def assert_same_outputs(paths: list[Path], tmp_path: Path, limits: Limits | None = None) -> dict[str, bytes]:
    one = run(paths, tmp_path / "one", 1, limits)
    assert "conn.jsonl" in one
    for workers in (2, 3):
        many = run(paths, tmp_path / f"w{workers}", workers, limits)
        assert sorted(many) == sorted(one)
        for name in one:
            if name != "summary.json":
                assert many[name] == one[name], f"{name} differs with {workers} workers"
        expected, got = json.loads(one["summary.json"]), json.loads(many["summary.json"])
        for key in expected:
            if key not in UNCOMPARED:
                assert got[key] == expected[key], f"summary.json {key} differs with {workers} workers"
    return one


@pytest.mark.parametrize("capture", OWN_CAPTURES, ids=lambda p: p.name)
def test_own_captures_write_the_same_outputs_with_workers(capture: Path, tmp_path: Path) -> None:
    assert_same_outputs([capture], tmp_path)


@pytest.mark.parametrize("capture", corpus_sample(), ids=lambda p: p.name)
def test_corpus_captures_write_the_same_outputs_with_workers(capture: Path, tmp_path: Path) -> None:
    assert_same_outputs([capture], tmp_path)


SCENARIOS = PCAPS / "scenarios"


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    baseline = tmp_path_factory.mktemp("baseline") / "baseline.json"
    proc = otsensor("baseline", "learn", SCENARIOS / "benign_learn.pcap", "--zones", SCENARIOS / "zones.toml",
                    "-o", baseline)
    assert proc.returncode == 0, proc.stderr
    return baseline


@pytest.mark.parametrize("scenario", sorted(SCENARIOS.glob("attack_*.pcap")), ids=lambda p: p.stem)
def test_alerts_with_zones_and_a_baseline_are_the_same_with_workers(scenario: Path, learned: Path,
                                                                     tmp_path: Path) -> None:
    # conn rows tagged with zones in the workers; alerts (evidence rows included) raised in the aggregator
    outputs = {}
    for workers in ("1", "2"):
        outdir = tmp_path / workers
        proc = otsensor("analyze", scenario, "-o", outdir, "-q", "--zones", SCENARIOS / "zones.toml",
                        "--baseline", learned, "--workers", workers)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        outputs[workers] = {p.name: p.read_bytes() for p in outdir.iterdir() if p.name != "summary.json"}
    assert outputs["2"] == outputs["1"]
    assert outputs["1"]["alerts.jsonl"]


def test_enip_io_after_a_forward_open_is_tied_to_it_with_workers(tmp_path: Path) -> None:
    capture = tmp_path / "enip.pcap"
    synth.build("enip", capture, 3000, 7, small=True)
    one = assert_same_outputs([capture], tmp_path)
    io_rows = [json.loads(line) for line in one["cip_io.jsonl"].splitlines()]
    assert io_rows and all(row.get("fo_connection_serial") for row in io_rows)   # the Forward Open was found


# -- a crafted capture: Modbus clients that start and fall silent over a minute, some replies fragmented --

SERVER = "192.0.2.10"


def modbus_client(n: int, start: float, polls: int, fragmented: bool) -> list:
    """One client's connection: a handshake and ``polls`` reads a second apart, then silence (no FIN)."""
    client, sport = f"192.0.2.{100 + n}", 40000 + n
    c_seq, s_seq = 1000 * n, 500000 + 1000 * n
    frames = []

    def send(t: float, src: str, dst: str, sp: int, dp: int, flags: str, seq: int, ack: int, data: bytes = b"",
             split: bool = False) -> None:
        ip = IP(src=src, dst=dst, id=(n << 8) + len(frames)) / TCPLayer(sport=sp, dport=dp, flags=flags, seq=seq,
                                                                          ack=ack) / Raw(data)
        for piece in (fragment(ip, fragsize=24) if split else [ip]):
            frame = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / piece
            frame.time = t
            frames.append(frame)

    send(start, client, SERVER, sport, 502, "S", c_seq, 0)
    send(start + 0.001, SERVER, client, 502, sport, "SA", s_seq, c_seq + 1)
    send(start + 0.002, client, SERVER, sport, 502, "A", c_seq + 1, s_seq + 1)
    c_seq, s_seq = c_seq + 1, s_seq + 1
    for i in range(polls):
        t = start + 1 + i
        request = struct.pack(">HHHBBHH", i + 1, 0, 6, 1, 3, 10 * n, 8)
        reply = struct.pack(">HHHBBB", i + 1, 0, 19, 1, 3, 16) + bytes(range(n, n + 16))
        send(t, client, SERVER, sport, 502, "PA", c_seq, s_seq, request)
        send(t + 0.01, SERVER, client, 502, sport, "PA", s_seq, c_seq + len(request), reply, split=fragmented)
        c_seq, s_seq = c_seq + len(request), s_seq + len(reply)
    return frames


def crafted_capture(path: Path) -> Path:
    frames = []
    for n in range(16):
        frames += modbus_client(n, start=1_780_000_000 + 3.5 * n, polls=3 + n % 4, fragmented=n % 3 == 0)
    frames.sort(key=lambda f: f.time)
    wrpcap(str(path), frames)
    return path


def test_flows_finished_by_sweeps_and_fragments_replay_in_order(tmp_path: Path) -> None:
    # Short timeouts: connections fall silent one after another and idle sweeps (every 10 s of capture
    # time) finish several at once, owned by different workers; their rows must interleave as in one process.
    capture = crafted_capture(tmp_path / "crafted.pcap")
    one = assert_same_outputs([capture], tmp_path, Limits(tcp_timeout=2, udp_timeout=2))
    summary = json.loads(one["summary.json"])
    assert summary["flows_timed_out"] >= 8
    assert summary["ip_fragments_reassembled"] > 0
    assert summary["records"]["modbus"] == sum(3 + n % 4 for n in range(16))
    conn = [json.loads(line) for line in one["conn.jsonl"].splitlines()]
    assert len(conn) == 16 and all(row["service"] == "modbus" for row in conn)


def test_a_second_capture_older_than_the_first_finishes_every_flow_first(tmp_path: Path) -> None:
    later = crafted_capture(tmp_path / "later.pcap")
    earlier = tmp_path / "earlier.pcap"
    synth.build("mixed", earlier, 3000, 7, small=True)   # its clock starts at the same second: behind
    one = assert_same_outputs([later, earlier], tmp_path)
    assert json.loads(one["summary.json"])["files"] == [str(later), str(earlier)]


def test_shard_is_symmetric_and_keeps_an_enip_session_with_its_io() -> None:
    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])

    def frame(transport: int, src: bytes, sport: int, dst: bytes, dport: int) -> tuple:
        return (0, 0, b"", src, dst, transport, sport, dport, 0, 0, b"", 0, 0)

    for workers in (2, 3, 4):
        owners = {shard_of(frame(TCP, a, port, b, 502), workers) for port in range(40000, 40064)}
        assert len(owners) == workers    # flows spread over every worker
        for port in range(40000, 40064):
            assert shard_of(frame(TCP, a, port, b, 502), workers) == shard_of(frame(TCP, b, 502, a, port), workers)
            session = shard_of(frame(TCP, a, port, b, 44818), workers)
            assert shard_of(frame(UDP, b, 2222, a, 2222), workers) == session


# -- a worker that dies, and Ctrl-C: the real command in its own process --

def big_capture(tmp_path: Path) -> tuple[Path, int]:
    """A capture long enough to act on the workers while they read it, and its number of packets."""
    path = tmp_path / "big.pcap"
    return path, synth.build("mixed", path, 150_000, 11).packets


def start(capture: Path, outdir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "otsensor.sensor.cli", "analyze", str(capture), "-o",
                             str(outdir), "-q", "--workers", "2"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def worker_pids(parent: int, timeout: float = 30) -> list[int]:
    """The worker processes of ``parent``, once both have started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except FileNotFoundError:
            break
        if len(children) >= 2:
            return [int(pid) for pid in children]
        time.sleep(0.02)
    raise AssertionError("the workers did not start")


def test_a_worker_that_dies_is_one_error_line_and_the_outputs_are_kept(tmp_path: Path) -> None:
    proc = start(big_capture(tmp_path)[0], tmp_path / "out")
    victim, survivor = worker_pids(proc.pid)[1], worker_pids(proc.pid)[0]
    time.sleep(0.3)
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    errors = [line for line in err.splitlines() if line.startswith("otsensor: error:")]
    assert proc.returncode == 2, err
    assert len(errors) == 1 and f"(pid {victim}) died (killed by signal 9)" in errors[0], err
    assert "Traceback" not in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["errors"] == [errors[0].removeprefix("otsensor: error: ")]
    assert not Path(f"/proc/{survivor}").exists()    # the other worker was stopped, not left running


def test_ctrl_c_stops_every_worker_and_writes_what_was_read(tmp_path: Path) -> None:
    capture, packets = big_capture(tmp_path)
    proc = start(capture, tmp_path / "out")
    workers = worker_pids(proc.pid)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "otsensor: warning: interrupted: analysed what was read so far" in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["errors"] == []
    assert 0 < summary["packets"] < packets
    conn = (tmp_path / "out" / "conn.jsonl").read_text().splitlines()
    assert len(conn) == summary["flows"]          # every flow opened was finished and written
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_workers_do_not_outlive_a_killed_aggregator(tmp_path: Path) -> None:
    proc = start(big_capture(tmp_path)[0], tmp_path / "out")
    workers = worker_pids(proc.pid)
    time.sleep(0.3)
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)   # each finds its pipe broken at its next batch, and exits
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


# -- the owner read from a frame's raw bytes (a worker skips another's frames without decoding them) --

def edge_frames() -> list:
    """Frames of every shape a worker meets: tagged (802.1Q, QinQ), fragmented, cut short, not IP."""
    modbus = IP(src="192.0.2.1", dst="192.0.2.2", id=7) / TCPLayer(sport=40001, dport=502, flags="PA") / Raw(
        struct.pack(">HHHBBHH", 1, 0, 6, 1, 3, 0, 8))
    dnp3 = IP(src="192.0.2.3", dst="192.0.2.4") / UDPLayer(sport=20000, dport=20000) / Raw(b"\x05\x64" + bytes(8))
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    frames = [eth / modbus, eth / dnp3,
              eth / Dot1Q(vlan=10) / modbus, Ether(type=0x88A8) / Dot1Q(vlan=100) / Dot1Q(vlan=200) / modbus,
              *(eth / piece for piece in fragment(modbus / Raw(bytes(64)), fragsize=24)),
              eth / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCPLayer(sport=40002, dport=502),
              eth / ARP(psrc="192.0.2.1", pdst="192.0.2.2"),
              Raw(bytes(eth / modbus)[:14 + 20 + 12]),          # the TCP header cut short
              Raw(bytes(eth / dnp3)[:14 + 20 + 4]),             # the UDP header cut short
              Raw(bytes(eth / Dot1Q(vlan=10) / modbus)[:16])]   # the VLAN tag cut short
    for t, frame in enumerate(frames):
        frame.time = 1_780_000_000 + t / 10
    return frames


def test_the_owner_of_a_raw_frame_is_its_decoded_owner_or_unknown() -> None:
    # frame_owner must never name a worker the decoded frame does not belong to: a frame it names is skipped
    # by every other worker, so naming the wrong one would lose it; what it cannot tell cheaply, decode tells
    for workers in (2, 3, 4):
        owners = []
        for frame in edge_frames():
            raw = bytes(frame)
            p = decode(ETHERNET, raw, Defragmenter(), 0.0)
            owner = frame_owner(ETHERNET, raw, workers)
            owners.append(owner)
            assert owner == UNKNOWN or (p is not None and owner == shard_of(p, workers))
        # plain TCP and UDP, tagged or not, are told from their bytes; fragments, IPv6, ARP and cut frames are not
        assert [o != UNKNOWN for o in owners] == [True] * 4 + [False] * (len(owners) - 4)


def test_tagged_fragmented_and_cut_frames_write_the_same_outputs_with_workers(tmp_path: Path) -> None:
    capture = tmp_path / "edges.pcap"
    wrpcap(str(capture), edge_frames(), linktype=1)   # (the cut frames are raw bytes: Ethernet all the same)
    one = assert_same_outputs([capture], tmp_path)
    summary = json.loads(one["summary.json"])
    fragments = sum(1 for frame in edge_frames() if IP in frame and (frame[IP].flags.MF or frame[IP].frag))
    # counted once: the three cut frames and the fragments before the last, which no flow takes yet
    assert summary["ip_fragments_reassembled"] == 1 and summary["undecoded_packets"] == 3 + fragments - 1
    assert summary["records"]["arp"] == 1
