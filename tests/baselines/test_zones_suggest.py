"""`otsensor zones suggest` on real traffic under the addressing plants really have: both IP families, public space."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from scapy.all import Ether, ICMPv6ND_NS, ICMPv6ND_RS, IPv6  # type: ignore

from otsensor.baselines.zones import load_zones
from tests.baselines.replay import PCAPS, conversation, session, write
from tests.corpus import corpus_dir

MODBUS = conversation(PCAPS / "modbus_hmi.pcap", 502)


def suggest(tmp_path: Path, *captures: Path) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "zones.toml"
    proc = subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "zones", "suggest", *map(str, captures),
                           "-o", str(out)], capture_output=True, text=True, timeout=300)
    return proc, out


def link_local_chatter(t0: float) -> list:
    """What every IPv6-enabled Windows or Linux host sends on a plant network: DAD and router solicitation."""
    dad = Ether(src="02:00:00:00:00:99") / IPv6(src="::", dst="ff02::1:ff00:99") / ICMPv6ND_NS(tgt="fe80::99")
    rs = Ether(src="02:00:00:00:00:99") / IPv6(src="fe80::99", dst="ff02::2") / ICMPv6ND_RS()
    dad.time, rs.time = t0, t0 + 1
    return [dad, rs]


def test_both_families_in_one_capture_draft_zones_for_each(tmp_path):
    t0 = MODBUS[0].ts
    pcap = write(tmp_path / "mixed.pcap",
                 session(MODBUS, ("10.10.2.20", 40100), ("10.10.1.10", 502)),
                 session(MODBUS, ("fd00:10:2::20", 40200), ("fd00:10:1::10", 502)),
                 link_local_chatter(t0))
    proc, out = suggest(tmp_path, pcap)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    zones = {z["cidrs"][0]: z for z in tomllib.loads(out.read_text())["zones"]}
    assert (zones["10.10.1.0/24"]["level"], zones["10.10.1.0/24"]["kind"]) == (1, "ot")
    assert (zones["fd00:10:1::/64"]["level"], zones["fd00:10:1::/64"]["kind"]) == (1, "ot")
    assert (zones["fd00:10:2::/64"]["level"], zones["fd00:10:2::/64"]["kind"]) == (2, "ot")
    assert zones["fe80::/64"]["kind"] == "it"            # a link-local host that speaks no industrial protocol
    assert "::/64" not in zones                          # the unspecified address of duplicate address detection
    assert list(zones) == sorted(zones, key=lambda c: (":" in c, c)), "IPv4 zones first, then IPv6"
    parsed = load_zones(str(out))
    assert parsed.zone_of("fd00:10:1::10").level == 1 and parsed.zone_of("10.10.1.10").level == 1


def test_a_baseline_and_an_analysis_over_both_families(tmp_path):
    """learn, diff and analyze with the drafted zones: every place that orders or compares addresses."""
    pcap = write(tmp_path / "mixed.pcap",
                 session(MODBUS, ("10.10.2.20", 40100), ("10.10.1.10", 502)),
                 session(MODBUS, ("fd00:10:2::20", 40200), ("fd00:10:1::10", 502)),
                 link_local_chatter(MODBUS[0].ts))
    proc, zones = suggest(tmp_path, pcap)
    assert proc.returncode == 0, proc.stderr
    cli = [sys.executable, "-m", "otsensor.sensor.cli"]
    for args in (["baseline", "learn", str(pcap), "--zones", str(zones), "-o", str(tmp_path / "b.json")],
                 ["baseline", "diff", str(tmp_path / "b.json"), str(tmp_path / "b.json")],
                 ["analyze", str(pcap), "--zones", str(zones), "--baseline", str(tmp_path / "b.json"),
                  "-o", str(tmp_path / "out"), "-q"]):
        run = subprocess.run([*cli, *args], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0 and not run.stderr, (args, run.stderr)
    assets = (tmp_path / "out" / "assets.json").read_text()
    assert assets.index('"10.10.1.10"') < assets.index('"fd00:10:1::10"')


# Public captures that mix IPv4 with IPv6 (link-local, or the unspecified address of DAD).
MIXED_CORPUS = ["agentcarter-s7plus/Wireshark Paketler/2.pcapng", "emreekin-ics-pcaps/COTP/pro4.pcap",
                "emreekin-ics-pcaps/DNP3/DNP3ValueBinary.pcap",
                "emreekin-ics-pcaps/Ethernet_IP/ControlLogix_Logix5000_download_upload_run.pcap",
                "iti-ics-tools/pcaps/s7/S7Comm/wrapup.pcapng"]


@pytest.mark.parametrize("name", MIXED_CORPUS)
def test_corpus_captures_with_both_families(tmp_path, name):
    path = corpus_dir() / name
    if not path.exists():
        pytest.skip(f"corpus file {name} not present")
    proc, out = suggest(tmp_path, path)
    assert proc.returncode == 0, proc.stderr
    draft = tomllib.loads(out.read_text())
    assert any(":" in z["cidrs"][0] for z in draft["zones"]) and any(":" not in z["cidrs"][0] for z in draft["zones"])
