"""Asset roles follow the protocol direction and the operations, on every protocol, and agree with detection.

Captures are the committed ones recorded from real stacks (pcaps/README.md), the same
conversations replayed between other hosts (tests/baselines/replay.py), and, for S7comm-plus,
files of the shared corpus (skipped when it is absent).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from otsensor.baselines.learn import load_baseline
from tests.baselines.replay import PCAPS, analyze_capture, conversation, session, write
from tests.corpus import corpus_dir

HMI_SIDE, IT_SIDE = "127.10.1.20", "127.20.1.50"
ROLES = {
    "modbus_hmi.pcap": {"127.10.1.10": "plc_rtu", HMI_SIDE: "hmi_scada"},
    "modbus_it.pcap": {"127.10.1.10": "plc_rtu", IT_SIDE: "engineering_workstation"},     # restart, listen-only
    "s7_hmi.pcap": {"127.10.1.30": "plc_rtu", HMI_SIDE: "hmi_scada"},                     # SZL and clock reads
    "s7_engineering.pcap": {"127.10.1.30": "plc_rtu", IT_SIDE: "engineering_workstation"},
    # the SCADA master selects and operates, sets the clock and disables unsolicited reporting: its job
    "dnp3_scada.pcap": {"127.10.1.40": "plc_rtu", HMI_SIDE: "hmi_scada"},
    "dnp3_engineering.pcap": {"127.10.1.40": "plc_rtu", IT_SIDE: "engineering_workstation"},  # stop, restarts
    "enip_hmi.pcap": {"127.10.1.50": "plc_rtu", HMI_SIDE: "hmi_scada"},                   # identity read at start
    "enip_engineering.pcap": {"127.10.1.50": "plc_rtu", IT_SIDE: "engineering_workstation"},  # CIP Reset
}
# S7comm-plus captures of the shared corpus: TIA Portal stopping a CPU, and an HMI panel reading one
S7PLUS = {
    "agentcarter-s7plus/Wireshark Paketler/paket_stop.pcapng": {"192.168.55.5": "engineering_workstation",
                                                               "192.168.42.10": "plc_rtu"},
    "ct-samples/Protocols/S7comm/Other_Captures/s7-1200-hmi.pcap": {"192.168.25.177": "hmi_scada",
                                                                   "192.168.25.131": "plc_rtu"},
}
ISSUED = re.compile(r"issued (\d+) engineering operation\(s\): (.*)")


def committed(name: str) -> Path:
    path = PCAPS / name
    if not path.exists():
        pytest.skip(f"{name} not generated")
    return path


def from_corpus(name: str) -> Path:
    path = corpus_dir() / name
    if not path.exists():
        pytest.skip(f"corpus file {name} not present")
    return path


def check_roles(run: dict, expected: dict[str, str]) -> None:
    got = {ip: run["assets"][ip]["role"] for ip in expected}
    assert got == expected, {ip: run["assets"][ip]["role_evidence"] for ip in expected}


@pytest.mark.parametrize("name", sorted(ROLES))
def test_roles_on_each_protocol(tmp_path, name):
    check_roles(analyze_capture(committed(name), tmp_path), ROLES[name])


@pytest.mark.parametrize("name", sorted(S7PLUS))
def test_roles_on_s7comm_plus(tmp_path, name):
    check_roles(analyze_capture(from_corpus(name), tmp_path), S7PLUS[name])


@pytest.mark.parametrize("name", sorted(ROLES))
def test_engineering_evidence_counts_what_it_lists(tmp_path, name):
    for asset in analyze_capture(committed(name), tmp_path)["assets"].values():
        issued = [line for line in asset["role_evidence"] if line.startswith("issued")]
        assert len(issued) == (asset["role"] == "engineering_workstation"), asset["role_evidence"]
        for line in issued:
            match = ISSUED.fullmatch(line)
            assert match, line
            listed = dict(re.findall(r"(\w+) \((\d+)\)", match.group(2)))
            assert int(match.group(1)) == sum(map(int, listed.values())) > 0, line
            # identity reads and clock setting are an HMI's and a SCADA master's routine, not engineering
            assert not {"identity_read", "clock_set", "direct_operate", "select", "operate"} & set(listed), line


@pytest.mark.parametrize("name", sorted(ROLES))
def test_no_alert_calls_an_engineering_workstation_not_one(tmp_path, name):
    run = analyze_capture(committed(name), tmp_path)
    engineering = {ip for ip, a in run["assets"].items() if a["role"] == "engineering_workstation"}
    contradictions = [a["message"] for a in run["alerts"]
                      if a["rule"] == "recon_identity_read" and a["id.orig_h"] in engineering]
    assert contradictions == []


@pytest.mark.parametrize("name", ["dnp3_scada.pcap", "s7_engineering.pcap", "modbus_it.pcap"])
def test_baseline_engineering_hosts_are_the_engineering_workstations(tmp_path, name):
    base = tmp_path / "base.json"
    proc = subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "baseline", "learn", str(committed(name)),
                           "-o", str(base)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    learned = json.loads(base.read_text())
    workstations = {ip for ip, a in learned["assets"].items() if a["role"] == "engineering_workstation"}
    assert set(learned["engineering_hosts"]) == workstations
    assert {ip: learned["assets"][ip]["role"] for ip in ROLES[name]} == ROLES[name]


DNP3 = conversation(PCAPS / "dnp3_scada.pcap", 20000)
MODBUS = conversation(PCAPS / "modbus_hmi.pcap", 502)


def test_dnp3_outstation_that_opens_the_connection_is_still_the_outstation(tmp_path):
    """The outstation dials its master (port 20000 on the master): the link DIR bit says who is master."""
    master, outstation = "10.40.2.20", "10.40.1.40"
    pcap = write(tmp_path / "dialout.pcap", session(DNP3, (outstation, 41000), (master, 20000), client_sends=False))
    run = analyze_capture(pcap, tmp_path / "out")
    check_roles(run, {master: "hmi_scada", outstation: "plc_rtu"})
    assert "dnp3" in run["assets"][outstation]["protocols_served"]
    assert any("DNP3 outstation" in e for e in run["assets"][outstation]["role_evidence"])
    graph = json.loads((tmp_path / "out" / "graph.json").read_text())
    assert [(e["source"], e["target"]) for e in graph["edges"] if e["protocol"] == "dnp3"] == [(master, outstation)]
    controls = [a for a in run["alerts"] if a["rule"] in ("clock_set", "direct_operate_without_select")]
    assert controls and all(a["id.orig_h"] == master and a["id.resp_h"] == outstation for a in controls)


def test_gateway_serves_one_protocol_and_polls_another(tmp_path):
    """A data concentrator: a DNP3 outstation to the SCADA master, a Modbus client of the field device."""
    gateway, scada, field = "10.40.1.5", "10.40.2.20", "10.40.1.10"
    pcap = write(tmp_path / "gw.pcap",
                 session(DNP3, (scada, 41000), (gateway, 20000)),
                 session(MODBUS, (gateway, 42000), (field, 502), t0=DNP3[0].ts + 0.5))
    run = analyze_capture(pcap, tmp_path / "out")
    check_roles(run, {gateway: "gateway", scada: "hmi_scada", field: "plc_rtu"})


def test_controller_polling_its_own_protocol_is_a_controller(tmp_path):
    """A DNP3 sub-master: outstation to the control centre, master of a downstream outstation."""
    rtu, centre, downstream = "10.40.1.5", "10.40.2.20", "10.40.1.41"
    pcap = write(tmp_path / "submaster.pcap",
                 session(DNP3, (centre, 41000), (rtu, 20000)),
                 session(DNP3, (rtu, 41001), (downstream, 20000), t0=DNP3[0].ts + 1))
    check_roles(analyze_capture(pcap, tmp_path / "out"), {rtu: "plc_rtu", centre: "hmi_scada", downstream: "plc_rtu"})


def test_identity_reads_alone_make_no_hmi(tmp_path):
    """The sweep's reader only asks five PLCs who they are: not enough to call it an HMI."""
    pcap = PCAPS / "scenarios" / "attack_identity_sweep.pcap"
    if not pcap.exists():
        pytest.skip("attack_identity_sweep.pcap not recorded")
    run = analyze_capture(pcap, tmp_path)
    reader = run["assets"][IT_SIDE]
    assert reader["role"] == "unknown", reader["role_evidence"]
    assert any("identity" in e for e in reader["role_evidence"])
    assert run["assets"]["127.10.2.20"]["role"] == "hmi_scada"


def test_dnp3_dialout_against_its_own_baseline_departs_from_nothing(tmp_path):
    """Learning and detection key the edge master -> outstation alike, so the polls' cadence is found again."""
    master, outstation = "10.40.2.20", "10.40.1.40"
    polls = [session(DNP3, (outstation, 41000 + i), (master, 20000), client_sends=False, t0=DNP3[0].ts + 2 * i)
             for i in range(16)]
    pcap = write(tmp_path / "dialout.pcap", *polls)
    base = tmp_path / "base.json"
    cli = [sys.executable, "-m", "otsensor.sensor.cli"]
    subprocess.run([*cli, "baseline", "learn", str(pcap), "-o", str(base)], check=True, capture_output=True,
                   timeout=300)
    learned = json.loads(base.read_text())
    assert list(learned["edges"]) == [f"{master} -> {outstation} dnp3"] and learned["cadence"]
    run = analyze_capture(pcap, tmp_path / "out", baseline=load_baseline(str(base)))
    assert [a["rule"] for a in run["alerts"] if a["category"] == "baseline"] == []
