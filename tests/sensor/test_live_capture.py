"""The AF_PACKET capture under `otsensor run`, fed by tcpreplay through a veth pair (real kernel, root).

tcpreplay sends from one namespace; the sensor captures the peer in another,
where nothing else sends.  Frames injected this way carry one kernel arrival
stamp that the sensor and tcpdump both read, so `otsensor run` must write
byte for byte what `otsensor analyze` writes for tcpdump's copy, and the
same records as for the original file apart from the replay's own times.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sensor.netlab import (
    REPLAY_TIMES,
    REPO,
    Lab,
    analyze_offline,
    assert_same_outputs,
    frames_in,
    require_tool,
    sensor_command,
    skip_on_kernel_drops,
    start_sensor,
    start_tcpdump,
    stop,
    tcpdump_options,
    wait_for,
    wait_for_stats,
    wait_for_tcpdump,
)

PCAPS = sorted((REPO / "pcaps").glob("*.pcap"))


def replay_lab(lab: Lab) -> tuple[str, str]:
    """An injecting namespace and the sensor's, joined by inj0 <-> cap0."""
    inj, sen = lab.namespace("inj"), lab.namespace("sen")
    lab.veth(inj, "inj0", sen, "cap0")
    return inj, sen


def replay(lab: Lab, ns: str, *args: str) -> None:
    done = lab.run(ns, require_tool("tcpreplay"), "-q", "-i", "inj0", *args)
    assert done.returncode == 0, done.stderr


def sensor_on_replay(lab: Lab, tmp_path: Path, replays: list[list[str]], expected: int, *sensor_args: str,
                     tcpdump: bool = False) -> tuple[Path, dict, str]:
    """`otsensor run -i cap0 ARGS` (and tcpdump into tmp_path/cap0.pcap) while tcpreplay sends each of ``replays``;
    returns the output directory, cap0's counters just before the stop, and the sensor's stderr.

    No sleep decides when the traffic is over: the sensor is stopped once its socket has received the
    ``expected`` frames (stats.json's kernel count; with tcpdump, once tcpdump has them all too), and its
    SIGTERM path must then read every one of them from the ring."""
    inj, sen = replay_lab(lab)
    live = tmp_path / "live"
    sensor = start_sensor(lab, sen, live, "-i", "cap0", "--stats-interval", "0.2", *sensor_args)
    dump = start_tcpdump(lab, sen, "cap0", tmp_path / "cap0.pcap", count=expected) if tcpdump else None
    for args in replays:
        replay(lab, inj, *args)
    if dump is not None:
        wait_for_tcpdump(dump, expected)
    wait_for_stats(live, lambda s: s["capture"]["kernel_received"] >= expected, 60,
                   f"the sensor's socket to receive {expected} frames")
    link = lab.link_stats(sen, "cap0")
    status, _, err, took = stop(sensor)
    assert status == 0 and took < 10, err
    return live, link, err


def stopped_without_drops(outdir: Path) -> dict:
    stats = stats_of(outdir)
    skip_on_kernel_drops("the sensor", stats["capture"]["kernel_dropped"])
    return stats


def stats_of(outdir: Path) -> dict:
    return json.loads((outdir / "stats.json").read_text())


@pytest.mark.parametrize("pcap", PCAPS, ids=lambda p: p.name)
def test_a_replayed_capture_gives_the_records_of_offline_analysis(lab, tmp_path, pcap):
    frames = frames_in(pcap)
    live, link, _ = sensor_on_replay(lab, tmp_path, [["--pps", "2000", str(pcap)]], frames, tcpdump=True)
    stats = stopped_without_drops(live)
    analyze_offline(tmp_path / "cap0.pcap", tmp_path / "tcpdump")
    analyze_offline(pcap, tmp_path / "original")
    assert_same_outputs(live, tmp_path / "tcpdump")                      # byte for byte
    assert_same_outputs(live, tmp_path / "original", skip=REPLAY_TIMES)  # all but the replay's own times
    assert stats["state"] == "stopped"   # (and alerts.jsonl matched: no sensor_packet_loss without a loss)
    assert stats["packets"] == stats["capture"]["kernel_received"] == link["rx"]["packets"] == frames
    assert stats["capture"]["kernel_dropped"] == 0
    assert (link["tx"]["packets"], link["tx"]["bytes"]) == (0, 0)   # the sensor sent nothing


def test_top_speed_into_a_tiny_ring_drops_and_counts_every_drop(lab, tmp_path):
    benign = REPO / "pcaps" / "scenarios" / "benign_learn.pcap"
    sent = 20 * frames_in(benign)
    live, link, err = sensor_on_replay(lab, tmp_path, [["--topspeed", "--loop", "20", str(benign)]], sent,
                                       "--ring-block-size", "4096", "--ring-blocks", "2", "--ring-frame-size", "256")
    capture = stats_of(live)["capture"]
    assert capture["kernel_dropped"] > 0
    assert capture["kernel_received"] == link["rx"]["packets"] == sent                # every frame accounted for
    assert stats_of(live)["packets"] == capture["kernel_received"] - capture["kernel_dropped"]
    assert capture["interfaces"][0]["kernel_dropped"] == capture["kernel_dropped"]
    dropped = re.findall(r"kernel_dropped=(\d+)", err)
    assert dropped and int(dropped[-1]) == capture["kernel_dropped"]
    # a blind sensor is itself a finding: one alert, aggregated over the intervals that lost frames
    alerts = [json.loads(line) for line in (live / "alerts.jsonl").read_text().splitlines()]
    loss = [a for a in alerts if a["rule"] == "sensor_packet_loss"]
    assert [a["identifier"] for a in loss] == ["sensor:interface cap0"], alerts
    assert loss[0]["techniques"][0]["id"] == "T0814" and "frames dropped by the kernel" in loss[0]["message"]


