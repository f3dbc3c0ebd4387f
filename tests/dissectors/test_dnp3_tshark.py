"""DNP3 against tshark 4.0 and over the shared corpus.

* The generated captures (pcaps/dnp3_*.pcap, real dnp3py master and outstation) must agree
  with tshark on every DNP3 frame: link addresses, header and block CRC validity, and per
  fragment the function, IIN and every object header's group/variation, qualifier and range,
  plus CROB fields, command statuses and integer counter / analog values.
* The corpus DNP3 files (MANIFEST.tsv) are compared the same way (a sample unless
  OTSENSOR_DNP3_FULL=1: one tshark call per file costs ~0.5 s and there are 200 files);
  normalisations for known tshark limitations are documented in dnp3_diff.py, and the
  frame-level disagreements tolerated here are listed with their reason.
* Every corpus DNP3 file runs without an exception escaping; malformed and flooding
  captures give anomaly records; memory stays bounded on the largest capture.
"""
from __future__ import annotations

import os
import shutil
import tracemalloc
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from otsensor.dissectors.base import Anomaly
from tests.dissectors.dnp3_diff import compare_file
from tests.dissectors.dnp3_support import PCAPS, corpus_dir, corpus_dnp3_files, run_pcap

GENERATED = sorted(PCAPS.glob("dnp3_*.pcap"))
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

# (file name, frame number): reason.  Only crafted captures appear here.
TOLERATED = {
    # A g0 attribute whose data type octet is 0 inside a fuzzed OPERATE: tshark reads it as a
    # one-octet "placeholder" without a length octet; the dissector applies A.1.1.2 (data type,
    # length, value for every attribute).  The following header then differs.
    ("dnp_malformed.pcap", 156): "g0 data type 0 without length octet (tshark placeholder reading)",
    ("dnp_malformed.pcap", 169): "g0 data type 0 without length octet (tshark placeholder reading)",
}


def _manifest_labels() -> dict[str, str]:
    manifest = corpus_dir() / "MANIFEST.tsv"
    labels = {}
    for line in manifest.read_text().splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) > 8:
            labels[cols[0]] = cols[8]
    return labels


def _corpus_or_skip() -> list:
    files = corpus_dnp3_files()
    if not files:
        pytest.skip(f"corpus not found at {corpus_dir()} (set OTSENSOR_CORPUS)")
    return files


def _sample(files: list) -> list:
    """Every file outside the ~150 near-identical opendnp3 conformance dumps, and every 10th of those."""
    if os.environ.get("OTSENSOR_DNP3_FULL"):
        return files
    conformance = [f for f in files if "conformance" in f.parts]
    return [f for f in files if "conformance" not in f.parts] + conformance[::10]


@needs_tshark
@pytest.mark.parametrize("path", GENERATED, ids=[p.name for p in GENERATED])
def test_generated_captures_agree_with_tshark(path):
    frames, fragments, problems = compare_file(path)
    assert frames > 15 and fragments > 15
    assert problems == [], "\n".join(problems)


def test_generated_captures_cover_the_scenario():
    assert {p.name for p in GENERATED} >= {"dnp3_scada.pcap", "dnp3_engineering.pcap"}
    functions, masters, tags = Counter(), set(), set()
    for path in GENERATED:
        for r in run_pcap(path):
            if r.LOG == "dnp3" and r.fc_request:
                functions[r.fc_request] += 1
                masters.add(r.link_src)
                tags |= set(r.op().tags)
            assert not isinstance(r, Anomaly), r.to_dict()
    assert set(functions) >= {
        "READ", "WRITE", "SELECT", "OPERATE", "DIRECT_OPERATE", "DIRECT_OPERATE_NR", "COLD_RESTART",
        "WARM_RESTART", "STOP_APPL", "ENABLE_UNSOLICITED", "DISABLE_UNSOLICITED", "DELAY_MEASURE"}
    assert masters == {1, 3}
    assert tags >= {"select", "operate", "direct_operate", "restart", "plc_stop", "disable_unsolicited",
                    "identity_read", "clock_set"}


