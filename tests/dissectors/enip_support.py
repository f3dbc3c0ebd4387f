"""Test support for the EtherNet/IP tests: run the sensor pipeline or tshark over a capture and
compare them message by message (frame timestamps tie a record to the frame that completed it)."""
from __future__ import annotations

import itertools
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

from otsensor.sensor.capture.files import open_capture
from otsensor.sensor.pipeline import Pipeline
from tests.corpus import corpus_dir, manifest, manifest_files, pdus

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO / "pcaps"
TSHARK_FIELDS = ("frame.time_epoch", "enip.command", "enip.status", "enip.session", "cip.sc", "cip.rr",
                 "cip.genstat", "cip.class", "cip.instance", "cip.attribute", "cip.symbol",
                 "enip.cpf.sai.connid", "enip.cpf.sai.seq")
# Decoded values compared frame by frame: tshark field -> our field (see our_values).  A field we give
# for a frame must match tshark's values there exactly (as a multiset); "both" fields must also be
# absent on our side only when tshark has none.
DEPTH_FIELDS: dict[str, tuple[str, bool]] = {
    "cip.cm.conn_serial_num": ("connection_serial", True), "cip.cm.orig_serial_num": ("originator_serial", True),
    "cip.cm.vendor": ("originator_vendor_id", True), "cip.cm.otrpi": ("o_t_rpi_us", True),
    "cip.cm.torpi": ("t_o_rpi_us", True), "cip.cm.ot_connid": ("o_t_connection_id", False),
    "cip.cm.to_connid": ("t_o_connection_id", False), "cip.addstat": ("cip_extended_status_code", False),
    "enip.lir.vendor": ("vendor_id", True), "enip.lir.devtype": ("device_type_id", True),
    "enip.lir.prodcode": ("product_code", True), "enip.lir.serial": ("serial_number", True),
    "enip.lir.name": ("product_name", True),
}
SEP, AGG = "\x1f", "\x1e"   # product names may hold commas


def _is_enip(row: dict[str, str]) -> bool:
    name = row["file"].lower()
    return "enip" in pdus(row) or "cip" in name or "eip-" in name or "ethernetip" in name


def corpus_enip_files() -> list[tuple[Path, int]]:
    """Corpus files whose MANIFEST lists ENIP/CIP PDUs or whose path names EtherNet/IP or CIP,
    with their packet counts."""
    packets = {corpus_dir() / row["file"]: int(row["packets"]) for row in manifest()}
    return [(path, packets[path]) for path in manifest_files(_is_enip)]


class ListSink:
    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = defaultdict(list)

    def write(self, log: str, row: dict) -> None:
        self.rows[log].append(row)


def run_pipeline(path: Path, limit: int | None = None) -> tuple[dict[str, list[dict]], dict]:
    sink = ListSink()
    pipe = Pipeline([sink])
    with open_capture(str(path)) as reader:
        pipe.run(itertools.islice(reader, limit))
    stats = pipe.finish()
    return sink.rows, stats


def tshark_frames(path: Path, limit: int | None = None) -> list[dict[str, list[str]]]:
    """tshark's ENIP/CIP fields per frame timestamp."""
    cmd = ["tshark", "-n", "-r", str(path), "-Y", "enip || cip", "-T", "fields", "-E", f"separator={SEP}",
           "-E", "occurrence=a", "-E", f"aggregator={AGG}"]
    if limit:
        cmd[1:1] = ["-c", str(limit)]
    fields = TSHARK_FIELDS + tuple(DEPTH_FIELDS)
    for field in fields:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    frames: dict[str, dict[str, list[str]]] = {}   # frames sharing a timestamp are merged, as ours are
    for line in out.split("\n"):          # not splitlines(): it also splits at \x1e and \x1f
        if not line:
            continue
        cols = line.split(SEP)
        key = _key(cols[0])
        frame = frames.setdefault(key, {f: [] for f in fields})
        for f, c in zip(fields[1:], cols[1:]):
            frame[f] += [v for v in c.split(AGG) if v]
        frame["frame.time_epoch"] = [key]
    return list(frames.values())


