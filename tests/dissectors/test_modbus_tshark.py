"""Modbus/TCP against tshark 4.0, and the committed captures against their generator's own script.

Differential: for every Modbus ADU tshark decodes in ``pcaps/modbus_*.pcap``
and in the corpus files whose MANIFEST column 8 counts ``modbus_adu``, the
transaction id, unit, function code, exception code, address (reference
number), quantity (word/bit count), FC 23 read/write ranges and FC 8
sub-function agree with ``otsensor analyze``'s modbus.jsonl.  ADUs are matched
by flow (client ip/port, server ip/port), transaction id and direction, in
order within that key (many devices reuse one transaction id).  A field is
compared only where tshark shows it at the top of the PDU (it nests FC 20/21
file sub-requests and does not repeat request ranges in read responses).

Golden: ``pcaps/modbus_*.expected.json`` is written by the generator from the
operations it issued and the replies its client received; the records and
assets.json must tell the same story.
"""
from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.dissectors.modbus_support import (
    PCAPS,
    corpus_dir,
    manifest,
    read_jsonl,
    run_sensor,
    tshark_adus,
    tshark_counts,
    tshark_retransmissions,
)

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

# Spec 7 names (ICSNPP spelling), written out here rather than taken from the code under test.
EXCEPTION_NAMES = {1: "ILLEGAL_FUNCTION", 2: "ILLEGAL_DATA_ADDRESS", 3: "ILLEGAL_DATA_VALUE",
                   4: "SLAVE_DEVICE_FAILURE", 5: "ACKNOWLEDGE", 6: "SLAVE_DEVICE_BUSY", 8: "MEMORY_PARITY_ERROR",
                   10: "GATEWAY_PATH_UNAVAILABLE", 11: "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND"}

COMPARED_FIELDS = ("unit", "func_code", "exception_code", "address", "quantity", "read_address", "read_quantity",
                   "write_address", "write_quantity", "sub_function")

# Captures whose TCP is too broken for ADU-by-ADU order to be comparable; only ADUs seen at the same
# capture time by both tools are compared there, and the rest are listed as tolerated.
REORDERED_STREAMS = {
    # Zeek's fuzzed trace: random sequence numbers, holes that never fill and a SYN+FIN+URG first packet.
    # The sensor reassembles in sequence order (held segments come out at the end, after gaps); tshark
    # dissects every segment where it arrives.
    "iti-ics-tools/pcaps/bro/modbus/fuzz-72.pcap",
}

GENERATED = sorted(PCAPS.glob("modbus_*.pcap"))
CORPUS_MODBUS = [row["file"] for row in manifest() if tshark_counts(row).get("modbus_adu")]


