"""Scenario tests: learn a baseline from a benign capture, then check the alerts on the others.

The captures in ``pcaps/scenarios/`` are recorded from real stacks by
``pcaps/generator/scenarios.py`` (committed, not regenerated here); the plant
and its zones are described there and in ``pcaps/scenarios/zones.toml``.
Everything goes through the command line in a subprocess, as a user would run it:

* ``otsensor baseline learn benign_learn.pcap --zones zones.toml -o BASE.json``
  must know the four controllers, the HMI's edges to them, the historian's
  edge, and the engineering workstation as an engineering host;
* ``otsensor analyze benign_second.pcap --baseline BASE.json --zones ...``
  (the same plant at another time) must raise no alert: the false-positive test;
* each attack capture must raise the listed rules for the scenario's actor
  (``id.orig_h``), each carrying the listed ATT&CK for ICS technique ids
  (other alerts are allowed: attack captures are short and may depart from
  the baseline in more ways than the one tested).

A test whose capture is missing is skipped with the reason.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "pcaps" / "scenarios"
ZONES = SCENARIOS / "zones.toml"
LEARN = SCENARIOS / "benign_learn.pcap"

CONTROLLERS = {"127.10.1.10": "modbus", "127.10.1.30": "s7comm", "127.10.1.40": "dnp3", "127.10.1.50": "enip"}
HMI, EWS, HISTORIAN = "127.10.2.20", "127.10.2.30", "127.20.1.60"

# scenario -> {rule: technique ids that must be among the alert's techniques}
EXPECTED = {
    "attack_it_modbus_write": {"it_ot_boundary_crossing": {"T0886", "T0855"}, "new_writer": {"T0855", "T0836"},
                               "new_edge": {"T0848"}},
    "attack_s7_stop_download": {"plc_stop": {"T0858", "T0813"}, "program_download": {"T0843"},
                                "new_edge": {"T0848"}, "new_asset": {"T0864"}},
    # the attacker's master (link address 3) beside the HMI's (link address 1)
    "attack_dnp3_restart_operate": {"device_restart": {"T0816"}, "it_ot_boundary_crossing": {"T0886", "T0855"},
                                    "direct_operate_without_select": {"T0855"},
                                    "dnp3_second_master": {"T0848", "T0855"},
                                    "dnp3_unexpected_master_address": {"T0848", "T0849"}},
    "attack_cip_reset_forward_open": {"device_restart": {"T0816"}, "it_ot_boundary_crossing": {"T0886", "T0855"},
                                      "cip_new_connection_originator": {"T0848", "T0869"}},
    "attack_value_out_of_range": {"value_out_of_range": {"T0836", "T0831"}},
    # the reader does nothing but read identities, so each read is recon (the HMI's start-up reads are not)
    "attack_identity_sweep": {"recon_sweep": {"T0846", "T0888"}, "recon_identity_read": {"T0888"},
                              "it_ot_boundary_crossing": {"T0886"}},
    # a known writer (the HMI) does what it never did: only content rules can see it
    "attack_s7_known_writer_bytes": {"new_write_width": {"T0836", "T0831"}, "address_out_of_range": {"T0861"}},
    "attack_s7_write_flood": {"write_flood": {"T0806", "T0813"}},
    "attack_modbus_fc16_new_values": {"value_out_of_range": {"T0836", "T0831"}},
    "attack_hmi_ssh_smb": {"ot_new_service": {"T0869", "T0886"}},
    "attack_modbus_unit_sweep": {"unit_enumeration": {"T0846", "T0888"}},
    "attack_s7_szl_enumeration": {"object_enumeration": {"T0888"}},
    "attack_dnp3_link_sweep_replay": {"unit_enumeration": {"T0846", "T0888"}, "replayed_command": {"T0855", "T0848"}},
    # six control-zone hosts the engineering workstation never spoke to: under scan_hosts and scan_ports
    "attack_nmap_few_ot_hosts": {"network_scan": {"T0846", "T0840"}},
    # a real nmap SYN scan (pcaps/generator/scan.py)
    "attack_port_scan": {"network_scan": {"T0846", "T0840"}, "it_ot_boundary_crossing": {"T0886"}},
}
# scenario -> the host that acts in it: the expected alerts name it as id.orig_h
ACTOR = {"attack_it_modbus_write": "127.20.1.50", "attack_s7_stop_download": "127.10.2.99",
         "attack_dnp3_restart_operate": "127.20.1.50", "attack_cip_reset_forward_open": "127.20.1.50",
         "attack_value_out_of_range": HMI, "attack_identity_sweep": "127.20.1.50",
         "attack_port_scan": "127.20.1.50", "attack_s7_known_writer_bytes": HMI, "attack_s7_write_flood": HMI,
         "attack_modbus_fc16_new_values": HMI, "attack_hmi_ssh_smb": HMI, "attack_nmap_few_ot_hosts": EWS,
         "attack_modbus_unit_sweep": HMI, "attack_dnp3_link_sweep_replay": "127.20.1.50",
         "attack_s7_szl_enumeration": EWS}
KNOWN_WRITER = ("attack_s7_known_writer_bytes", "attack_s7_write_flood", "attack_modbus_fc16_new_values",
                "attack_hmi_ssh_smb", "attack_modbus_unit_sweep", "attack_s7_szl_enumeration")
ALERT_KEYS = ("rule", "severity", "techniques", "id.orig_h", "id.resp_h", "protocol", "evidence")


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path.relative_to(ROOT)} is missing (record it with pcaps/generator/scenarios.py)")
    return path


def otsensor(*argv: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", *map(str, argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def check(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """The baseline learned from the benign learning capture (learned once for the module)."""
    need(LEARN)
    path = tmp_path_factory.mktemp("baseline") / "BASE.json"
    check(otsensor("baseline", "learn", LEARN, "--zones", ZONES, "-o", path))
    return path


def analyze(name: str, baseline: Path, out: Path) -> list[dict]:
    """``otsensor analyze`` one scenario capture against the baseline; the alert rows (none if no file)."""
    pcap = need(SCENARIOS / f"{name}.pcap")
    check(otsensor("analyze", pcap, "--baseline", baseline, "--zones", ZONES, "-o", out, "-q"))
    alerts = out / "alerts.jsonl"
    if not alerts.exists():
        return []
    return [json.loads(line) for line in alerts.read_text().splitlines() if line.strip()]


def summary(alerts: list[dict]) -> str:
    return "\n".join(f"  {a.get('rule')} {a.get('id.orig_h')} -> {a.get('id.resp_h')} {a.get('protocol')} "
                     f"{[t.get('id') for t in a.get('techniques', [])]}: {a.get('message', '')}"
                     for a in alerts) or "  (none)"


def test_learned_baseline_knows_the_plant(baseline: Path) -> None:
    base = json.loads(baseline.read_text())
    for ip, protocol in CONTROLLERS.items():
        assert ip in base["assets"], f"controller {ip} missing from assets: {sorted(base['assets'])}"
        assert protocol in base["assets"][ip]["protocols_served"], (ip, base["assets"][ip])
        assert base["assets"][ip]["zone"] == "cell", (ip, base["assets"][ip])
    edges = {(e["client"], e["server"], e["protocol"]) for e in base["edges"].values()}
    missing = {(HMI, ip, proto) for ip, proto in CONTROLLERS.items()} - edges
    assert not missing, f"HMI edges missing: {sorted(missing)}; learned: {sorted(edges)}"
    assert (HISTORIAN, "127.10.1.10", "modbus") in edges, sorted(edges)
    assert EWS in base["engineering_hosts"], base["engineering_hosts"]
    assert HMI not in base["engineering_hosts"], base["engineering_hosts"]


def test_learned_baseline_has_the_polling_cadence_and_setpoint_range(baseline: Path) -> None:
    base = json.loads(baseline.read_text())

    def periods(client: str) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for key, cadence in base["cadence"].items():
            if key.startswith(f"{client} -> "):
                out.setdefault(key.split()[2], []).append(cadence["interval_s"])
        return out

    hmi = periods(HMI)
    # the generator polls every controller every 1.0 s (DNP3: an integrity poll every 10th cycle besides)
    slow = {ip for ip in CONTROLLERS if not any(0.9 <= p <= 1.1 for p in hmi.get(ip, []))}
    assert not slow, f"no 1 s HMI poll learned for {sorted(slow)}: {hmi}"
    assert any(1.8 <= p <= 2.2 for p in periods(HISTORIAN).get("127.10.1.10", [])), periods(HISTORIAN)
    setpoint = [v for k, v in base["written_values"].items() if k.startswith("127.10.1.10 modbus") and k.endswith(" 5")]
    # the learning capture writes 100, 200 and between, each value about once: a range, not a set
    assert setpoint == [{"word": {"range": [100, 200]}}], base["written_values"]


def test_second_benign_capture_raises_no_alert(baseline: Path, tmp_path: Path) -> None:
    alerts = analyze("benign_second", baseline, tmp_path / "out")
    assert alerts == [], f"false positives on benign_second.pcap ({len(alerts)}):\n{summary(alerts)}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_attack_scenario_raises_expected_alerts(name: str, baseline: Path, tmp_path: Path) -> None:
    alerts = analyze(name, baseline, tmp_path / "out")
    for alert in alerts:
        missing_keys = [k for k in ALERT_KEYS if k not in alert]
        assert not missing_keys, f"alert row lacks {missing_keys}: {alert}"
    problems = []
    for rule, technique_ids in EXPECTED[name].items():
        raised = [a for a in alerts if a["rule"] == rule and a["id.orig_h"] == ACTOR[name]]
        if not raised:
            problems.append(f"{rule}: not raised for {ACTOR[name]}")
            continue
        carried = [{t["id"] for t in a["techniques"]} for a in raised]
        if not any(technique_ids <= ids for ids in carried):
            problems.append(f"{rule}: no alert carries all of {sorted(technique_ids)}; they carry "
                            f"{[sorted(ids) for ids in carried]}")
    assert not problems, f"{name}: " + "; ".join(problems) + f"\nalerts raised:\n{summary(alerts)}"


@pytest.mark.parametrize("name", KNOWN_WRITER)
def test_known_writer_attacks_are_caught_by_content_not_by_newness(name: str, baseline: Path, tmp_path: Path) -> None:
    alerts = analyze(name, baseline, tmp_path / "out")
    newness = [a for a in alerts if a["rule"] in ("new_asset", "new_edge", "new_writer")]
    assert alerts and not newness, f"{name}:\n{summary(alerts)}"


def test_accepting_the_new_values_makes_them_normal(baseline: Path, tmp_path: Path) -> None:
    alerts = analyze("attack_modbus_fc16_new_values", baseline, tmp_path / "out")
    assert len([a for a in alerts if a["rule"] == "value_out_of_range"]) == 4, summary(alerts)  # 4 registers
    accepted = tmp_path / "accepted.json"
    check(otsensor("baseline", "accept", baseline, tmp_path / "out" / "alerts.jsonl", "--all", "-o", accepted))
    assert analyze("attack_modbus_fc16_new_values", accepted, tmp_path / "again") == []


def test_ssh_and_smb_inside_the_cell_are_named_by_content(baseline: Path, tmp_path: Path) -> None:
    alerts = analyze("attack_hmi_ssh_smb", baseline, tmp_path / "out")
    found = {(a["protocol"], a["id.resp_h"], a["id.resp_p"], a["severity"]) for a in alerts
             if a["rule"] == "ot_new_service" and a["id.orig_h"] == HMI}
    assert found == {("ssh", "127.10.1.30", 22, "high"), ("smb", "127.10.1.30", 445, "high")}, summary(alerts)
    conns = [json.loads(line) for line in (tmp_path / "out" / "conn.jsonl").read_text().splitlines()]
    assert {c["id.resp_p"]: c.get("service_guess") for c in conns if c["id.resp_p"] in (22, 445)} == \
        {22: "ssh", 445: "smb"}


def test_the_replayed_crob_names_its_first_sender(baseline: Path, tmp_path: Path) -> None:
    alerts = analyze("attack_dnp3_link_sweep_replay", baseline, tmp_path / "out")
    replays = [a for a in alerts if a["rule"] == "replayed_command"]
    assert replays and all(HMI in a["message"] and a["id.resp_h"] == "127.10.1.40" for a in replays), \
        summary(alerts)
    [sweep] = [a for a in alerts if a["rule"] == "unit_enumeration"]
    assert "1, 2, 3, 4, 5, 6" in sweep["message"], sweep["message"]   # the link addresses swept


def test_workers_see_what_one_process_sees_of_a_connection_guessed_by_content(baseline: Path, tmp_path: Path) -> None:
    """--workers hands the analyzers a view of each flow: it must carry the worker's service_guess."""
    pcap = need(SCENARIOS / "attack_hmi_ssh_smb.pcap")
    rows = {}
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        check(otsensor("analyze", pcap, "--baseline", baseline, "--zones", ZONES, "-o", out, "-q", "--workers", workers))
        rows[workers] = sorted((a["rule"], a["protocol"], a["message"]) for a in
                               map(json.loads, (out / "alerts.jsonl").read_text().splitlines()))
        assert json.loads((out / "summary.json").read_text())["analyzer_errors"] == 0
    assert rows["2"] == rows["1"] and ("ot_new_service", "ssh") in {r[:2] for r in rows["1"]}, rows
