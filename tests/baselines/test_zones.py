"""Zones and conduits: parsing, lookup, defaults, conduit rules, and the drafted zones file."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from otsensor.baselines.zones import ZonesError, is_control_zone, load_zones, parse_zones

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"

PLANT = {
    "zones": [
        {"name": "cell", "cidrs": ["10.10.1.0/24"], "level": 1, "kind": "ot"},
        {"name": "cell-safety", "cidrs": ["10.10.1.128/25"], "level": 0, "kind": "ot"},
        {"name": "dmz", "cidrs": ["10.50.0.0/16"], "level": 3.5, "kind": "dmz"},
        {"name": "corp", "cidrs": ["10.20.0.0/16", "fd20::/64"], "level": 4, "kind": "it"},
    ],
    "conduits": [
        {"from": "corp", "to": "cell", "protocols": ["modbus"], "hosts": ["10.20.1.60"]},
        {"from": "dmz", "to": "cell", "ports": [502]},
    ],
}


@pytest.fixture
def zones():
    return parse_zones(PLANT)


@pytest.mark.parametrize("ip,zone,level,kind", [
    ("10.10.1.5", "cell", 1, "ot"),
    ("10.10.1.200", "cell-safety", 0, "ot"),      # the longer prefix wins
    ("10.50.3.4", "dmz", 3.5, "dmz"),
    ("fd20::7", "corp", 4, "it"),
    ("192.168.7.7", "unlisted", 4, "it"),         # private space no zone lists
    ("127.0.0.1", "unlisted", 4, "it"),
    ("8.8.8.8", "internet", 5, "external"),
    ("255.255.255.255", "broadcast", None, "broadcast"),
    ("239.1.2.3", "broadcast", None, "broadcast"),
])
def test_lookup_and_defaults(zones, ip, zone, level, kind):
    z = zones.zone_of(ip)
    assert (z.name, z.level, z.kind) == (zone, level, kind)


def test_conduits(zones):
    corp, cell, dmz = zones.by_name["corp"], zones.by_name["cell"], zones.by_name["dmz"]
    assert zones.conduit_allows(corp, cell, "modbus", 502, "10.20.1.60", "10.10.1.5")
    assert not zones.conduit_allows(corp, cell, "modbus", 502, "10.20.1.50", "10.10.1.5")   # not the historian
    assert not zones.conduit_allows(corp, cell, "s7comm", 102, "10.20.1.60", "10.10.1.5")   # not that protocol
    assert zones.conduit_allows(dmz, cell, "anything", 502, "10.50.0.1", "10.10.1.5")
    assert not zones.conduit_allows(dmz, cell, "anything", 102, "10.50.0.1", "10.10.1.5")
    assert not zones.conduit_allows(cell, corp, "modbus", 502, "10.10.1.5", "10.20.1.60")  # conduits are directed
    assert zones.conduit_allows(cell, cell, "x", 1, "a", "b")
    assert is_control_zone(cell) and not is_control_zone(dmz) and not is_control_zone(corp)


def test_tag_fields(zones):
    assert zones.tag("10.20.1.50", "10.10.1.5") == {"orig_zone": "corp", "orig_level": 4.0,
                                                    "resp_zone": "cell", "resp_level": 1.0}


@pytest.mark.parametrize("text,message", [
    ("[[zones]]\ncidrs=['10.0.0.0/8']\n", "name: required"),
    ("[[zones]]\nname='a'\nkind='plant'\n", "kind: expected one of"),
    ("[[zones]]\nname='a'\nlevel=9\n", "level: expected a value from 0 to 5"),
    ("[[zones]]\nname='a'\ncidrs=['10.0.0.300/8']\n", "expected CIDRs"),
    ("[[conduits]]\nfrom='a'\nto='b'\n", "unknown zone"),
    ("zones = [", "not valid TOML"),
])
def test_bad_zones_files_name_the_file_and_problem(tmp_path, text, message):
    path = tmp_path / "zones.toml"
    path.write_text(text)
    with pytest.raises(ZonesError) as info:
        load_zones(str(path))
    assert message in str(info.value) and str(path) in str(info.value)


def test_zones_suggest_drafts_a_reviewable_file(tmp_path):
    out = tmp_path / "zones.toml"
    captures = [str(p) for p in sorted(PCAPS.glob("modbus_*.pcap")) + sorted(PCAPS.glob("s7_*.pcap"))]
    proc = subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "zones", "suggest", *captures, "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    draft = tomllib.loads(out.read_text())
    by_cidr = {z["cidrs"][0]: z for z in draft["zones"]}
    plc_net = by_cidr["127.10.1.0/24"]          # the PLCs' subnet
    assert (plc_net["level"], plc_net["kind"]) == (1, "ot")
    assert "127.10.1.10 plc_rtu" in out.read_text()
    parsed = load_zones(str(out))                # the draft is itself a valid zones file
    assert parsed.zone_of("127.10.1.30").name == plc_net["name"]


def test_broadcast_and_multicast_destinations_are_never_assets(tmp_path):
    """cpppo's own ListIdentity request (enip_engineering.pcap), sent to the limited broadcast and to a
    multicast group as a discovery tool does: the sender is an asset, the destinations are not."""
    from scapy.all import IP, UDP, Ether, rdpcap, wrpcap  # type: ignore

    from tests.baselines.replay import PCAPS, analyze_capture

    source = PCAPS / "enip_engineering.pcap"
    if not source.exists():
        pytest.skip("enip_engineering.pcap is missing")
    [request] = [bytes(f[UDP].payload) for f in rdpcap(str(source)) if UDP in f and f[UDP].dport == 44818][:1]
    frames = []
    for i, dst in enumerate(("255.255.255.255", "224.0.1.1", "127.10.1.50")):
        frame = Ether(src="02:00:00:00:00:05", dst="ff:ff:ff:ff:ff:ff") / IP(src="127.20.1.5", dst=dst) / \
            UDP(sport=50000 + i, dport=44818) / request
        frame.time = 1_700_000_000 + i
        frames.append(frame)
    wrpcap(str(tmp_path / "discovery.pcap"), frames)
    assets = analyze_capture(tmp_path / "discovery.pcap", tmp_path / "out")["assets"]
    assert "127.20.1.5" in assets and "127.10.1.50" in assets, sorted(assets)
    assert not {"255.255.255.255", "224.0.1.1"} & set(assets), sorted(assets)
