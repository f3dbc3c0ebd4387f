"""`otsensor run -i IFACE --workers N`: worker processes on PACKET_FANOUT sockets (real kernel, root).

tcpreplay sends a mix of the four protocols into a veth pair; `otsensor run --workers 2` captures the peer
while tcpdump keeps a copy of what crossed it.  The workers' records, merged by the aggregator, must be
the records `otsensor analyze` writes for tcpdump's copy (the same frames, the same kernel timestamps),
line for line as multisets: the workers write them in the order their frames reached the aggregator.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.sensor.netlab import (
    REPO,
    Lab,
    analyze_offline,
    frames_in,
    jsonl_logs,
    sensor_command,
    start_sensor,
    start_tcpdump,
    stop,
    wait_for,
    wait_for_stats,
    wait_for_tcpdump,
)
from tests.sensor.test_live_capture import replay, replay_lab, stopped_without_drops
from tests.sensor.test_run_checkpoint import documents, final_alerts
from tests.sensor.test_run_learn import FIRST, SECOND, needs_wireshark_tools

PCAPS = REPO / "pcaps"
# the four protocols, and many flows (benign_learn) so that the kernel's hash gives each worker some
MIX = [PCAPS / "modbus_hmi.pcap", PCAPS / "s7_hmi.pcap", PCAPS / "dnp3_scada.pcap", PCAPS / "enip_hmi.pcap",
       PCAPS / "scenarios" / "benign_learn.pcap"]


def multiset_of_lines(outdir: Path) -> dict[str, Counter]:
    return {name: Counter(lines) for name, lines in jsonl_logs(outdir).items()}


def test_two_workers_write_the_records_of_offline_analysis(lab: Lab, tmp_path):
    frames = sum(frames_in(pcap) for pcap in MIX)
    inj, sen = replay_lab(lab)
    live = tmp_path / "live"
    sensor = start_sensor(lab, sen, live, "-i", "cap0", "--workers", "2", "--stats-interval", "0.2")
    dump = start_tcpdump(lab, sen, "cap0", tmp_path / "cap0.pcap", count=frames)
    replay(lab, inj, "--pps", "2000", *map(str, MIX))
    wait_for_tcpdump(dump, frames)
    wait_for_stats(live, lambda s: s["capture"]["kernel_received"] >= frames, 60, f"{frames} frames received")
    link = lab.link_stats(sen, "cap0")
    status, _, err, took = stop(sensor)
    assert status == 0 and took < 10, err
    stats = stopped_without_drops(live)
    analyze_offline(tmp_path / "cap0.pcap", tmp_path / "offline")
    ours, offline = multiset_of_lines(live), multiset_of_lines(tmp_path / "offline")
    assert sorted(ours) == sorted(offline)
    for log in offline:
        assert ours[log] == offline[log], f"{log}: {ours[log] - offline[log]} / {offline[log] - ours[log]}"
    for log in ("modbus.jsonl", "s7comm.jsonl", "dnp3.jsonl", "enip.jsonl", "conn.jsonl"):
        assert ours[log], log
    summary = json.loads((tmp_path / "offline" / "summary.json").read_text())
    assert (stats["packets"], stats["flows"]) == (summary["packets"], summary["flows"]) == (frames, summary["flows"])
    workers = stats["capture"]["workers"]
    assert [w["worker"] for w in workers] == [1, 2]
    assert all(w["packets"] > 0 and w["kernel_received"] > 0 and w["kernel_dropped"] == 0 for w in workers)
    assert sum(w["kernel_received"] for w in workers) == stats["capture"]["kernel_received"] == frames
    assert stats["capture"]["interfaces"][0]["kernel_received"] == frames == link["rx"]["packets"]
    assert (link["tx"]["packets"], link["tx"]["bytes"]) == (0, 0)   # the workers sent nothing
    last = [line for line in err.splitlines() if line.startswith("otsensor: stats:")][-1]
    assert f"worker1_packets={workers[0]['packets']}" in last and "worker2_kernel_dropped=0" in last
    assert_prometheus_per_worker(stats)


def assert_prometheus_per_worker(stats: dict) -> None:
    """What --metrics serves of a stats document: per-worker series beside the sums."""
    pytest.importorskip("prometheus_client")
    from otsensor.sensor.live_stats import MetricsEndpoint
    families = {family.name: family for family in MetricsEndpoint.collect(SimpleNamespace(doc=stats))}
    for key, name in (("packets", "otsensor_worker_packets"),
                      ("kernel_dropped", "otsensor_worker_kernel_dropped_frames"),
                      ("kernel_received", "otsensor_worker_kernel_received_frames")):
        served = {s.labels["worker"]: s.value for s in families[name].samples if s.name.endswith("_total")}
        assert served == {str(w["worker"]): w[key] for w in stats["capture"]["workers"]}, name


def test_a_killed_worker_is_one_error_line_and_the_run_stops_keeping_its_outputs(lab: Lab, tmp_path):
    inj, sen = replay_lab(lab)
    live = tmp_path / "live"
    sensor = start_sensor(lab, sen, live, "-i", "cap0", "--workers", "2", "--stats-interval", "0.2")
    pcap = PCAPS / "scenarios" / "benign_learn.pcap"
    replay(lab, inj, "--pps", "5000", str(pcap))
    stats = wait_for_stats(live, lambda s: s["packets"] >= frames_in(pcap), 60, "every frame processed")
    victim = stats["capture"]["workers"][1]["pid"]
    os.kill(victim, signal.SIGKILL)
    try:
        out, err = sensor.communicate(timeout=10)   # no signal needed: the aggregator stops the run itself
    except subprocess.TimeoutExpired:
        status, out, err, _ = stop(sensor)
        raise AssertionError(f"the run went on after its worker died: {err}") from None
    errors = [line for line in err.splitlines() if line.startswith("otsensor: error:")]
    assert sensor.returncode == 2 and len(errors) == 1, err
    assert re.fullmatch(rf"otsensor: error: worker 2 of 2 \(pid {victim}\) died \(killed by signal 9\); "
                        r"its flows are missing from the outputs", errors[0]), errors
    stats = json.loads((live / "stats.json").read_text())
    assert stats["state"] == "stopped" and stats["capture"]["workers"][1]["alive"] is False
    assert stats["capture"]["workers"][0]["packets"] > 0
    for name in ("summary.json", "assets.json", "graph.json", "alerts.jsonl", "conn.jsonl"):
        assert (live / name).exists(), name
    assert json.loads((live / "summary.json").read_text())["errors"] == [errors[0][len("otsensor: error: "):]]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(sensor_command(*args), capture_output=True, text=True, timeout=60, cwd=REPO, check=False)


def test_workers_on_a_stream_are_one_error_line(tmp_path):
    done = run("-r", "-", "--workers", "2", "-o", str(tmp_path / "out"))
    assert done.returncode == 2 and done.stderr == (
        "otsensor: error: --workers 2 needs -i: the kernel shares an interface's flows among workers; a stream "
        "on a pipe is read by one process (leave --workers out)\n")
    assert not (tmp_path / "out").exists()


def test_workers_in_the_configuration_file_are_read_and_checked(tmp_path):
    config = tmp_path / "sensor.toml"
    config.write_text(f'[capture]\nread = "-"\n[run]\noutput = "{tmp_path / "out"}"\nworkers = 3\n')
    done = run("--config", str(config))
    assert done.returncode == 2 and done.stderr.startswith("otsensor: error: --workers 3 needs -i"), done.stderr
    for value, problem in (("0", "[run] workers: expected"), ('"two"', "[run] workers: expected"),
                           ("2\nworkrs = 1", "[run] workrs: unknown key; did you mean workers?")):
        config.write_text(f'[capture]\nread = "-"\n[run]\noutput = "{tmp_path / "out"}"\nworkers = {value}\n')
        done = run("--config", str(config))
        lines = done.stderr.splitlines()
        assert done.returncode == 2 and len(lines) == 1 and problem in lines[0], lines
    done = run("--learn", "1h", "-i", "lo", "--workers", "2", "-o", str(tmp_path / "out"))
    assert done.returncode == 2 and done.stderr == \
        "otsensor: error: --learn needs --workers 1 (the learning clock runs in one process)\n"


def test_the_workers_share_a_fanout_group_no_other_sensor_uses(lab: Lab, tmp_path):
    """Two sensors with workers on the same interface: each gets its own groups (ids the kernel picks), so
    each sees every frame once, shared among its own workers."""
    inj, sen = replay_lab(lab)
    pcap = PCAPS / "scenarios" / "benign_learn.pcap"
    sensors = [start_sensor(lab, sen, tmp_path / name, "-i", "cap0", "--workers", "2", "--stats-interval", "0.2")
               for name in ("a", "b")]
    replay(lab, inj, "--pps", "5000", str(pcap))
    frames = frames_in(pcap)
    for name, sensor in zip(("a", "b"), sensors):
        stats = wait_for_stats(tmp_path / name, lambda s: s["packets"] >= frames, 60, f"sensor {name}'s frames")
        status, _, err, _ = stop(sensor)
        assert status == 0, err
        stats = json.loads((tmp_path / name / "stats.json").read_text())
        assert stats["packets"] == frames == stats["capture"]["kernel_received"]
        assert all(w["packets"] > 0 for w in stats["capture"]["workers"])



def collect_stderr(proc: subprocess.Popen) -> list[str]:
    """The sensor's stderr lines as they come (a thread reads them: the sensor never blocks on the pipe)."""
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True).start()
    return lines


