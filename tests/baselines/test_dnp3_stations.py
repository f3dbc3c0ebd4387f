"""DNP3 masters and outstations against the baseline learned from the scenario plant (issue 13, item 2).

The plant's HMI (127.10.2.20) is the master of outstation 127.10.1.40, link address 10, from link
address 1; the outstation never reports unsolicited.  The attack scenarios recorded from dnp3py
(tests/baselines/test_scenarios.py) show a second master with link address 3; here built requests show
each rule alone: another host with the master's link address, the master's host with another one,
unsolicited responses, time sets by the master and by another host.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.baselines.dnp3_sessions import READ, RECORD_CURRENT_TIME, WRITE, Conversation, time_object
from tests.baselines.replay import PCAPS, analyze_capture, learn_baseline, session, write

LEARN = PCAPS / "scenarios" / "benign_learn.pcap"
HMI, EWS, ATTACKER, OUTSTATION = "127.10.2.20", "127.10.2.30", "127.20.1.50", "127.10.1.40"
STATION_RULES = ("dnp3_second_master", "dnp3_unexpected_master_address", "dnp3_unsolicited_unknown",
                 "dnp3_time_set")
CLASS_0 = bytes([60, 1, 0x06])


@pytest.fixture(scope="module")
def baseline() -> dict:
    if not LEARN.exists():
        pytest.skip(f"{LEARN} is missing (record it with pcaps/generator/scenarios.py)")
    return learn_baseline(LEARN)


def station_alerts(tmp_path: Path, baseline: dict, *sessions: list) -> set[tuple[str, str, str]]:
    pcap = write(tmp_path / "dnp3.pcap", *sessions)
    alerts = analyze_capture(pcap, tmp_path / "out", baseline=baseline)["alerts"]
    return {(a["rule"], a["id.orig_h"], a["identifier"]) for a in alerts if a["rule"] in STATION_RULES}


def test_the_master_its_link_address_and_unsolicited_reporting_are_learned(baseline: dict) -> None:
    assert baseline["dnp3_stations"] == {
        f"{OUTSTATION} 10": {"masters": [HMI], "master_links": [1], "unsolicited": False}}


def test_the_learned_master_polling_raises_nothing(baseline: dict, tmp_path: Path) -> None:
    talk = Conversation(master=1).request(READ, CLASS_0).request(READ, CLASS_0)
    assert station_alerts(tmp_path, baseline, session(talk.segments, (HMI, 41000), (OUTSTATION, 20000))) == set()


def test_another_host_with_the_masters_link_address_is_a_second_master(baseline: dict, tmp_path: Path) -> None:
    talk = Conversation(master=1).request(READ, CLASS_0)
    found = station_alerts(tmp_path, baseline, session(talk.segments, (EWS, 41000), (OUTSTATION, 20000)))
    assert found == {("dnp3_second_master", EWS, f"{EWS}>{OUTSTATION} 10")}


def test_the_masters_host_with_another_link_address_is_unexpected(baseline: dict, tmp_path: Path) -> None:
    talk = Conversation(master=7).request(READ, CLASS_0)
    found = station_alerts(tmp_path, baseline, session(talk.segments, (HMI, 41000), (OUTSTATION, 20000)))
    assert found == {("dnp3_unexpected_master_address", HMI, f"{HMI}>{OUTSTATION} 10:7")}


def test_unsolicited_responses_from_outstations_never_learned_to_send_them(baseline: dict, tmp_path: Path) -> None:
    known = Conversation(outstation=10).request(READ, CLASS_0).unsolicited()
    unknown = Conversation(outstation=11, t=1_800_000_010.0).unsolicited().unsolicited()
    found = station_alerts(tmp_path, baseline, session(known.segments, (HMI, 41000), (OUTSTATION, 20000)),
                           session(unknown.segments, (HMI, 41001), ("127.10.1.41", 20000)))
    assert found == {("dnp3_unsolicited_unknown", OUTSTATION, f"{OUTSTATION} 10:unsolicited"),
                     ("dnp3_unsolicited_unknown", "127.10.1.41", "127.10.1.41 11:unsolicited")}


def test_a_time_set_by_a_host_that_is_not_the_master(baseline: dict, tmp_path: Path) -> None:
    master = Conversation(master=1).request(RECORD_CURRENT_TIME).request(WRITE, time_object(1_800_000_000_000))
    stranger = Conversation(master=1, t=1_800_000_010.0).request(WRITE, time_object(1_700_000_000_000))
    stranger.request(RECORD_CURRENT_TIME)
    found = station_alerts(tmp_path, baseline, session(master.segments, (HMI, 41000), (OUTSTATION, 20000)),
                           session(stranger.segments, (ATTACKER, 41001), (OUTSTATION, 20000)))
    assert found == {("dnp3_time_set", ATTACKER, f"{ATTACKER}>{OUTSTATION} 10:time"),
                     ("dnp3_second_master", ATTACKER, f"{ATTACKER}>{OUTSTATION} 10")}
