"""Layer 2 end to end: scapy-built ARP traffic in pcaps through `otsensor analyze` and `baseline learn`:
the bindings learned, each rule on its attack, and quiet on benign ARP."""
from __future__ import annotations

import json
from pathlib import Path

from otsensor.baselines.learn import Observer
from otsensor.sensor.decode import decode_arp
from tests.baselines.arp_traffic import (ATTACKER_MAC, GATEWAY, GATEWAY_MAC, HMI, HMI_MAC, LAPTOP, LAPTOP_MAC, PLC,
                                         PLC_MAC, START, device_comes_up, gratuitous, reply, request, routine, write)
from tests.cli import otsensor

LAYER2_RULES = {"arp_spoofing", "duplicate_ip", "mac_many_ips", "arp_flood", "new_mac"}


def analyze(tmp_path: Path, name: str, packets: list, *args: str | Path) -> tuple[list[dict], Path]:
    pcap = write(tmp_path / f"{name}.pcap", packets)
    out = tmp_path / name
    done = otsensor("analyze", pcap, "-o", out, "-q", *args)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["analyzer_errors"] == 0 and summary["dissector_errors"] == 0, summary["error_samples"]
    return [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()], out


def learn(tmp_path: Path, packets: list) -> Path:
    path = tmp_path / "baseline.json"
    done = otsensor("baseline", "learn", write(tmp_path / "learn.pcap", packets), "-o", path)
    assert done.returncode == 0, done.stderr
    return path


def fired(alerts: list[dict]) -> dict[str, dict]:
    return {a["rule"]: a for a in alerts if a["rule"] in LAYER2_RULES}


def techniques(alert: dict) -> set[str]:
    return {t["id"] for t in alert["techniques"]}


def rows(out: Path, log: str) -> list[dict]:
    path = out / f"{log}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_routine_arp_and_a_device_coming_up_raise_nothing_and_are_logged(tmp_path):
    packets = routine() + device_comes_up(START + 100, LAPTOP_MAC, LAPTOP)
    alerts, out = analyze(tmp_path, "benign", packets)
    assert fired(alerts) == {}
    arp = rows(out, "arp")
    assert len(arp) == 6 * 20 + 5
    kinds = {r["kind"] for r in arp}
    assert kinds == {"request", "reply", "probe", "announcement"}
    assert all("uid" not in r for r in arp)
    probe = next(r for r in arp if r["kind"] == "probe")
    assert (probe["sender_mac"], probe["sender_ip"], probe["target_ip"]) == (LAPTOP_MAC, "0.0.0.0", LAPTOP)


def test_the_baseline_holds_the_bindings_arp_showed(tmp_path):
    baseline = json.loads(learn(tmp_path, routine()).read_text())["layer2"]
    assert baseline["bindings"] == {GATEWAY: [GATEWAY_MAC], PLC: [PLC_MAC], HMI: [HMI_MAC]}
    assert baseline["macs"][PLC_MAC]["ips"] == [PLC] and baseline["macs"][PLC_MAC]["vendor"]
    assert baseline["responders"] == [] and baseline["routers"] == []
    # multicast and broadcast never bind: the requests went to ff:ff:ff:ff:ff:ff
    assert not any(mac.startswith("ff") for mac in baseline["macs"])


def test_unsolicited_replies_poisoning_the_hmi_are_arp_spoofing(tmp_path):
    """arpspoof's way: replies nobody asked for, to the HMI, giving the PLC's address the attacker's MAC,
    while the PLC still answers for itself."""
    attack_start = START + 300
    attack = [reply(attack_start + 2 * i, ATTACKER_MAC, PLC, HMI_MAC, HMI) for i in range(15)]
    alerts, _ = analyze(tmp_path, "poison", routine() + attack)
    rules = fired(alerts)
    assert set(rules) == {"arp_spoofing", "duplicate_ip"}
    spoof = rules["arp_spoofing"]
    assert spoof["severity"] == "high" and techniques(spoof) == {"T0830"}
    assert ATTACKER_MAC in spoof["message"] and PLC_MAC in spoof["message"] and spoof["id.orig_h"] == PLC
    assert spoof["ts"] > attack_start and spoof["evidence"][0]["log"] == "arp"
    assert rules["duplicate_ip"]["count"] >= 2


