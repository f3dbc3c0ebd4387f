"""Values per item and width for DNP3 output commands and Logix tag writes (issue 13, item 1).

Every object of a DNP3 select / operate / direct operate (CROB control codes, analog output values) and
every element of a Logix Write Tag / Write Tag Fragmented / Read Modify Write Tag, alone, in a Multiple
Service Packet or through Unconnected Send, is learned per item (``g41 3``, ``Level[] 2``) and width
(``g41v2``, ``dint``) and checked like S7 and Modbus writes (``value_out_of_range``, ``new_write_width``).

The CIP bytes are the cpppo and pylogix conversation of ``pcaps/enip_hmi.pcap`` (pcaps/generator/enip.py),
with a few value or type octets changed in place; the DNP3 ones are built here (tests/baselines/dnp3_sessions.py).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from scapy.all import TCP, Raw, rdpcap, wrpcap  # type: ignore

from tests.baselines.dnp3_sessions import (CLOSE_PULSE_ON, DIRECT_OPERATE, LATCH_OFF, LATCH_ON, OPERATE, SELECT,
                                           Conversation, analog_outputs, crobs)
from tests.baselines.replay import PCAPS, analyze_capture, learn_baseline, session, write

HMI, OUTSTATION = "127.10.2.20", "127.10.1.40"
VALUE_RULES = ("value_out_of_range", "new_write_width")


def value_alerts(pcap: Path, baseline: dict, out: Path, **kw) -> set[tuple[str, str]]:
    alerts = analyze_capture(pcap, out, baseline=baseline, **kw)["alerts"]
    return {(a["rule"], a["identifier"]) for a in alerts if a["rule"] in VALUE_RULES}


# -- DNP3 -------------------------------------------------------------------------------------------------

def dnp3_capture(path: Path, conversation: Conversation) -> Path:
    return write(path, session(conversation.segments, (HMI, 40001), (OUTSTATION, 20000)))


def routine() -> Conversation:
    """The HMI's select-before-operate of CROB 0 (latch on / off) and analog output 3 (100..200)."""
    talk = Conversation()
    for i in range(6):
        code = LATCH_ON if i % 2 == 0 else LATCH_OFF
        talk.request(SELECT, crobs((0, code))).request(OPERATE, crobs((0, code)), gap=0.2)
        talk.request(DIRECT_OPERATE, analog_outputs((3, 100 + 20 * i)))
    return talk


@pytest.fixture(scope="module")
def dnp3_baseline(tmp_path_factory) -> dict:
    return learn_baseline(dnp3_capture(tmp_path_factory.mktemp("dnp3") / "learn.pcap", routine()))


def test_dnp3_output_points_are_learned_per_index_and_variation(dnp3_baseline: dict) -> None:
    values = dnp3_baseline["written_values"]
    assert values[f"{OUTSTATION} dnp3 g12 0"] == {"g12v1": {"set": ["Latch Off", "Latch On"]}}
    assert values[f"{OUTSTATION} dnp3 g41 3"] == {"g41v2": {"range": [100, 200]}}


def test_dnp3_routine_commands_raise_no_value_alert(dnp3_baseline: dict, tmp_path: Path) -> None:
    pcap = dnp3_capture(tmp_path / "again.pcap", routine())
    assert value_alerts(pcap, dnp3_baseline, tmp_path / "out") == set()


def test_every_object_of_a_dnp3_request_is_checked(dnp3_baseline: dict, tmp_path: Path) -> None:
    talk = Conversation()
    # one request, three objects in two headers: only the second CROB and the analog value depart
    talk.request(DIRECT_OPERATE, crobs((0, LATCH_ON), (0, CLOSE_PULSE_ON)) + analog_outputs((3, 5000)))
    # the analog output at another width (g41v1, 32 bits) with a value in the learned range
    talk.request(DIRECT_OPERATE, analog_outputs((3, 150), variation=1))
    pcap = dnp3_capture(tmp_path / "attack.pcap", talk)
    assert value_alerts(pcap, dnp3_baseline, tmp_path / "out") == {
        ("value_out_of_range", f"{OUTSTATION} dnp3 g12 0 g12v1"),
        ("value_out_of_range", f"{OUTSTATION} dnp3 g41 3 g41v2"),
        ("new_write_width", f"{OUTSTATION} dnp3 g41 3 g41v1"),
    }


# -- CIP / Logix ----------------------------------------------------------------------------------------

ENIP_HMI = PCAPS / "enip_hmi.pcap"
# (what the capture's requests hold, what the test puts there): type code, element count, values
PATCHES = {
    # Level[2] = 99 (DINT), the fourth service of a Multiple Service Packet -> 99999
    "msp": (bytes.fromhex("c400010063000000"), bytes.fromhex("c40001009f860100")),
    # Speed[0..2] = 10, 20, 30 (INT) through Unconnected Send: the third element -> 30000
    "unconnected": (bytes.fromhex("c30003000a0014001e00"), bytes.fromhex("c30003000a0014003075")),
    # Temp[1] = 21.5 (REAL), a Write Tag of its own: the same four octets sent as a DINT
    "width": (bytes.fromhex("ca0001000000ac41"), bytes.fromhex("c40001000000ac41")),
}


def patched(path: Path) -> Path:
    frames = rdpcap(str(ENIP_HMI))
    for old, new in PATCHES.values():
        hits = [f for f in frames if TCP in f and old in bytes(f[TCP].payload)]
        assert len(hits) == 1, f"{old.hex()} is in {len(hits)} frames of {ENIP_HMI.name}"
        hits[0][Raw].load = bytes(hits[0][Raw].load).replace(old, new)
        del hits[0][TCP].chksum
    wrpcap(str(path), frames)
    return path


@pytest.fixture(scope="module")
def enip_baseline() -> dict:
    if not ENIP_HMI.exists():
        pytest.skip(f"{ENIP_HMI} is missing (record it with pcaps/generator/enip.py)")
    return learn_baseline(ENIP_HMI)


def test_logix_writes_are_learned_per_element_and_type(enip_baseline: dict) -> None:
    server = next(e["server"] for e in enip_baseline["edges"].values() if e["protocol"] == "enip")
    values = {k.split(" ", 2)[2]: v for k, v in enip_baseline["written_values"].items() if k.startswith(server)}
    assert values["Level[] 2"] == {"dint": {"range": [99, 99]}}            # inside a Multiple Service Packet
    assert set(values["Speed[] 1"]) == {"int"} and values["Temp[] 1"] == {"real": {"range": [21.5, 21.5]}}
    recipe = [k for k in values if k.startswith("Recipe[] ")]               # Write Tag Fragmented, from [10]
    assert "Recipe[] 10" in recipe and all(values[k] == {"sint": {"range": [7, 7]}} for k in recipe)


def test_logix_routine_writes_raise_no_value_alert(enip_baseline: dict, tmp_path: Path) -> None:
    assert value_alerts(ENIP_HMI, enip_baseline, tmp_path / "out") == set()


@pytest.mark.parametrize("workers", [1, 2])
def test_every_logix_element_is_checked_wherever_it_travels(enip_baseline: dict, tmp_path: Path,
                                                              workers: int) -> None:
    server = next(e["server"] for e in enip_baseline["edges"].values() if e["protocol"] == "enip")
    found = value_alerts(patched(tmp_path / "attack.pcap"), enip_baseline, tmp_path / "out", workers=workers)
    assert found == {("value_out_of_range", f"{server} enip Level[] 2 dint"),
                     ("value_out_of_range", f"{server} enip Speed[] 2 int"),
                     ("new_write_width", f"{server} enip Temp[] 1 dint")}
