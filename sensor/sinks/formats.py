"""Payload formats a SIEM parses natively: CEF (ArcSight), LEEF 2.0 (QRadar), JSON with ECS names (Elastic).

Each formatter takes the log name and the row a sink receives (an alert is
``baselines.alerts.Alert.to_dict()`` under the log "alerts"; anything else is a
protocol record with the pipeline's ``ts`` and ``id.*`` fields) and returns
one line of text.  Text stays Unicode: the syslog layer encodes it as UTF-8.

Severity scales: the alert's five names map to CEF/LEEF 0-10 (``SEVERITY_10``)
and, in ``sensor.sinks.syslog``, to syslog severities.  Protocol records are
``info``.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from otsensor.baselines.alerts import SEVERITY_RANK

VENDOR = "otsensor"
PRODUCT = "otsensor"
ALERT_LOG = "alerts"
SEVERITY_10 = {"info": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}
ATTACK_FRAMEWORK = "MITRE ATT&CK for ICS"
IDS = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")
_CEF_SPECIAL = re.compile(r"[\\=\r\n]")
_LEEF_SPECIAL = re.compile(r"[\\\t\r\n]")
_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def severity_of(log: str, row: dict[str, Any]) -> str:
    """The row's severity name: the alert's own, ``info`` for protocol records (and unknown names)."""
    if log != ALERT_LOG:
        return "info"
    sev = row.get("severity")
    return sev if sev in SEVERITY_RANK else "info"


def _ms(ts: Any) -> int | None:
    return None if ts is None else round(float(ts) * 1000)


def iso_time(ts: float, zone: str = "Z") -> str:
    """RFC 3339 / ISO 8601 UTC with milliseconds, as ECS @timestamp and RFC 5424 TIMESTAMP accept."""
    whole = int(ts)
    millis = round((ts - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}{zone}"


def _record_details(row: dict[str, Any]) -> str:
    """A protocol record's own fields (everything but ts and the connection ids) as compact JSON."""
    return _json({k: v for k, v in row.items() if k != "ts" and k not in IDS})


