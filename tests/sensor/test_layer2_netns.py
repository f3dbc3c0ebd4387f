"""A real ARP spoof on a segment of veth pairs (network namespaces this test creates), seen by `otsensor run`.

A PLC, an HMI and an attacker hang off a hub (a bridge that floods every frame) whose fourth port
mirrors to the sensor's namespace. The HMI sends the PLC datagrams (its kernel resolves the PLC by ARP), then the
attacker sends the HMI ARP replies nobody asked for, giving the PLC's address its own MAC, as arpspoof
does. The HMI's kernel believes them (its neighbour entry for the PLC turns to the attacker's MAC): the
attack is real, and the sensor must say so.
"""
from __future__ import annotations

import json
import sys

import pytest

from tests.sensor.netlab import lab, start_sensor, stop, wait_for_stats  # noqa: F401 (fixture)

PLC, HMI, ATTACKER = "127.77.1.10", "127.77.1.20", "127.77.1.66"
ATTACKER_MAC = "02:77:66:66:66:66"
ADDRESSES = {"plc": PLC, "hmi": HMI, "evil": ATTACKER}
# The HMI's traffic to the PLC: its kernel resolves the PLC's address first (a real ARP request and reply).
POLL = f"""
import socket, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    sock.sendto(b"poll", ("{PLC}", 20000))
    time.sleep(0.2)
"""
SPOOF = f"""
import time
from scapy.all import ARP, Ether, sendp
for _ in range(12):
    sendp(Ether(src="{ATTACKER_MAC}", dst="{{hmi_mac}}") / ARP(op=2, hwsrc="{ATTACKER_MAC}", psrc="{PLC}",
          hwdst="{{hmi_mac}}", pdst="{HMI}"), iface="eth0", verbose=0)
    time.sleep(0.5)
"""


def mac_of(lab, ns: str) -> str:
    return json.loads(lab.run(ns, "ip", "-j", "link", "show", "eth0").stdout)[0]["address"]


def neighbour(lab, ns: str, ip: str) -> str | None:
    entries = json.loads(lab.run(ns, "ip", "-j", "neigh", "show", ip).stdout or "[]")
    return entries[0].get("lladdr") if entries else None


def sent(lab, hosts: dict[str, str]) -> int:
    return sum(lab.link_stats(ns, "eth0")["tx"]["packets"] for ns in hosts.values())


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_arp_spoof_between_namespaces_is_arp_spoofing(lab, tmp_path, workers):
    hub = lab.namespace("hub")
    hosts = {name: lab.namespace(name) for name in ("plc", "hmi", "evil")}
    for i, (name, ns) in enumerate(hosts.items()):
        lab.veth(ns, "eth0", hub, f"port{i}")
        lab.address(ns, "eth0", f"{ADDRESSES[name]}/24")
    sensor_ns = lab.namespace("sensor")
    lab.veth(sensor_ns, "cap0", hub, "mirror")
    lab.hub(hub, ["port0", "port1", "port2", "mirror"])
    lab.run(hosts["evil"], "ip", "link", "set", "eth0", "address", ATTACKER_MAC)
    out = tmp_path / "live"
    sensor = start_sensor(lab, sensor_ns, out, "-i", "cap0", "--stats-interval", "0.2", "--workers", workers)

    poll = lab.run(hosts["hmi"], sys.executable, "-c", POLL)
    assert poll.returncode == 0, poll.stderr
    plc_mac, hmi_mac = mac_of(lab, hosts["plc"]), mac_of(lab, hosts["hmi"])
    assert neighbour(lab, hosts["hmi"], PLC) == plc_mac
    spoof = lab.run(hosts["evil"], sys.executable, "-c", SPOOF.format(hmi_mac=hmi_mac))
    assert spoof.returncode == 0, spoof.stderr
    assert neighbour(lab, hosts["hmi"], PLC) == ATTACKER_MAC       # the HMI's cache is poisoned

    frames = sent(lab, hosts)
    wait_for_stats(out, lambda s: s["capture"]["kernel_received"] >= frames, 30, f"the sensor to get {frames} frames")
    status, _, err, _ = stop(sensor)
    assert status == 0, err
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text().splitlines()]
    spoofing = [a for a in alerts if a["rule"] == "arp_spoofing"]
    assert spoofing, [a["rule"] for a in alerts]
    assert spoofing[0]["severity"] == "high" and {t["id"] for t in spoofing[0]["techniques"]} == {"T0830"}
    assert ATTACKER_MAC in spoofing[0]["message"] and plc_mac in spoofing[0]["message"]
    arp = [json.loads(line) for line in (out / "arp.jsonl").read_text().splitlines()]
    assert {(r["sender_mac"], r["sender_ip"]) for r in arp if r["operation"] == "reply"} >= \
        {(plc_mac, PLC), (ATTACKER_MAC, PLC)}
    assert (lab.link_stats(sensor_ns, "cap0")["tx"]["packets"]) == 0    # the sensor sent nothing