def test_a_gratuitous_takeover_against_the_baseline_and_the_new_mac(tmp_path):
    baseline = learn(tmp_path, routine())
    later = START + 86400
    attack = [gratuitous(later + 5 * i, ATTACKER_MAC, GATEWAY) for i in range(3)] + \
        [request(later + 20, HMI_MAC, HMI, PLC), reply(later + 20.001, PLC_MAC, PLC, HMI_MAC, HMI)]
    alerts, _ = analyze(tmp_path, "takeover", attack, "--baseline", baseline)
    rules = fired(alerts)
    assert set(rules) == {"arp_spoofing", "new_mac"}
    assert rules["arp_spoofing"]["severity"] == "medium"       # the gateway was not heard: it may be replaced
    assert GATEWAY_MAC in rules["arp_spoofing"]["message"]
    assert techniques(rules["new_mac"]) == {"T0864"} and ATTACKER_MAC in rules["new_mac"]["message"]


def test_the_same_routine_against_its_baseline_is_quiet(tmp_path):
    baseline = learn(tmp_path, routine())
    alerts, _ = analyze(tmp_path, "again", routine(START + 86400), "--baseline", baseline)
    assert fired(alerts) == {}


def test_a_gratuitous_arp_storm_is_an_arp_flood(tmp_path):
    storm = [gratuitous(START + 400 + 0.2 * i, HMI_MAC, HMI) for i in range(40)]
    alerts, _ = analyze(tmp_path, "storm", routine() + storm)
    rules = fired(alerts)
    assert set(rules) == {"arp_flood"}
    assert techniques(rules["arp_flood"]) == {"T0830", "T0814"} and HMI_MAC in rules["arp_flood"]["message"]


def test_one_mac_claiming_many_addresses_unless_learned_as_proxy_arp(tmp_path):
    remote = [f"10.1.1.{n}" for n in range(150, 157)]

    def proxy(start: float) -> list:   # the gateway answers the HMI for addresses behind it
        return [p for i, ip in enumerate(remote) for p in
                (request(start + 40 * i, HMI_MAC, HMI, ip), reply(start + 40 * i + 0.001, GATEWAY_MAC, ip, HMI_MAC, HMI))]

    alerts, _ = analyze(tmp_path, "proxy", routine() + proxy(START + 10))
    assert set(fired(alerts)) == {"mac_many_ips"}
    assert fired(alerts)["mac_many_ips"]["severity"] == "high"
    baseline = learn(tmp_path, routine() + proxy(START + 10))
    assert json.loads(baseline.read_text())["layer2"]["responders"] == [GATEWAY_MAC]
    alerts, _ = analyze(tmp_path, "proxy_known", routine(START + 86400) + proxy(START + 86410),
                        "--baseline", baseline)
    assert fired(alerts) == {}


def test_two_devices_answering_for_one_address_is_a_duplicate_ip_only(tmp_path):
    clash = [p for i in range(3) for p in (request(START + 400 + 30 * i, HMI_MAC, HMI, PLC),
                                            reply(START + 400.001 + 30 * i, PLC_MAC, PLC, HMI_MAC, HMI),
                                            reply(START + 400.002 + 30 * i, LAPTOP_MAC, PLC, HMI_MAC, HMI))]
    alerts, _ = analyze(tmp_path, "clash", routine() + clash)
    assert set(fired(alerts)) == {"duplicate_ip"}
    assert fired(alerts)["duplicate_ip"]["id.orig_h"] == PLC