def _key(ts: float | str) -> str:
    return f"{float(ts):.6f}"


def our_messages(rows: dict[str, list[dict]]) -> dict[str, dict[str, list]]:
    """Per frame timestamp: encapsulation headers, CIP service codes and general statuses, in order,
    rebuilt as tshark lists them (an Unconnected Send request shows 0x52 before its embedded service;
    a Multiple Service Packet its embedded services after it)."""
    frames: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for row in rows.get("enip", []):
        frames[_key(row["ts"])]["enip"].append((int(row["enip_command_code"], 16), int(row["enip_status_code"], 16),
                                                int(row["session_handle"], 16)))
    for row in rows.get("cip_io", []):
        frames[_key(row["ts"])]["io"].append((int(row["connection_id"], 16), row["sequence_number"]))
    for row in rows.get("cip", []):
        service = int(row["cip_service_code"], 16)
        if row["direction"] != "response":
            req = frames[_key(row["ts"])]
            if row.get("embedded_in") == "unconnected_send" and row.get("msp_index") is None:
                req["sc"].append(0x52)
            req["sc"].append(service)
            for field in ("class_id", "instance_id", "attribute_id"):
                if field in row:
                    req[field].append(int(row[field], 16))
            if row.get("symbol"):
                req["symbol"] += [part.split("[", 1)[0] for part in row["symbol"].split(".")]
        if row["direction"] != "request" and "cip_status_code" in row:
            resp = frames[_key(row.get("response_ts", row["ts"]))]
            resp["sc"].append(int(row.get("response_service_code", row["cip_service_code"]), 16))
            resp["genstat"].append(int(row["cip_status_code"], 16))
    return frames


def _norm(value: object) -> str:
    """Numbers (ints, hex strings) compare as ints; other text as it is."""
    if isinstance(value, int):
        return str(value)
    text = str(value)
    try:
        return str(int(text, 0))
    except ValueError:
        return text


def our_values(rows: dict[str, list[dict]]) -> dict[str, dict[str, list[str]]]:
    """Per frame timestamp: our decoded values under the DEPTH_FIELDS names."""
    frames: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for row in rows.get("cip", []):
        for ours, _both in DEPTH_FIELDS.values():
            if ours not in row or ours in ("vendor_id", "device_type_id", "product_code", "product_name"):
                continue
            if ours.endswith("connection_id") or ours == "cip_extended_status_code":
                if row["direction"] == "request_response":   # the reply's values (the request's are proposals)
                    frames[_key(row["response_ts"])][ours].append(_norm(row[ours]))
                continue
            frames[_key(row["ts"])][ours].append(_norm(row[ours]))
            if ours in ("connection_serial", "originator_serial", "originator_vendor_id") and row.get("response_ts") \
                    and row.get("cip_status_code") in ("0x00", "0x01"):
                frames[_key(row["response_ts"])][ours].append(_norm(row[ours]))
    for row in rows.get("cip_identity", []):
        if row["source"] == "list_identity":
            for ours in ("vendor_id", "device_type_id", "product_code", "serial_number", "product_name"):
                frames[_key(row["ts"])][ours].append(_norm(row[ours]))
    return frames


def _compare_depth(name: str, key: str, frame: dict, mine: dict, counts: Counter, problems: list[str]) -> None:
    for theirs_field, (ours_field, both) in DEPTH_FIELDS.items():
        ours = mine.get(ours_field, [])
        if not ours and not (both and frame[theirs_field]):
            continue
        theirs = [_norm(v) for v in frame[theirs_field]]
        counts["depth_values"] += len(ours)
        if Counter(ours) != Counter(theirs):
            problems.append(f"{name} {key} {ours_field} tshark={theirs} ours={ours}")


