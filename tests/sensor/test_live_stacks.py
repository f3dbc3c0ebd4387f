"""`otsensor run` on a mirror port while real stacks talk across network namespaces (real kernel, root).

Topology: the client and the server each sit in their own namespace, joined
through a hub (a bridge that floods every frame) in the sensor's namespace;
the hub's third port is a veth whose peer, ``span``, is the sensor's capture
interface, as a switch's SPAN port would be.  tcpdump captures ``span`` too,
and `otsensor analyze` of its file must give what `otsensor run` wrote: every
JSONL line, the inventory and the graph.

Timestamps: a frame that a local TCP stack sent across veths keeps the
sender's departure time (a monotonic clock) in the kernel's stamp field,
which is not a wall-clock stamp, so each capture socket reads the clock
itself when it copies the frame: the sensor and tcpdump stamp the same frame
microseconds apart.  So numbers here may differ by 5 ms and uids (derived
from the first packet's time) one for one; everything else is identical.
Frames arriving from outside the host (a NIC, or tcpreplay in
test_live_capture.py) carry one arrival stamp that both read, and there the
outputs are byte for byte the same.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from otsensor.sensor.capture.privileges import capabilities
from tests.sensor.netlab import (
    Lab,
    analyze_offline,
    assert_same_outputs,
    jsonl_logs,
    require_tool,
    start_sensor,
    start_tcpdump,
    stop,
    wait_for,
)

STACKS = str(Path(__file__).with_name("live_stacks.py"))
CLIENT, SERVER = "127.77.0.1", "127.77.0.2"


def mirrored(lab: Lab) -> tuple[str, str, str]:
    """Client, server and sensor namespaces; the sensor's ``span`` sees every frame between the two."""
    cli, srv, tap = lab.namespace("cli"), lab.namespace("srv"), lab.namespace("tap")
    lab.veth(cli, "eth0", tap, "pcli")
    lab.veth(srv, "eth0", tap, "psrv")
    lab.veth(tap, "pspan", tap, "span")
    lab.hub(tap, ["pcli", "psrv", "pspan"])
    lab.address(cli, "eth0", f"{CLIENT}/24")
    lab.address(srv, "eth0", f"{SERVER}/24")
    return cli, srv, tap