def sensor_adus(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ADUs a modbus.jsonl describes: a request and/or a response per transaction record."""
    out = []
    for rec in records:
        flow = (rec["id.orig_h"], rec["id.orig_p"], rec["id.resp_h"], rec["id.resp_p"])
        fields = {name: rec.get(name) for name in COMPARED_FIELDS if name != "exception_code"}
        fields["malformed"] = rec.get("malformed", False)
        if rec["pdu_type"] in ("REQ", "REQ+RESP"):
            out.append({"ts": rec["ts"], "flow": flow, "direction": "request", "tid": rec["tid"],
                        **fields, "exception_code": None})
        if rec["pdu_type"] in ("RESP", "REQ+RESP"):
            ts = rec["ts"] + rec.get("rtt", 0.0)
            reply_fields = dict(fields, func_code=rec.get("response_func_code", rec["func_code"]))
            out.append({"ts": ts, "flow": flow, "direction": "response", "tid": rec["tid"],
                        **reply_fields, "exception_code": rec.get("exception_code")})
    out.sort(key=lambda adu: adu["ts"])
    return out


def compare(pcap: Path, tmp_path: Path, by_time_only: bool = False) -> tuple[int, list[str], list[str]]:
    """(ADUs compared, disagreements, tolerated differences) between tshark and the sensor for one capture."""
    result = run_sensor([pcap], tmp_path)
    assert not result.errors, result.errors
    comparison = Comparison(pcap, tmp_path, by_time_only)
    comparison.run()
    return comparison.compared, comparison.problems, comparison.tolerated


def by_key(adus: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for adu in adus:
        out[(adu["flow"], adu["tid"], adu["direction"])].append(adu)
    return out


class Comparison:
    """Pairs tshark's ADUs with the sensor's per (flow, tid, direction) and sorts differences into
    disagreements and the few tolerated kinds (each explained where it is recognised)."""

    def __init__(self, pcap: Path, outdir: Path, by_time_only: bool) -> None:
        self.pcap, self.by_time_only = pcap, by_time_only
        records = read_jsonl(outdir / "modbus.jsonl")
        self.ours = by_key(sensor_adus(records))
        self.theirs = by_key(tshark_adus(pcap))
        # Connections opened FROM port 502 (a test tool's client bound to 502): tshark calls whatever the 502
        # side sends a response, so it decodes the client's requests as responses.  Compared no further.
        self.reversed_flows = {(r["id.resp_h"], r["id.resp_p"], r["id.orig_h"], r["id.orig_p"])
                               for r in records if r["id.orig_p"] == 502 != r["id.resp_p"]}
        self.fc0_anomalies = {(a["id.orig_h"], a["id.orig_p"], a["id.resp_h"], a["id.resp_p"], round(a["ts"], 6))
                              for a in read_jsonl(outdir / "anomalies.jsonl")
                              if a["name"] == "modbus.invalid_function_code"}
        self.retransmitted: set[tuple] | None = None
        self.compared = 0
        self.problems: list[str] = []
        self.tolerated: list[str] = []

    def run(self) -> None:
        for key in self.theirs.keys() | self.ours.keys():
            flow = key[0]
            if flow in self.reversed_flows or (flow[2], flow[3], flow[0], flow[1]) in self.reversed_flows:
                self.tolerated.append(f"{key}: connection opened from port 502, tshark's direction is reversed")
                continue
            for t_adu, o_adu in align(self.theirs.get(key, []), self.ours.get(key, []), self.by_time_only):
                if self.by_time_only and (t_adu is None or o_adu is None):
                    self.tolerated.append(f"{key}: {'tshark' if o_adu is None else 'otsensor'} only, reordered")
                elif t_adu is None:
                    self.sensor_only(key, o_adu)
                elif o_adu is None:
                    self.tshark_only(key, t_adu)
                else:
                    self.both(t_adu, o_adu)

    def sensor_only(self, key: tuple, o_adu: dict) -> None:
        what = f"{key}: otsensor ADU at {o_adu['ts']:.6f}, tshark none"
        if 502 not in (key[0][1], key[0][3]):
            # tshark decodes Modbus on TCP 502 only; the sensor also finds it by content on other ports
            self.tolerated.append(what)
            return
        if self.retransmitted is None:
            self.retransmitted = tshark_retransmissions(self.pcap)
        if (key[0], key[2], round(o_adu["ts"], 6)) in self.retransmitted:
            # tshark does not dissect a segment it flags as a retransmission, even when it carries
            # bytes never seen before (original not captured, or the retransmission extends it)
            self.tolerated.append(what + " (in a segment tshark flags as a retransmission)")
            return
        self.problems.append(what)

    def tshark_only(self, key: tuple, t_adu: dict) -> None:
        if t_adu.get("func_code") == 0 and t_adu["direction"] == "request" \
                and (*key[0], round(t_adu["ts"], 6)) in self.fc0_anomalies:
            # Function code 0 is not a function (spec 6: 1-127): the dissector reports it as the
            # anomaly modbus.invalid_function_code (checked here) instead of a transaction.
            self.tolerated.append(f"frame {t_adu['frame']}: function code 0 reported as an anomaly")
            return
        self.problems.append(f"{key}: tshark ADU in frame {t_adu['frame']}, otsensor none")

    def both(self, t_adu: dict, o_adu: dict) -> None:
        self.compared += 1
        for message in field_disagreements(t_adu, o_adu):
            # A PDU too short for its fixed fields: the sensor marks the record malformed (with an
            # anomaly) and keeps the raw bytes; tshark shows the fields that fit.  Only a missing
            # field is tolerated, never a different value.
            missing_in_malformed = o_adu["malformed"] and message.endswith("otsensor None")
            (self.tolerated if missing_in_malformed else self.problems).append(message)


def align(theirs: list[dict], ours: list[dict], by_time_only: bool = False,
          slack: float = 2e-6) -> list[tuple[dict | None, dict | None]]:
    """Pair the ADUs of one (flow, tid, direction): same capture time first, then the rest in order.

    ``slack`` covers the sensor's response time being ts + rtt rounded to the microsecond.  ADUs
    whose times differ (the sensor sees bytes when reassembly fills a hole; tshark dissects the
    segment where it arrives) are paired in order among the leftovers; any surplus pairs with None.
    """
    pairs: list[tuple[dict | None, dict | None]] = []
    left_theirs: list[dict] = []
    left_ours: list[dict] = []
    i = j = 0
    while i < len(theirs) and j < len(ours):
        delta = theirs[i]["ts"] - ours[j]["ts"]
        if by_time_only and abs(delta) <= slack and theirs[i].get("func_code") != ours[j]["func_code"]:
            delta = 1.0  # a reordered stream flushes many ADUs at one time: pair only like with like
        if abs(delta) <= slack:
            pairs.append((theirs[i], ours[j]))
            i, j = i + 1, j + 1
        elif delta < 0:
            left_theirs.append(theirs[i])
            i += 1
        else:
            left_ours.append(ours[j])
            j += 1
    left_theirs += theirs[i:]
    left_ours += ours[j:]
    common = 0 if by_time_only else min(len(left_theirs), len(left_ours))
    pairs += list(zip(left_theirs[:common], left_ours[:common]))
    pairs += [(t, None) for t in left_theirs[common:]] + [(None, o) for o in left_ours[common:]]
    return pairs


def field_disagreements(t_adu: dict[str, Any], o_adu: dict[str, Any]) -> list[str]:
    out = []
    for name in COMPARED_FIELDS:
        if name not in t_adu:
            continue  # tshark does not show this field for this ADU
        expected = t_adu[name]
        if name == "exception_code":
            expected = EXCEPTION_NAMES.get(expected, f"unknown-{expected}")
        if o_adu.get(name) != expected:
            out.append(f"frame {t_adu['frame']} tid {t_adu['tid']} {t_adu['direction']}: "
                       f"{name} tshark {expected!r}, otsensor {o_adu.get(name)!r}")
    return out


def check(pcap: Path, tmp_path: Path, label: str) -> None:
    compared, problems, tolerated = compare(pcap, tmp_path, by_time_only=label in REORDERED_STREAMS)
    print(f"\n{label}: {compared} ADUs compared with tshark, {len(problems)} disagreement(s), "
          f"{len(tolerated)} tolerated difference(s)")
    assert compared > 0, f"{label}: tshark decoded no Modbus ADU that otsensor also reported"
    assert not problems, f"{label}: {len(problems)} disagreement(s) with tshark:\n" + "\n".join(problems[:200])


@pytest.mark.parametrize("pcap", GENERATED, ids=[p.name for p in GENERATED])
def test_generated_capture_agrees_with_tshark(pcap: Path, tmp_path: Path) -> None:
    check(pcap, tmp_path, pcap.name)


@pytest.mark.parametrize("name", CORPUS_MODBUS)
def test_corpus_capture_agrees_with_tshark(name: str, tmp_path: Path) -> None:
    path = corpus_dir() / name
    if not path.is_file():
        pytest.skip(f"corpus file {name} absent")
    check(path, tmp_path, name)


def test_corpus_modbus_files_listed() -> None:
    if not (corpus_dir() / "MANIFEST.tsv").is_file():
        pytest.skip(f"no corpus at {corpus_dir()} (set OTSENSOR_CORPUS)")
    assert CORPUS_MODBUS, "the MANIFEST lists no file with modbus_adu"


# -- golden: the generator's script of operations ------------------------------------------------------------

@pytest.fixture(scope="module")
def generated_output(tmp_path_factory) -> dict[str, Any]:
    if not GENERATED:
        pytest.skip("no pcaps/modbus_*.pcap")
    out = tmp_path_factory.mktemp("modbus_golden")
    result = run_sensor(GENERATED, out)
    assert not result.errors
    return {
        "records": read_jsonl(out / "modbus.jsonl"),
        "anomalies": read_jsonl(out / "anomalies.jsonl"),
        "assets": json.loads((out / "assets.json").read_text())["assets"],
        "expected": {p.name: json.loads(p.with_suffix(".expected.json").read_text()) for p in GENERATED},
    }


# Request fields the generator notes that the record carries under the same name.
SCRIPT_FIELDS = ("unit", "func_code", "address", "quantity", "sub_function", "and_mask", "or_mask",
                 "read_address", "read_quantity", "write_address", "write_quantity", "object_id")


def test_records_follow_the_generator_script(generated_output: dict[str, Any]) -> None:
    problems = []
    for name, expected in generated_output["expected"].items():
        client = expected["client"]["address"]
        requests = {r["tid"]: r for r in generated_output["records"]
                    if r["id.orig_h"] == client and r["pdu_type"] != "RESP"}
        assert len(requests) == len(expected["operations"]), name
        for op in expected["operations"]:
            rec = requests.get(op["tid"])
            if rec is None:
                problems.append(f"{name} tid {op['tid']}: no record")
                continue
            problems += [f"{name} tid {op['tid']}: {key} script {op[key]!r}, record {rec.get(key)!r}"
                         for key in SCRIPT_FIELDS if key in op and rec.get(key) != op[key]]
            problems += reply_disagreements(name, op, rec, generated_output["records"], client)
    assert not problems, "\n".join(problems)


def reply_disagreements(name: str, op: dict, rec: dict, records: list[dict], client: str) -> list[str]:
    """The reply the generator's client received, as the records show it."""
    where = f"{name} tid {op['tid']}"
    reply_fc, exception = op["reply_func_code"], op["exception_code"]
    if reply_fc is None:
        return [f"{where}: the generator saw no reply"]
    if reply_fc & 0x7F == op["func_code"]:  # a proper reply: paired with its request
        want = None if exception is None else EXCEPTION_NAMES[exception]
        if not rec["matched"] or rec["exception_code"] != want:
            return [f"{where}: matched {rec['matched']} exception {rec['exception_code']!r}, expected {want!r}"]
        return []
    # pymodbus 3.16 answers requests it cannot decode with function code 0x80: the exception is
    # still paired with its request by transaction id and unit, and keeps its own function code.
    if not rec["matched"] or rec.get("response_func_code") != reply_fc & 0x7F \
            or rec["exception_code"] != EXCEPTION_NAMES[exception]:
        return [f"{where}: reply fc {reply_fc:#x} not paired as an exception with its own code ({rec})"]
    return []


# pymodbus names two of the objects differently from ICSNPP, whose names our records use
ICSNPP_OBJECT_NAMES = {"MajorMinorRevision": "MajorMinorVersion", "VendorUrl": "VendorURL"}


def test_device_identification_objects_match_the_server(generated_output: dict[str, Any]) -> None:
    expected = next(iter(generated_output["expected"].values()))["plc"]["device_identification"]
    seen: dict[str, str] = {}
    for rec in generated_output["records"]:
        seen.update(rec.get("device_identification") or {})
    assert seen == {ICSNPP_OBJECT_NAMES.get(name, name): value for name, value in expected.items()}


INVENTORY_KEYS = {"VendorName": "vendor", "ProductCode": "product_code", "MajorMinorRevision": "revision",
                  "VendorUrl": "vendor_url", "ProductName": "product_name", "ModelName": "model",
                  "UserApplicationName": "application_name"}


def test_assets_show_plc_identity_and_roles(generated_output: dict[str, Any]) -> None:
    assets = {a["ip"]: a for a in generated_output["assets"]}
    some = next(iter(generated_output["expected"].values()))
    plc = assets[some["plc"]["address"]]
    assert plc["role"] == some["plc"]["role"] == "plc_rtu"
    for object_name, value in some["plc"]["device_identification"].items():
        assert plc["identity"].get(INVENTORY_KEYS[object_name]) == value, object_name
    hmi = generated_output["expected"]["modbus_hmi.pcap"]["client"]
    assert assets[hmi["address"]]["role"] == hmi["role"] == "hmi_scada"
    assert "modbus" in plc["protocols_served"] and "modbus" in assets[hmi["address"]]["protocols_used"]
