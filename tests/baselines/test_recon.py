"""Identity reads: an HMI reading the devices it polls is routine; a host that only reads identities is recon.

Captures are the committed ones from real stacks, and the real pymodbus conversation of
modbus_hmi.pcap (FC 43/14 device identification first, then polling) replayed between
other hosts, in full or cut after the identification.
"""
from __future__ import annotations

import pytest

from tests.baselines.replay import PCAPS, analyze_capture, conversation, session, write
from tests.corpus import corpus_dir

MODBUS = conversation(PCAPS / "modbus_hmi.pcap", 502)
IDENTIFICATION_ONLY = [s for s in MODBUS if s.payload[7] == 43]     # FC 43/14 request and response, nothing else
RECON = {"recon_identity_read", "recon_sweep"}


def recon(run: dict) -> set[tuple[str, str, str]]:
    return {(a["rule"], a["id.orig_h"], a["id.resp_h"]) for a in run["alerts"] if a["rule"] in RECON}


@pytest.mark.parametrize("name", ["modbus_hmi.pcap", "s7_hmi.pcap", "enip_hmi.pcap"])
def test_an_hmi_reading_the_identity_of_what_it_polls_is_not_recon(tmp_path, name):
    """pymodbus FC 43/14 before polling, snap7 SZL 0x001C after it, pylogix Get Attributes All on identity."""
    assert recon(analyze_capture(PCAPS / name, tmp_path)) == set()


def test_an_hmi_starting_up_on_many_devices_is_no_sweep(tmp_path):
    plcs = [f"10.10.1.{n}" for n in range(10, 16)]
    pcap = write(tmp_path / "startup.pcap", *[session(MODBUS, ("10.10.2.20", 40000 + i), (plc, 502),
                                                      t0=MODBUS[0].ts + i) for i, plc in enumerate(plcs)])
    assert recon(analyze_capture(pcap, tmp_path / "out")) == set()


def test_a_device_read_and_left_alone_is_recon(tmp_path):
    """The HMI polls one PLC after identifying it; the other it identifies and never touches again."""
    hmi, polled, probed = "10.10.2.20", "10.10.1.10", "10.10.1.11"
    pcap = write(tmp_path / "probe.pcap",
                 session(MODBUS, (hmi, 40100), (polled, 502)),
                 session(IDENTIFICATION_ONLY, (hmi, 40200), (probed, 502), t0=MODBUS[0].ts + 0.5))
    assert recon(analyze_capture(pcap, tmp_path / "out")) == {("recon_identity_read", hmi, probed)}


def test_identity_sweep_scenario(tmp_path):
    pcap = PCAPS / "scenarios" / "attack_identity_sweep.pcap"
    if not pcap.exists():
        pytest.skip("attack_identity_sweep.pcap not recorded")
    found = recon(analyze_capture(pcap, tmp_path))
    reader = "127.20.1.50"    # reads FC 43/14 from five PLCs and does nothing else with them
    assert {f for f in found if f[0] == "recon_identity_read"} == \
        {("recon_identity_read", reader, f"127.10.1.{n}") for n in range(10, 15)}
    assert {(rule, src) for rule, src, _ in found if rule == "recon_sweep"} == {("recon_sweep", reader)}


@pytest.mark.parametrize("name", ["iti-ics-tools/pcaps/s7/wincc_s400_production.pcapng",
                                  "iti-ics-tools/pcaps/s7/wincc_s300_setup-alarm-read-write.pcapng"])
def test_wincc_reading_szl_while_it_polls_is_not_recon(tmp_path, name):
    path = corpus_dir() / name
    if not path.exists():
        pytest.skip(f"corpus file {name} not present")
    assert recon(analyze_capture(path, tmp_path)) == set()