def test_sighup_gives_the_workers_the_new_zones_and_a_quiet_network_closes_their_flows(lab: Lab, tmp_path):
    """Flows the workers hold across a SIGHUP end with the new zones in conn.jsonl; flows idle past
    --udp-timeout / --tcp-timeout are closed by each worker's wall clock, with no packet to move time on."""
    zones = tmp_path / "zones.toml"
    zones.write_text('[[zones]]\nname = "before"\ncidrs = ["0.0.0.0/0"]\nlevel = 1\nkind = "ot"\n')
    inj, sen = replay_lab(lab)
    live = tmp_path / "live"
    sensor = start_sensor(lab, sen, live, "-i", "cap0", "--workers", "2", "--stats-interval", "0.2",
                          "--zones", str(zones), "--tcp-timeout", "2", "--udp-timeout", "2")
    err = collect_stderr(sensor)
    pcap = PCAPS / "scenarios" / "benign_learn.pcap"
    frames = frames_in(pcap) // 2   # connections still open: the rest of them never comes
    replay(lab, inj, "--pps", "5000", "--limit", str(frames), str(pcap))
    wait_for_stats(live, lambda s: s["packets"] >= frames, 60, "every frame")
    zones.write_text('[[zones]]\nname = "after"\ncidrs = ["0.0.0.0/0"]\nlevel = 2\nkind = "ot"\n')
    sensor.send_signal(signal.SIGHUP)
    wait_for(lambda: any("reloaded" in line for line in err), 30, "the reload")
    stats = wait_for_stats(live, lambda s: s["flows"] > 0 and s["flows_active"] == 0, 60, "the idle flows swept")
    sensor.send_signal(signal.SIGTERM)
    sensor.wait(timeout=10)
    assert sensor.returncode == 0, err
    assert stats["flows_timed_out"] > 0
    assert all(w["packets"] > 0 for w in stats["capture"]["workers"])
    conn = [json.loads(line) for line in (live / "conn.jsonl").read_text().splitlines()]
    assert len(conn) == stats["flows"]
    # every flow was still held by its worker at the reload (closed ones wait for a sweep as well)
    assert {(row["orig_zone"], row["orig_level"]) for row in conn} == {("after", 2)}