def start_server(lab: Lab, ns: str, role: str) -> subprocess.Popen:
    proc = lab.spawn(ns, sys.executable, STACKS, role, SERVER, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        pytest.fail(f"{role} did not start: {line}{proc.stderr.read()}")
    return proc


def run_client(lab: Lab, ns: str, role: str) -> None:
    done = lab.run(ns, sys.executable, STACKS, role, SERVER)
    assert done.returncode == 0, done.stderr[-2000:]


def test_run_on_a_mirror_port_writes_what_analyze_of_tcpdump_writes(lab, tmp_path):
    require_tool("tcpdump")
    cli, srv, tap = mirrored(lab)
    start_server(lab, srv, "modbus-server")
    start_server(lab, srv, "s7-server")
    sensor = start_sensor(lab, tap, tmp_path / "live", "-i", "span")
    dump = start_tcpdump(lab, tap, "span", tmp_path / "span.pcap")
    idle = lab.link_stats(tap, "span")
    assert idle["promiscuity"] == 1 and "PROMISC" not in idle["flags"]   # a socket membership, not a flag
    run_client(lab, cli, "modbus-client")
    run_client(lab, cli, "s7-client")
    time.sleep(1.0)   # the last frames reach both captures
    busy = lab.link_stats(tap, "span")
    status, _, err, took = stop(sensor)
    stop(dump, signal.SIGINT)
    assert status == 0 and took < 10, err
    analyze_offline(tmp_path / "span.pcap", tmp_path / "offline")

    live = jsonl_logs(tmp_path / "live")
    assert {"conn.jsonl", "modbus.jsonl", "s7comm.jsonl", "cotp.jsonl"} <= set(live)
    assert len(live["modbus.jsonl"]) == 46     # every transaction the client made (see live_stacks.py)
    assert_same_outputs(tmp_path / "live", tmp_path / "offline", tolerance=0.005)
    # passive: the capture interface received everything and sent nothing while the sensor ran
    assert busy["rx"]["packets"] > idle["rx"]["packets"] >= 0
    assert (busy["tx"]["packets"], busy["tx"]["bytes"]) == (idle["tx"]["packets"], idle["tx"]["bytes"]) == (0, 0)
    assert lab.link_stats(tap, "span")["promiscuity"] == 0   # the membership went with the socket


def test_sigterm_finishes_open_flows_and_writes_every_output_within_10s(lab, tmp_path):
    """The client is still connected when the sensor is stopped: its flow is finished and written."""
    cli, srv, tap = mirrored(lab)
    start_server(lab, srv, "modbus-server")
    sensor = start_sensor(lab, tap, tmp_path / "live", "-i", "span", "--stats-interval", "0.5")
    held = lab.spawn(cli, sys.executable, "-c", (
        "import socket, time\n"
        f"s = socket.create_connection(('{SERVER}', 502))\n"
        "s.sendall(bytes.fromhex('000100000006010300010002')); s.recv(64)\n"
        "print('asked', flush=True); time.sleep(60)\n"), stdout=subprocess.PIPE, text=True)
    assert held.stdout.readline().strip() == "asked"
    wait_for(lambda: '"modbus"' in (tmp_path / "live" / "stats.json").read_text(), 20, "the record in stats.json")
    status, _, err, took = stop(sensor)
    assert status == 0, err
    assert took < 10
    out = tmp_path / "live"
    for name in ("conn.jsonl", "modbus.jsonl", "alerts.jsonl", "assets.json", "graph.json",
                 "summary.json", "stats.json"):
        assert (out / name).exists(), name
    # (the namespaces' own chatter, IGMP reports or a late segment of the setup, may add other conn lines)
    conn = [line for line in (out / "conn.jsonl").read_text().splitlines() if '"id.resp_p":502,' in line]
    assert len(conn) == 1 and '"conn_state":"S1"' in conn[0], conn     # established, still open at the stop
    assert '"state": "stopped"' in (out / "stats.json").read_text()
    assert "otsensor: stats: uptime_s=" in err and "kernel_dropped=0" in err


def test_user_drops_to_an_unprivileged_user_with_no_capability(lab):
    import pwd
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    cli, srv, tap = mirrored(lab)
    top = Path(tempfile.mkdtemp(prefix="otsensor-live-"))   # pytest's tmp_path is closed to other users
    try:
        os.chmod(top, 0o755)
        out = top / "out"
        out.mkdir()
        os.chown(out, nobody.pw_uid, nobody.pw_gid)
        sensor = start_sensor(lab, tap, out, "-i", "span", "--user", "nobody")
        # `ip netns exec` execs the sensor in place: its pid is the sensor's
        status = Path(f"/proc/{sensor.pid}/status").read_text()
        caps = capabilities(sensor.pid)
        start_server(lab, srv, "modbus-server")
        run_client(lab, cli, "modbus-client")
        time.sleep(0.5)
        code, _, err, _ = stop(sensor)
        assert code == 0, err
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        gid_line = next(line for line in status.splitlines() if line.startswith("Gid:")).split()[1:]
        groups = next(line for line in status.splitlines() if line.startswith("Groups:")).split()[1:]
        assert set(map(int, uid_line)) == {nobody.pw_uid} and set(map(int, gid_line)) == {nobody.pw_gid}
        assert groups == []
        assert caps["CapEff"] == caps["CapPrm"] == caps["CapInh"] == caps["CapAmb"] == 0
        assert "NoNewPrivs:\t1" in status
        assert out.joinpath("modbus.jsonl").stat().st_uid == nobody.pw_uid
        assert len(out.joinpath("modbus.jsonl").read_text().splitlines()) >= 20
    finally:
        shutil.rmtree(top, ignore_errors=True)

