"""A plant numbered from public address space is a plant, not the Internet.

Plants and labs often run on public space (a university's or a company's own range).  Its
industrial hosts must get zones from `zones suggest`, and must not raise
ot_internet_communication when they talk to each other; a PLC polled from elsewhere on the
Internet, and an HMI talking to a cloud service, still must.
"""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from otsensor.baselines.zones import load_zones
from tests.baselines.replay import PCAPS, Segment, analyze_capture, conversation, session, write
from tests.corpus import corpus_dir

MODBUS = conversation(PCAPS / "modbus_hmi.pcap", 502)
HMI, PLC, EWS = "141.81.0.10", "141.81.0.24", "141.81.2.30"     # one /16, two /24s
CLOUD, ATTACKER = "52.0.218.127", "45.33.32.156"


def https(client: str, server: str, t0: float) -> list:
    """A short TCP/443 exchange (opaque bytes: the sensor decodes no TLS)."""
    hello = [Segment(t0, True, bytes(range(1, 200))), Segment(t0 + 0.05, False, bytes(range(200, 255)) * 3)]
    return session(hello, (client, 50443), (server, 443))


def plant(tmp_path: Path, *extra: list) -> Path:
    t0 = MODBUS[0].ts
    return write(tmp_path / "plant.pcap",
                 session(MODBUS, (HMI, 40100), (PLC, 502)),
                 session(MODBUS, (EWS, 40200), (PLC, 502), t0=t0 + 2),
                 https(HMI, CLOUD, t0 + 1), *extra)


def internet_alerts(run: dict) -> set[tuple[str, str]]:
    return {(a["id.orig_h"], a["id.resp_h"]) for a in run["alerts"] if a["rule"] == "ot_internet_communication"}


def test_zones_suggest_drafts_public_plant_subnets(tmp_path):
    out = tmp_path / "zones.toml"
    proc = subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "zones", "suggest", str(plant(tmp_path)),
                           "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    zones = {z["cidrs"][0]: z for z in tomllib.loads(out.read_text())["zones"]}
    assert (zones["141.81.0.0/24"]["level"], zones["141.81.0.0/24"]["kind"]) == (1, "ot")
    assert (zones["141.81.2.0/24"]["level"], zones["141.81.2.0/24"]["kind"]) == (2, "ot")
    assert "52.0.218.0/24" not in zones                        # the cloud service stays the Internet
    assert f"{HMI} hmi_scada (talks to the Internet)" in out.read_text()


def test_no_internet_alert_inside_a_public_plant(tmp_path):
    run = analyze_capture(plant(tmp_path), tmp_path / "out")
    assert internet_alerts(run) == {(HMI, CLOUD)}


def test_a_plc_polled_from_elsewhere_on_the_internet_still_alerts(tmp_path):
    pcap = plant(tmp_path, session(MODBUS, (ATTACKER, 40300), (PLC, 502), t0=MODBUS[0].ts + 5))
    run = analyze_capture(pcap, tmp_path / "out")
    assert internet_alerts(run) == {(HMI, CLOUD), (ATTACKER, PLC)}


def test_with_the_drafted_zones_the_plant_stays_quiet(tmp_path):
    (tmp_path / "normal").mkdir()
    zones = tmp_path / "zones.toml"
    normal = plant(tmp_path / "normal")
    subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "zones", "suggest", str(normal), "-o", str(zones)],
                   capture_output=True, text=True, timeout=300, check=True)
    pcap = plant(tmp_path, session(MODBUS, (ATTACKER, 40300), (PLC, 502), t0=MODBUS[0].ts + 5))
    run = analyze_capture(pcap, tmp_path / "out", zones=load_zones(str(zones)))
    assert internet_alerts(run) == {(HMI, CLOUD), (ATTACKER, PLC)}


# Public captures of plants and labs numbered from public space
PUBLIC_PLANTS = ["ct-samples/Protocols/Modbus/ModbusTCP/Plant1_ModbusTCP.pcap",
                 "ct-samples/Protocols/S7comm/Plant1_S7comm.pcap", "iti-ics-tools/pcaps/ModbusTCP/mb2.pcap",
                 "iti-ics-tools/pcaps/s7/step7_s300_stop.pcapng"]


@pytest.mark.parametrize("name", PUBLIC_PLANTS)
def test_public_plants_of_the_corpus(tmp_path, name):
    path = corpus_dir() / name
    if not path.exists():
        pytest.skip(f"corpus file {name} not present")
    run = analyze_capture(path, tmp_path / "out")
    assert internet_alerts(run) == set()
    out = tmp_path / "zones.toml"
    proc = subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "zones", "suggest", str(path), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    drafted = load_zones(str(out))
    controllers = [ip for ip, a in run["assets"].items() if a["role"] == "plc_rtu"]
    assert controllers and all(drafted.zone_of(ip).kind == "ot" for ip in controllers)