def test_an_address_handed_to_a_new_device_after_the_old_went_quiet_is_no_spoofing(tmp_path):
    before = [request(START + 30 * i, HMI_MAC, HMI, PLC) for i in range(3)] + \
        [reply(START + 30 * i + 0.001, PLC_MAC, PLC, HMI_MAC, HMI) for i in range(3)]
    after = [request(START + 600, HMI_MAC, HMI, PLC), reply(START + 600.001, LAPTOP_MAC, PLC, HMI_MAC, HMI)]
    alerts, _ = analyze(tmp_path, "reassigned", before + after)
    assert fired(alerts) == {}


def test_malformed_arp_is_an_anomaly_of_no_flow(tmp_path):
    spoofed_source = reply(START, PLC_MAC, PLC, HMI_MAC, HMI, eth_src=ATTACKER_MAC)
    _, out = analyze(tmp_path, "malformed", [spoofed_source])
    anomalies = rows(out, "anomalies")
    assert [(a["protocol"], a["name"]) for a in anomalies] == [("arp", "arp.sender_mac_mismatch")]
    assert "uid" not in anomalies[0] and anomalies[0]["detail"]["eth_src"] == ATTACKER_MAC
    assert rows(out, "arp")[0]["eth_src"] == ATTACKER_MAC   # the message itself is still written
    assert json.loads((out / "summary.json").read_text())["anomalies"] == {"arp.sender_mac_mismatch": 1}


def test_workers_see_the_arp_one_process_sees(tmp_path):
    attack = [reply(START + 300 + 2 * i, ATTACKER_MAC, PLC, HMI_MAC, HMI) for i in range(15)]
    one, out_one = analyze(tmp_path, "one", routine() + attack)
    two, out_two = analyze(tmp_path, "two", routine() + attack, "--workers", "2")
    assert (out_one / "arp.jsonl").read_bytes() == (out_two / "arp.jsonl").read_bytes()
    strip = [{k: v for k, v in a.items() if k not in ("id", "first_id")} for a in one]
    assert strip == [{k: v for k, v in a.items() if k not in ("id", "first_id")} for a in two]
    assert set(fired(two)) == {"arp_spoofing", "duplicate_ip"}


def test_the_learning_state_carries_the_bindings_across_a_restart():
    observer = Observer()
    for packet in routine():
        arp = decode_arp(1, bytes(packet), float(packet.time))
        if arp is not None:
            observer.observe_arp(arp[0])
    state = json.loads(json.dumps(observer.to_state()))
    restored = Observer()
    restored.restore(state)
    assert restored.layer2.to_baseline() == observer.layer2.to_baseline()
    assert restored.layer2.to_baseline()["bindings"][PLC] == [PLC_MAC]


def test_a_new_mac_sending_from_a_local_address_of_an_ot_zone(tmp_path):
    """No ARP from the newcomer (a static neighbour entry): its IP traffic on the segment shows it."""
    from tests.baselines.arp_traffic import scapy
    zones = tmp_path / "zones.toml"
    zones.write_text('[[zones]]\nname = "cell"\ncidrs = ["10.1.1.0/24"]\nlevel = 1\nkind = "ot"\n')
    path = tmp_path / "baseline.json"
    done = otsensor("baseline", "learn", write(tmp_path / "learn.pcap", routine()), "--zones", zones, "-o", path)
    assert done.returncode == 0, done.stderr
    later = START + 86400
    newcomer = scapy.Ether(src=LAPTOP_MAC, dst=PLC_MAC) / scapy.IP(src=LAPTOP, dst=PLC) / scapy.TCP(sport=50000,
                                                                                                     dport=502)
    newcomer.time = later + 50
    alerts, _ = analyze(tmp_path, "newcomer", routine(later) + [newcomer], "--baseline", path, "--zones", zones)
    rules = fired(alerts)
    assert set(rules) == {"new_mac"}
    assert LAPTOP_MAC in rules["new_mac"]["message"] and "zone cell" in rules["new_mac"]["message"]
    assert rules["new_mac"]["evidence"][0]["log"] == "conn"