@needs_tshark
def test_corpus_agrees_with_tshark():
    files = _sample(_corpus_or_skip())
    total_frames = total_fragments = 0
    unexpected, tolerated = [], []
    with ThreadPoolExecutor(max_workers=2) as pool:    # tshark processes overlap the Python side
        results = list(pool.map(compare_file, files))
    for path, (frames, fragments, problems) in zip(files, results):
        total_frames += frames
        total_fragments += fragments
        for line in problems:
            frame = int(line.split(" frame ")[1].split()[0])
            (tolerated if (path.name, frame) in TOLERATED else unexpected).append(line)
    assert total_fragments > 1000, (total_frames, total_fragments)
    assert unexpected == [], f"{len(unexpected)} disagreements over {len(files)} files:\n" + "\n".join(unexpected[:200])


def test_every_corpus_file_runs_and_malformed_ones_report():
    files = _corpus_or_skip()
    labels = _manifest_labels()
    root = corpus_dir()
    silent_malformed = []
    seen_names: Counter = Counter()
    for path in files:
        records = run_pcap(path)                    # any exception escaping fails the test
        names = [r.name for r in records if isinstance(r, Anomaly)]
        assert "dnp3.dissector_error" not in names, path
        seen_names.update(names)
        if labels.get(str(path.relative_to(root))) == "malformed" and not names:
            silent_malformed.append(path.name)
    assert silent_malformed == []
    assert seen_names["dnp3.bad_crc"] and seen_names["dnp3.bad_qualifier"] and seen_names["dnp3.unknown_object"]


def test_corpus_capture_memory_bounded():
    """Peak memory on a 1,400-packet capture is proportional to the records it yields.

    (tracemalloc slows Python ~4x, so the 26,000-packet capture is left to the timing-free
    corpus run above; the flood test in test_dnp3_fuzz bounds per-flow state directly.)"""
    _corpus_or_skip()
    path = corpus_dir() / "emreekin-ics-pcaps/DNP3/DNP3Value.pcap"
    if not path.exists():
        pytest.skip("corpus file missing")
    tracemalloc.start()
    records = run_pcap(path)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_record = peak / max(len(records), 1)
    assert per_record < 4000, (peak, len(records))    # records dominate; no hidden growth per flow


def test_flooding_capture_reports_anomalies():
    """Zeek's flow-buffer overflow trace: oversized garbage on a DNP3 flow."""
    path = corpus_dir() / "zeek/testing/btest/Traces/dnp3/dnp3-flowbuffer-overflow-assert.pcap"
    if not path.exists():
        pytest.skip("corpus not present")
    names = Counter(r.name for r in run_pcap(path) if isinstance(r, Anomaly))
    assert names, "no anomaly from the flooding capture"


ZEEK_TRACES = ["dnp3_udp_read", "dnp3_udp_select_operate", "dnp3_udp_en_spon", "dnp3_udp_write"]


@pytest.mark.parametrize("name", ZEEK_TRACES)
def test_transactions_match_zeek_golden_dnp3_log(name):
    """fc_request / fc_reply / iin per transaction, against Zeek's own btest baseline."""
    zeek = corpus_dir() / "zeek/testing/btest"
    trace, log = zeek / f"Traces/dnp3/{name}.pcap", zeek / f"Baseline/scripts.base.protocols.dnp3.{name}/dnp3.log"
    if not (trace.exists() and log.exists()):
        pytest.skip("zeek traces not in the corpus")
    lines = [ln.split("\t") for ln in log.read_text().splitlines() if ln and not ln.startswith("#")]
    expected = [tuple(None if v == "-" else v for v in cols[6:9]) for cols in lines]
    ours = [(r.fc_request, r.fc_reply, str(r.iin)) for r in run_pcap(trace) if r.LOG == "dnp3"]
    assert ours == expected
