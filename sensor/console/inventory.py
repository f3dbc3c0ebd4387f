"""The asset inventory as table rows (one per host) and as CSV.

Identity facts come from every protocol that revealed them; each fact names the log it came from (the
inventory's ``identity_history``), so the table can say "firmware 20.11 (cip_identity)".
"""
from __future__ import annotations

import csv
import io
from typing import Any

from otsensor.sensor.console.layout import Placement

# column -> identity keys that fill it, first found wins (Modbus device id, S7 SZL, CIP identity, DNP3 attributes)
IDENTITY_COLUMNS = {
    "vendor": ("vendor", "vendor_name", "manufacturer"),
    "model": ("product_name", "model", "order_number", "module_name", "product_code", "device_type"),
    "firmware": ("firmware", "revision", "firmware_version", "hardware_revision"),
    "serial": ("serial_number", "serial"),
}
CSV_COLUMNS = ("ip", "macs", "mac_vendors", "role", "role_evidence", "vendor", "model", "firmware", "serial",
               "identity", "protocols_served", "protocols_used", "peers", "zone", "level", "level_source",
               "first_seen", "last_seen", "alerts")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")   # a spreadsheet would run these as formulas


def identity_sources(asset: dict[str, Any]) -> dict[str, str]:
    """Which log last set each identity fact."""
    sources: dict[str, str] = {}
    for entry in asset.get("identity_history") or ():
        if isinstance(entry, dict):
            for key in entry.get("facts") or {}:
                sources[key] = str(entry.get("source", ""))
    return sources


def row(asset: dict[str, Any], placement: Placement | None, alerts: int) -> dict[str, Any]:
    identity = asset.get("identity") or {}
    sources = identity_sources(asset)
    out: dict[str, Any] = {"ip": asset["ip"]}
    out["macs"] = [{"mac": m.get("mac"), "vendor": m.get("vendor")} for m in asset.get("macs") or ()
                   if isinstance(m, dict)]
    out["role"] = asset.get("role") or "unknown"
    out["role_evidence"] = list(asset.get("role_evidence") or ())
    for column, keys in IDENTITY_COLUMNS.items():
        key = next((k for k in keys if identity.get(k) not in (None, "")), None)
        out[column] = None if key is None else {"value": identity[key], "key": key, "source": sources.get(key)}
    out["identity"] = [{"key": k, "value": v, "source": sources.get(k)} for k, v in sorted(identity.items())]
    out["protocols_served"] = dict(asset.get("protocols_served") or {})
    out["protocols_used"] = dict(asset.get("protocols_used") or {})
    out["protocols"] = sorted(set(out["protocols_served"]) | set(out["protocols_used"]))
    out["peers"] = sorted(set(asset.get("ot_clients") or ()) | set(asset.get("ot_servers") or ()))
    out["zone"] = placement.zone if placement else None
    out["level"] = placement.level if placement else None
    out["level_source"] = placement.source if placement else None
    out["first_seen"] = asset.get("first_seen")
    out["last_seen"] = asset.get("last_seen")
    out["alerts"] = alerts
    if "sensors" in asset:      # from ClickHouse: the sensors that saw this address
        out["sensors"] = list(asset["sensors"])
    return out


def rows(assets: list[dict[str, Any]], placements: dict[str, Placement], host_alerts: dict[str, int]) -> list[dict]:
    return [row(a, placements.get(a["ip"]), host_alerts.get(a["ip"], 0)) for a in assets]


def matches(r: dict[str, Any], text: str, role: str, zone: str, protocol: str) -> bool:
    """The inventory filters; the browser applies the same ones to the rows it holds."""
    if role and r["role"] != role:
        return False
    if zone and r["zone"] != zone:
        return False
    if protocol and protocol not in r["protocols"]:
        return False
    return not text or text.lower() in searchable(r)


def searchable(r: dict[str, Any]) -> str:
    parts = [r["ip"], r["role"], str(r["zone"] or "")]
    parts += [f"{m['mac']} {m['vendor'] or ''}" for m in r["macs"]]
    parts += [f"{i['key']} {i['value']}" for i in r["identity"]]
    parts += r["protocols"]
    return " ".join(parts).lower()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def to_csv(table: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in table:
        flat = dict(r)
        flat["macs"] = " ".join(m["mac"] or "" for m in r["macs"])
        flat["mac_vendors"] = " | ".join(m["vendor"] or "" for m in r["macs"])
        flat["role_evidence"] = "; ".join(r["role_evidence"])
        for column in IDENTITY_COLUMNS:
            flat[column] = r[column]["value"] if r[column] else ""
        flat["identity"] = "; ".join(f"{i['key']}={i['value']}" for i in r["identity"])
        flat["protocols_served"] = " ".join(f"{k}:{v}" for k, v in r["protocols_served"].items())
        flat["protocols_used"] = " ".join(f"{k}:{v}" for k, v in r["protocols_used"].items())
        flat["peers"] = " ".join(r["peers"])
        writer.writerow([_cell(flat.get(c)) for c in CSV_COLUMNS])
    return buf.getvalue()