def test_enip_io_reaches_the_worker_of_its_forward_open(lab: Lab, tmp_path):
    """The fanout program hashes the two IP addresses, not the ports: the UDP 2222 I/O of a connection reaches
    the worker that followed the TCP 44818 session whose Forward Open opened it, so its cip_io rows carry the
    fo_* columns (the Forward Open's parameters) exactly as offline analysis writes them.  (With the kernel's
    flow hash, about half of the connections' I/O landed on the other worker, without them.)"""
    pcap = tmp_path / "enip.pcap"
    made = subprocess.run([sys.executable, str(REPO / "bench" / "make_capture.py"), "--capture", "enip", "--packets",
                           "3000", "--out", str(pcap)], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    frames = frames_in(pcap)
    inj, sen = replay_lab(lab)
    live = tmp_path / "live"
    sensor = start_sensor(lab, sen, live, "-i", "cap0", "--workers", "2", "--stats-interval", "0.2")
    dump = start_tcpdump(lab, sen, "cap0", tmp_path / "cap0.pcap", count=frames)
    replay(lab, inj, "--pps", "3000", str(pcap))
    wait_for_tcpdump(dump, frames)
    wait_for_stats(live, lambda s: s["capture"]["kernel_received"] >= frames, 60, f"{frames} frames received")
    status, _, err, _ = stop(sensor)
    assert status == 0, err
    stats = stopped_without_drops(live)
    analyze_offline(tmp_path / "cap0.pcap", tmp_path / "offline")
    ours, offline = jsonl_logs(live), jsonl_logs(tmp_path / "offline")
    assert sorted(ours) == sorted(offline)
    for log in offline:
        assert Counter(ours[log]) == Counter(offline[log]), log
    io = offline["cip_io.jsonl"]
    connections = {json.loads(line)["connection_id"] for line in io}
    assert len(connections) > 4 and all('"fo_' in line for line in io)   # many connections, each linked
    assert all(w["packets"] > 0 for w in stats["capture"]["workers"])   # and both workers had some


@needs_wireshark_tools
def test_two_workers_restarted_carry_on_from_the_checkpoint(lab: Lab, tmp_path):
    """`run --workers 2` stopped and started again on the same DIR: the aggregator's checkpoint (inventory,
    graph, open alerts) carries the run on, so the documents and alerts are those of offline analysis of
    everything both runs captured (tcpdump's two copies, merged), and an alert open at the stop is continued,
    not raised again."""
    inj, sen = replay_lab(lab)
    live = tmp_path / "live"
    copies = []
    for part, pcaps in enumerate((FIRST, SECOND)):
        frames = sum(frames_in(pcap) for pcap in pcaps)
        copies.append(tmp_path / f"part{part}.pcap")
        (live / "stats.json").unlink(missing_ok=True)   # start_sensor waits for the new run's
        sensor = start_sensor(lab, sen, live, "-i", "cap0", "--workers", "2", "--stats-interval", "0.2")
        dump = start_tcpdump(lab, sen, "cap0", copies[-1], count=frames)
        replay(lab, inj, "--pps", "2000", *map(str, pcaps))
        wait_for_tcpdump(dump, frames)
        wait_for_stats(live, lambda s: s["capture"]["kernel_received"] >= frames, 60, f"{frames} frames received")
        status, _, err, _ = stop(sensor)
        assert status == 0, err
        stopped_without_drops(live)
        if part == 0:
            state = json.loads((live / "state" / "checkpoint.json").read_text())
            assert state["inventory"]["assets"] and state["graph"]["edges"] and state["open_alerts"]
        else:
            assert f"otsensor: carried on from {live / 'state' / 'checkpoint.json'}: " in err
    whole = tmp_path / "whole.pcap"
    # nanosecond pcap: tcpdump's copies have the kernel's nanoseconds, which the sensor saw
    subprocess.run(["mergecap", "-F", "nsecpcap", "-w", str(whole), *map(str, copies)], check=True)
    analyze_offline(whole, tmp_path / "offline")
    assert documents(live) == documents(tmp_path / "offline")
    expected = final_alerts(tmp_path / "offline")
    assert final_alerts(live) == expected
    carried = {a["id"]: a["count"] for a in state["open_alerts"]}
    assert any(a["id"] in carried and a["count"] > carried[a["id"]] for a in expected)
