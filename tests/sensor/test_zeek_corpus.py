"""Our zeek/*.log against Zeek's own btest baselines for its Modbus and DNP3 traces in the shared corpus.

Zeek's test scripts are not in the corpus, only their traces and baselines; each case below names the
trace, the baseline directory and the logs its script diffs (``btest-diff``), as Zeek's
testing/btest/scripts/base/protocols/{modbus,dnp3} scripts do.  The baselines are Zeek 8's (conn.log
with ip_proto, private address space local).  Where a Zeek script prints events instead of logging, or
diffs a log of Zeek's own that otsensor does not write (analyzer_debug, weird), that file is left out.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import otsensor
from tests.corpus import corpus_dir
from tests.sensor.zeek_btest import canonical, diff, have_tools

BTEST = corpus_dir() / "zeek" / "testing" / "btest"
ITI = corpus_dir() / "iti-ics-tools" / "pcaps" / "bro" / "modbus"
CANONIFIER = Path(__file__).resolve().parents[1] / "zeek_reference" / "icsnpp-modbus" / "scripts" / \
    "diff-remove-timestamps"
# test -> (trace, {our log: baseline log})
CASES = {
    "modbus.modbus_and_non_modbus_on_port_502": (BTEST / "Traces/modbus/modbus-and-non-modbus-p502.pcap",
                                                 {"conn.log": "conn.log", "modbus.log": "modbus.log"}),
    "modbus.events": (BTEST / "Traces/modbus/modbus-eit.pcap", {"conn.log": "conn-second.log"}),
    "modbus.exception_handling": (ITI / "fuzz-72.pcap", {"modbus.log": "modbus.log"}),
    "modbus.register_parsing": (ITI / "fuzz-1011.pcap", {"modbus.log": "modbus.log"}),
    "dnp3.dnp3_udp_en_spon": (BTEST / "Traces/dnp3/dnp3_udp_en_spon.pcap", {"dnp3.log": "dnp3.log"}),
    "dnp3.dnp3_udp_read": (BTEST / "Traces/dnp3/dnp3_udp_read.pcap", {"dnp3.log": "dnp3.log"}),
    "dnp3.dnp3_udp_select_operate": (BTEST / "Traces/dnp3/dnp3_udp_select_operate.pcap", {"dnp3.log": "dnp3.log"}),
    "dnp3.dnp3_udp_write": (BTEST / "Traces/dnp3/dnp3_udp_write.pcap", {"dnp3.log": "dnp3.log"}),
}
# Zeek run without -C drops packets whose checksums are wrong; otsensor reads every packet (as zeek -C).
# fuzz-72's first packet has a bad TCP checksum, so Zeek's connection starts with the next one.
NEEDS_CHECKSUMS = {"modbus.exception_handling"}
# conn.log services Zeek found with analyzers for IT protocols; otsensor names industrial protocols only
IT_SERVICES = ("dce_rpc", "ssl")


def without_it_services(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        cells = line.split("\t")
        if not line.startswith("#") and len(cells) > 7 and cells[7] in IT_SERVICES:
            cells[7] = "-"
        out.append("\t".join(cells))
    return out


@pytest.mark.skipif(not have_tools(), reason="bash and sed run the canonifier")
@pytest.mark.parametrize("test", sorted(CASES))
def test_zeek_baseline(tmp_path, test):
    if test in NEEDS_CHECKSUMS:
        pytest.xfail("Zeek's baseline drops packets with bad checksums; otsensor does not verify checksums")
    trace, logs = CASES[test]
    baselines = BTEST / "Baseline" / f"scripts.base.protocols.{test}"
    if not trace.exists() or not baselines.exists():
        pytest.skip(f"Zeek's trace or baseline not in the corpus at {corpus_dir()}")
    proc = otsensor("analyze", trace, "-o", tmp_path / "out", "-q", "--zeek-logs")
    assert proc.returncode == 0, proc.stderr
    problems = []
    for ours, theirs in logs.items():
        baseline = baselines / theirs
        if ours == "conn.log":   # compared with the services otsensor cannot name left out
            fixed = tmp_path / theirs
            fixed.write_text("\n".join(without_it_services(baseline.read_text().splitlines())) + "\n")
            baseline = fixed
        problems += diff(tmp_path / "out" / "zeek" / ours, baseline, CANONIFIER)
    assert not problems, "\n".join(problems)


def test_uid_masking_keeps_connections_apart():
    """The masking the comparisons rely on still tells two connections apart."""
    lines = ["1.0\tCHhAvVGS1DHFjwGM9\ta", "2.0\tClEkJM2Vm5giqnMf4h\tb", "3.0\tCHhAvVGS1DHFjwGM9\tc"]
    path = Path(__file__)  # any file: canonical() is given lines below
    assert path.exists()
    from tests.sensor.zeek_btest import mask_random
    assert [line.split("\t")[1] for line in mask_random(lines)] == ["UID1", "UID2", "UID1"]


def test_canonical_reads_a_missing_log_as_a_difference(tmp_path):
    assert canonical(tmp_path / "none.log", CANONIFIER) == ["<no none.log>"]