def _ints(values: list[str]) -> list[int]:
    return [int(v, 0) for v in values]


def compare(path: Path, limit: int | None = None) -> tuple[Counter, list[str]]:
    """Compare every frame tshark decodes as ENIP/CIP with our records; returns counts and disagreements."""
    rows, _stats = run_pipeline(path, limit)
    ours = our_messages(rows)
    depth = our_values(rows)
    counts: Counter = Counter()
    problems: list[str] = []
    for frame in tshark_frames(path, limit):
        key = _key(frame["frame.time_epoch"][0])
        mine = ours.get(key, {})
        theirs_enip = list(zip(_ints(frame["enip.command"]), _ints(frame["enip.status"]),
                               _ints(frame["enip.session"])))
        if theirs_enip:
            counts["enip"] += len(theirs_enip)
            if Counter(theirs_enip) != Counter(mine.get("enip", [])):
                problems.append(f"{path.name} {key} enip tshark={theirs_enip} ours={mine.get('enip', [])}")
        _compare_cip(path.name, key, frame, mine, counts, problems)
        _compare_depth(path.name, key, frame, depth.get(key, {}), counts, problems)
        theirs_io = list(zip(_ints(frame["enip.cpf.sai.connid"]), _ints(frame["enip.cpf.sai.seq"])))
        if theirs_io:
            counts["cip_io"] += len(theirs_io)
            if Counter(theirs_io) != Counter(mine.get("io", [])):
                problems.append(f"{path.name} {key} I/O tshark={theirs_io} ours={mine.get('io', [])}")
    return counts, problems


def compare_whole_file(path: Path) -> tuple[Counter, Counter]:
    """Encapsulation headers tshark shows but we do not, and the reverse, over the whole file."""
    rows, _stats = run_pipeline(path)
    ours = Counter((int(r["enip_command_code"], 16), int(r["enip_status_code"], 16), int(r["session_handle"], 16))
                   for r in rows.get("enip", []))
    theirs: Counter = Counter()
    for frame in tshark_frames(path):
        theirs.update(zip(_ints(frame["enip.command"]), _ints(frame["enip.status"]), _ints(frame["enip.session"])))
    return theirs - ours, ours - theirs


def _compare_cip(name: str, key: str, frame: dict, mine: dict, counts: Counter, problems: list[str]) -> None:
    sc, rr = _ints(frame["cip.sc"]), _ints(frame["cip.rr"])
    if not sc:
        return
    counts["cip_frames"] += 1
    counts["cip_services"] += len(sc)
    if sorted(sc) != sorted(mine.get("sc", [])):
        problems.append(f"{name} {key} services tshark={[hex(s) for s in sc]} ours={[hex(s) for s in mine.get('sc', [])]}")
        return
    if any(rr) and sorted(_ints(frame["cip.genstat"])) != sorted(mine.get("genstat", [])):
        problems.append(f"{name} {key} general status tshark={frame['cip.genstat']} ours={mine.get('genstat')}")
    if not any(rr):   # request: every class/instance/attribute/symbol we report is one tshark shows
        for ours_field, theirs_field in (("class_id", "cip.class"), ("instance_id", "cip.instance"),
                                         ("attribute_id", "cip.attribute"), ("symbol", "cip.symbol")):
            theirs = frame[theirs_field] if ours_field == "symbol" else _ints(frame[theirs_field])
            missing = [v for v in mine.get(ours_field, []) if v not in theirs]
            counts["cip_path_values"] += len(mine.get(ours_field, []))
            if missing:
                problems.append(f"{name} {key} {ours_field} ours={missing} not in tshark={theirs}")


def retransmitted_payload_frames(path: Path) -> int:
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "tcp.analysis.retransmission && tcp.len > 0",
                          "-T", "fields", "-e", "frame.number"], capture_output=True, text=True, timeout=300,
                         check=True).stdout
    return len(out.split())