def test_a_vlan_tag_the_kernel_strips_is_put_back(lab, tmp_path):
    """The kernel moves the 802.1Q tag out of the frame; the sensor restores it, so conn.jsonl has the VLAN."""
    tagged = tmp_path / "tagged.pcap"
    done = subprocess.run([require_tool("tcprewrite"), "--enet-vlan=add", "--enet-vlan-tag=7", "--enet-vlan-cfi=0",
                           "--enet-vlan-pri=5", "-i", str(REPO / "pcaps" / "modbus_hmi.pcap"), "-o", str(tagged)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    live, _, _ = sensor_on_replay(lab, tmp_path, [["--pps", "2000", str(tagged)]], frames_in(tagged), tcpdump=True)
    stopped_without_drops(live)
    conn = [json.loads(line) for line in (live / "conn.jsonl").read_text().splitlines()]
    assert [row["vlan"] for row in conn] == [7]
    analyze_offline(tagged, tmp_path / "original")
    analyze_offline(tmp_path / "cap0.pcap", tmp_path / "tcpdump")
    assert_same_outputs(live, tmp_path / "original", skip=REPLAY_TIMES)
    assert_same_outputs(live, tmp_path / "tcpdump")


def test_a_bpf_filter_keeps_other_traffic_out_of_the_ring(lab, tmp_path):
    replays = [["--pps", "2000", str(REPO / "pcaps" / name)] for name in ("s7_hmi.pcap", "modbus_hmi.pcap",
                                                                          "dnp3_scada.pcap")]
    modbus = frames_in(REPO / "pcaps" / "modbus_hmi.pcap")
    live, _, _ = sensor_on_replay(lab, tmp_path, replays, modbus, "--bpf", "tcp port 502")
    stats = stopped_without_drops(live)
    conn = [json.loads(line) for line in (live / "conn.jsonl").read_text().splitlines()]
    assert [(row["id.resp_p"], row["service"]) for row in conn] == [(502, "modbus")]
    assert not (live / "s7comm.jsonl").exists() and not (live / "dnp3.jsonl").exists()
    # filtered in the kernel, before the ring: the other frames were never even counted
    assert stats["capture"]["kernel_received"] == stats["packets"] == modbus


def test_tcpdump_piped_into_run_from_stdin(lab, tmp_path):
    """`tcpdump -w - | otsensor run -r -`: the portable path; the run ends when tcpdump does (here, by itself,
    after the replayed frames: a tcpdump stopped by a signal would lose what it had not read yet)."""
    tcpdump = require_tool("tcpdump")
    pcap = REPO / "pcaps" / "enip_hmi.pcap"
    frames = frames_in(pcap)
    inj, sen = replay_lab(lab)
    live = tmp_path / "live"
    dump = lab.spawn(sen, tcpdump, "-i", "cap0", *tcpdump_options(frames), "-w", "-",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False)
    assert b"listening" in dump.stderr.readline()
    sensor = subprocess.Popen([*sensor_command("-r", "-", "-o", str(live), "-q")], stdin=dump.stdout,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dump.stdout.close()   # the sensor holds the pipe's read end now
    wait_for(lambda: (live / "stats.json").exists(), 30, "the sensor to read the pipe")
    replay(lab, inj, "--pps", "2000", str(pcap))
    wait_for_tcpdump(dump, frames)
    _, err = sensor.communicate(timeout=60)
    assert sensor.returncode == 0, err
    analyze_offline(pcap, tmp_path / "original")
    # tcpdump writes microseconds by default: the times are the replay's anyway
    assert_same_outputs(live, tmp_path / "original", skip=REPLAY_TIMES)
    stats = stats_of(live)
    assert stats["packets"] == frames and stats["capture"]["stream"] == "<stdin>"


FANOUT_READER = """
import json, sys, threading, time
from otsensor.sensor.capture.live import InterfaceCapture
from otsensor.sensor.decode import Defragmenter, decode

captures = [InterfaceCapture(["cap0"], fanout_group=int(sys.argv[1])) for _ in range(2)]
flows, frames = [set(), set()], [0, 0]

def read(i):
    for ts, linktype, frame in captures[i]:
        frames[i] += 1
        p = decode(linktype, frame, Defragmenter(), ts)
        if p is not None:   # the two hosts, either way round, whatever the ports
            flows[i].add(repr(sorted([p[3], p[4]])))

threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
for t in threads:
    t.start()
print("ready", flush=True)
expected = int(sys.stdin.readline())   # frames sent: stop once both sockets together have them all
deadline = time.monotonic() + 60
while sum(frames) < expected and time.monotonic() < deadline:
    time.sleep(0.05)
for c in captures:
    c.stop()
for t in threads:
    t.join()
print(json.dumps({"flows": [sorted(f) for f in flows], "frames": frames}))
"""


def test_fanout_gives_each_socket_of_a_group_whole_conversations(lab):
    """PACKET_FANOUT with the address-pair program, as the workers use it: every frame between two hosts, both
    directions and every port, reaches the same socket, and both sockets get some."""
    inj, sen = replay_lab(lab)
    reader = lab.spawn(sen, sys.executable, "-c", FANOUT_READER, str(4000 + lab.serial), stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
    pcap = REPO / "pcaps" / "scenarios" / "benign_learn.pcap"
    replay(lab, inj, "--pps", "5000", str(pcap))
    out, err = reader.communicate(f"{frames_in(pcap)}\n", timeout=90)
    assert out, err
    result = json.loads(out)
    first, second = (set(f) for f in result["flows"])
    assert first and second, "one socket got every conversation"
    assert not first & second, f"host pairs split between the sockets: {first & second}"
    assert sum(result["frames"]) == frames_in(pcap)