def _techniques(row: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    techs = row.get("techniques") or ()
    ids = [t.get("id", "") for t in techs]
    names = [t.get("name", "") for t in techs]
    tactics: list[str] = []
    for t in techs:
        for tactic in t.get("tactics") or ():
            if tactic not in tactics:
                tactics.append(tactic)
    return ids, names, tactics


# -- CEF --------------------------------------------------------------------------------------------------
# ArcSight "Implementing ArcSight CEF" rev. 25: in the header, escape "\" and "|" with a backslash; in
# extension values escape "\" and "=" with a backslash and encode newlines as the two characters \n / \r.

def cef_header_escape(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r", " ").replace("\n", " ")   # the header is one line; newlines are not allowed


def cef_value_escape(value: Any) -> str:
    text = value if value.__class__ is str else str(value)
    if not _CEF_SPECIAL.search(text):
        return text   # most values (addresses, ports, ids) need nothing
    return (text.replace("\\", "\\\\").replace("=", "\\=")
            .replace("\n", "\\n").replace("\r", "\\r"))


def _cef_alert_ext(row: dict[str, Any]) -> list[tuple[str, Any]]:
    ids, names, tactics = _techniques(row)
    return [
        ("rt", _ms(row.get("ts"))), ("start", _ms(row.get("ts"))), ("end", _ms(row.get("last_seen"))),
        ("cnt", row.get("count")), ("externalId", row.get("id")), ("cat", row.get("category")),
        ("act", "alert"),
        ("src", row.get("id.orig_h")), ("spt", row.get("id.orig_p")),
        ("dst", row.get("id.resp_h")), ("dpt", row.get("id.resp_p")),
        ("proto", (row.get("proto") or "").upper() or None), ("app", row.get("protocol")),
        ("cs1Label", "protocol"), ("cs1", row.get("protocol")),
        ("cs2Label", "function"), ("cs2", row.get("function")),
        ("cs3Label", "attackTechniqueIds"), ("cs3", ",".join(ids) or None),
        ("cs4Label", "rule"), ("cs4", row.get("rule")),
        ("cs5Label", "attackTechniqueNames"), ("cs5", ",".join(names) or None),
        ("cs6Label", "attackTactics"), ("cs6", ",".join(tactics) or None),
        *_cef_recurrence(row),
        ("msg", row.get("message")),
    ]


def _cef_recurrence(row: dict[str, Any]) -> list[tuple[str, Any]]:
    """A later occurrence of an alert says which one it is and links to the first (absent on the first)."""
    if not row.get("first_id"):
        return []
    return [("cn1Label", "occurrence"), ("cn1", row.get("occurrence")),
            ("flexString1Label", "firstAlertId"), ("flexString1", row.get("first_id"))]


def _cef_record_ext(log: str, row: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("rt", _ms(row.get("ts"))), ("externalId", row.get("uid")), ("act", "observed"),
        ("src", row.get("id.orig_h")), ("spt", row.get("id.orig_p")),
        ("dst", row.get("id.resp_h")), ("dpt", row.get("id.resp_p")),
        ("proto", (row.get("proto") or "").upper() or None), ("app", log),
        ("cs1Label", "log"), ("cs1", log), ("msg", _record_details(row)),
    ]


def cef(log: str, row: dict[str, Any], version: str = "", hostname: str = "") -> str:
    sev = severity_of(log, row)
    if log == ALERT_LOG:
        sig, name, ext = row.get("rule", ""), row.get("title") or row.get("rule", ""), _cef_alert_ext(row)
    else:
        sig, name, ext = log, f"{log} record", _cef_record_ext(log, row)
    ext.append(("dvchost", hostname or None))
    header = "|".join(cef_header_escape(v) for v in (VENDOR, PRODUCT, version, sig, name, SEVERITY_10[sev]))
    pairs = " ".join(f"{k}={cef_value_escape(v)}" for k, v in ext if v is not None and v != "")
    return f"CEF:0|{header}|{pairs}"


# -- LEEF 2.0 ----------------------------------------------------------------------------------------------
# IBM QRadar "Log Event Extended Format (LEEF)" 2.0: header LEEF:2.0|Vendor|Product|Version|EventID|Delim|,
# the delimiter given as a hex code (x09 = tab).  LEEF defines no escaping, so values carry a backslash
# before "\" and write tab, newline and carriage return as \t, \n, \r: a value can never contain the
# delimiter or end the line.  Header fields escape "\" and "|" as CEF does.

LEEF_DELIMITER = "\t"
LEEF_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSZ"   # Java SimpleDateFormat, as devTimeFormat requires


def leef_value_escape(value: Any) -> str:
    text = value if value.__class__ is str else str(value)
    if not _LEEF_SPECIAL.search(text):
        return text
    return (text.replace("\\", "\\\\").replace("\t", "\\t")
            .replace("\n", "\\n").replace("\r", "\\r"))


def _leef_common(row: dict[str, Any], sev: str) -> list[tuple[str, Any]]:
    ts = row.get("ts")
    return [
        ("devTime", None if ts is None else iso_time(float(ts), "+0000")), ("devTimeFormat", LEEF_TIME_FORMAT),
        ("src", row.get("id.orig_h")), ("srcPort", row.get("id.orig_p")),
        ("dst", row.get("id.resp_h")), ("dstPort", row.get("id.resp_p")),
        ("proto", (row.get("proto") or "").upper() or None), ("sev", SEVERITY_10[sev]),
    ]


def _leef_alert_attrs(row: dict[str, Any]) -> list[tuple[str, Any]]:
    ids, names, tactics = _techniques(row)
    return [
        ("cat", row.get("category")), ("alertId", row.get("id")), ("rule", row.get("rule")),
        ("title", row.get("title")), ("severity", row.get("severity")), ("count", row.get("count")),
        ("lastSeen", _ms(row.get("last_seen"))), ("protocol", row.get("protocol")),
        ("function", row.get("function")), ("attackTechniqueIds", ",".join(ids) or None),
        ("attackTechniqueNames", ",".join(names) or None), ("attackTactics", ",".join(tactics) or None),
        ("occurrence", row.get("occurrence") if row.get("first_id") else None), ("firstAlertId", row.get("first_id")),
        ("msg", row.get("message")),
    ]


def leef(log: str, row: dict[str, Any], version: str = "", hostname: str = "") -> str:
    sev = severity_of(log, row)
    if log == ALERT_LOG:
        event_id, attrs = row.get("rule", ""), _leef_alert_attrs(row)
    else:
        event_id, attrs = log, [("cat", log), ("uid", row.get("uid")), ("details", _record_details(row))]
    header = "|".join(cef_header_escape(v) for v in (VENDOR, PRODUCT, version, event_id))
    body = LEEF_DELIMITER.join(f"{k}={leef_value_escape(v)}" for k, v in _leef_common(row, sev) + attrs
                               if v is not None and v != "")
    return f"LEEF:2.0|{header}|x09|{body}"


# -- JSON with Elastic Common Schema names -----------------------------------------------------------------
# ECS 8.x: event.kind "alert" for detections, "event" for protocol records; event.severity is numeric.

def _endpoints(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side, host, port in (("source", "id.orig_h", "id.orig_p"), ("destination", "id.resp_h", "id.resp_p")):
        if row.get(host) is not None:
            out[side] = {"ip": row[host]}
            if row.get(port) is not None:
                out[side]["port"] = row[port]
    return out


def _ecs_alert(row: dict[str, Any]) -> dict[str, Any]:
    ids, names, tactics = _techniques(row)
    doc: dict[str, Any] = {
        "event": {"kind": "alert", "category": ["intrusion_detection"], "type": ["indicator"],
                  "severity": SEVERITY_10[severity_of(ALERT_LOG, row)], "id": row.get("id"),
                  "dataset": "otsensor.alerts", "module": "otsensor"},
        "rule": {"name": row.get("rule"), "id": row.get("rule"), "description": row.get("title"),
                 "category": row.get("category")},
        "message": row.get("message"),
    }
    if row.get("last_seen") is not None:
        doc["event"]["start"] = iso_time(float(row["ts"]))
        doc["event"]["end"] = iso_time(float(row["last_seen"]))
    if ids:
        doc["threat"] = {"framework": ATTACK_FRAMEWORK,
                         "technique": {"id": ids, "name": names},
                         "tactic": {"name": tactics}}
    doc["otsensor"] = {k: row.get(k) for k in ("severity", "count", "function", "identifier", "uid", "baseline",
                                                "zones", "evidence", "first_id") if row.get(k) not in (None, "", {}, [])}
    if row.get("first_id"):
        doc["otsensor"]["occurrence"] = row.get("occurrence")
    return doc


def ecs_json(log: str, row: dict[str, Any], version: str = "", hostname: str = "") -> str:
    if log == ALERT_LOG:
        doc = _ecs_alert(row)
    else:
        doc = {"event": {"kind": "event", "category": ["network"], "type": ["protocol"], "severity": 1,
                         "dataset": f"otsensor.{log}", "module": "otsensor"},
               "otsensor": {"log": log, log: {k: v for k, v in row.items() if k != "ts" and k not in IDS}}}
    ts = row.get("ts")
    head: dict[str, Any] = {"@timestamp": iso_time(float(ts)) if ts is not None else None}
    head.update(doc)
    head.update(_endpoints(row))
    network = {k: v for k, v in (("transport", row.get("proto")),
                                 ("protocol", row.get("protocol") if log == ALERT_LOG else log)) if v}
    if network:
        head["network"] = network
    head["observer"] = {"vendor": VENDOR, "product": PRODUCT, "type": "ids", "version": version or None,
                        "hostname": hostname or None}
    head["observer"] = {k: v for k, v in head["observer"].items() if v is not None}
    return _json(head)


# -- plain RFC 5424: a human line as MSG; the fields travel as structured data ------------------------------

def plain(log: str, row: dict[str, Any], version: str = "", hostname: str = "") -> str:
    r"""One line (receivers strip or split on line feeds): backslash, LF and CR written as \\, \n, \r."""
    if log == ALERT_LOG:
        text = f"{row.get('title') or row.get('rule')}: {row.get('message', '')}"
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return f"{log} {_record_details(row)}"


def sd_params(log: str, row: dict[str, Any]) -> list[tuple[str, str]]:
    """The row's fields as SD-PARAMs of the ``otsensor`` structured-data element (rfc5424 format)."""
    if log == ALERT_LOG:
        ids, _, tactics = _techniques(row)
        pairs = [("id", row.get("id")), ("rule", row.get("rule")), ("severity", row.get("severity")),
                 ("category", row.get("category")), ("count", row.get("count")),
                 ("src", row.get("id.orig_h")), ("spt", row.get("id.orig_p")),
                 ("dst", row.get("id.resp_h")), ("dpt", row.get("id.resp_p")), ("proto", row.get("proto")),
                 ("protocol", row.get("protocol")), ("function", row.get("function")),
                 ("techniques", ",".join(ids) or None), ("tactics", ",".join(tactics) or None),
                 ("occurrence", row.get("occurrence") if row.get("first_id") else None),
                 ("first_id", row.get("first_id"))]
    else:
        pairs = [("log", log), ("uid", row.get("uid")), ("src", row.get("id.orig_h")),
                 ("spt", row.get("id.orig_p")), ("dst", row.get("id.resp_h")), ("dpt", row.get("id.resp_p"))]
    return [(k, str(v)) for k, v in pairs if v is not None and v != ""]


Formatter = Callable[..., str]
FORMATS: dict[str, Formatter] = {"cef": cef, "leef": leef, "json": ecs_json, "rfc5424": plain}
