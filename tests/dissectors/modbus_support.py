"""Shared helpers of the Modbus tests: where the corpus is, running the sensor, reading tshark's decode."""
from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any
from tests.corpus import corpus_dir, manifest  # noqa: F401 - re-exported for the Modbus tests

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO / "pcaps"




def tshark_counts(row: dict[str, str]) -> dict[str, int]:
    """Column 8 (``modbus_adu=129;s7comm=30``) as a dict."""
    out = {}
    for part in row.get("ot_pdus_by_tshark_4.0.17", "").split(";"):
        name, _, count = part.rpartition("=")
        if name and count.isdigit():
            out[name] = int(count)
    return out


def run_sensor(paths: list[Path], outdir: Path):
    """``sensor.analyze.analyze`` in-process and quiet; returns its RunResult."""
    from otsensor.sensor.analyze import analyze

    return analyze([str(p) for p in paths], str(outdir), quiet=True, out=io.StringIO(), err=io.StringIO(),
                   progress=False)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _first(layer: dict, key: str) -> str | None:
    value = layer.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    return value


def tshark_adus(pcap: Path) -> list[dict[str, Any]]:
    """Every Modbus/TCP ADU tshark decodes in ``pcap``, in capture order.

    Each: frame, flow (client ip, client port, server ip, server port; the
    server is the side on port 502, tshark's own rule), direction
    ("request"/"response"), tid, unit, and, when tshark shows them at the top
    of the PDU, func_code, exception_code, address (reference number),
    quantity (word or bit count) and the FC 23 read/write ranges.
    """
    layers_wanted = "frame ip ipv6 tcp mbtcp modbus"
    proc = subprocess.run(["tshark", "-r", str(pcap), "-Y", "mbtcp", "-T", "json", "--no-duplicate-keys",
                           "-J", layers_wanted], capture_output=True, check=False, timeout=300)
    packets = json.loads(proc.stdout or b"[]")
    out: list[dict[str, Any]] = []
    for packet in packets:
        layers = packet["_source"]["layers"]
        ip = layers.get("ip") or layers.get("ipv6") or {}
        src = _first(ip, "ip.src") or _first(ip, "ipv6.src")
        dst = _first(ip, "ip.dst") or _first(ip, "ipv6.dst")
        tcp = layers.get("tcp", {})
        sport, dport = int(_first(tcp, "tcp.srcport")), int(_first(tcp, "tcp.dstport"))
        response = sport == 502
        flow = (dst, dport, src, sport) if response else (src, sport, dst, dport)
        headers = _as_list(layers.get("mbtcp"))
        pdus = _as_list(layers.get("modbus"))
        for i, header in enumerate(headers):
            adu: dict[str, Any] = {
                "frame": int(_first(layers.get("frame", {}), "frame.number") or 0),
                "ts": float(_first(layers.get("frame", {}), "frame.time_epoch") or 0), "flow": flow,
                "direction": "response" if response else "request",
                "tid": int(header["mbtcp.trans_id"]), "unit": int(header["mbtcp.unit_id"]),
            }
            if i < len(pdus) and len(pdus) == len(headers):
                adu.update(_pdu_fields(pdus[i]))
            out.append(adu)
    return out


TSHARK_FIELDS = {
    "modbus.func_code": "func_code", "modbus.exception_code": "exception_code",
    "modbus.reference_num": "address", "modbus.word_cnt": "quantity", "modbus.bit_cnt": "quantity",
    "modbus.read_reference_num": "read_address", "modbus.read_word_cnt": "read_quantity",
    "modbus.write_reference_num": "write_address", "modbus.write_word_cnt": "write_quantity",
    "modbus.diagnostic_code": "sub_function",
}


def _pdu_fields(pdu: dict[str, Any]) -> dict[str, int]:
    fields = {}
    for key, name in TSHARK_FIELDS.items():
        value = _first(pdu, key)
        if value is not None:
            fields[name] = int(value, 0)
    return fields


def tshark_retransmissions(pcap: Path) -> set[tuple]:
    """(flow, direction, time in µs) of every TCP segment with data that tshark flags as a retransmission.

    tshark does not dissect such segments, even when they carry bytes it never saw before (the
    original was not captured, or the retransmission extends it); the sensor's reassembly does.
    """
    proc = subprocess.run(["tshark", "-r", str(pcap), "-Y",
                           "tcp.len > 0 && (tcp.analysis.retransmission || tcp.analysis.spurious_retransmission)",
                           "-T", "fields", "-e", "frame.time_epoch", "-e", "ip.src", "-e", "ipv6.src",
                           "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport"],
                          capture_output=True, check=False, timeout=300, text=True)
    out = set()
    for line in proc.stdout.splitlines():
        ts, src4, src6, sport, dst4, dst6, dport = line.split("\t")
        src, dst, sport_n, dport_n = src4 or src6, dst4 or dst6, int(sport), int(dport)
        response = sport_n == 502
        flow = (dst, dport_n, src, sport_n) if response else (src, sport_n, dst, dport_n)
        out.add((flow, "response" if response else "request", round(float(ts), 6)))
    return out
