"""Assertions that a SIEM payload carries an alert's fields (used by the format and the rsyslog tests)."""
from __future__ import annotations

import json
import re

from tests.sensor.siem_parsers import parse_cef, parse_leef

CEF_SEVERITY = {"info": "1", "low": "3", "medium": "5", "high": "8", "critical": "10"}


def one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def check_cef(text: str, row: dict) -> None:
    """The CEF fields an ArcSight parser would extract equal the alert's fields."""
    assert "\n" not in text and "\r" not in text
    cef = parse_cef(text)
    ext = cef["ext"]
    assert (cef["vendor"], cef["signature"], cef["name"]) == ("otsensor", row["rule"], one_line(row["title"]))
    assert cef["severity"] == CEF_SEVERITY[row["severity"]]
    assert ext["msg"] == row["message"]
    assert ext["externalId"] == row["id"]
    assert (ext["src"], ext["dst"]) == (row["id.orig_h"], row["id.resp_h"])
    assert (ext["spt"], ext["dpt"]) == (str(row["id.orig_p"]), str(row["id.resp_p"]))
    assert ext["proto"] == "TCP" and ext["act"] == "alert" and ext["cnt"] == str(row["count"])
    assert ext["rt"] == str(round(row["ts"] * 1000))
    labels = {ext[f"cs{n}Label"]: ext[f"cs{n}"] for n in range(1, 7)}
    assert labels["protocol"] == row["protocol"] and labels["function"] == row["function"]
    assert labels["rule"] == row["rule"]
    assert labels["attackTechniqueIds"].split(",") == [t["id"] for t in row["techniques"]]


def check_leef(text: str, row: dict) -> None:
    assert "\n" not in text and "\r" not in text
    leef = parse_leef(text)
    a = leef["attrs"]
    assert leef["delimiter"] == "\t" and leef["event_id"] == row["rule"]
    assert a["msg"] == row["message"] and a["title"] == row["title"] and a["alertId"] == row["id"]
    assert (a["src"], a["dst"], a["srcPort"], a["dstPort"]) == (
        row["id.orig_h"], row["id.resp_h"], str(row["id.orig_p"]), str(row["id.resp_p"]))
    assert a["sev"] == CEF_SEVERITY[row["severity"]] and a["cat"] == row["category"] and a["proto"] == "TCP"
    assert a["attackTechniqueIds"].split(",") == [t["id"] for t in row["techniques"]]
    assert a["devTimeFormat"] == "yyyy-MM-dd'T'HH:mm:ss.SSSZ" and a["devTime"].endswith("+0000")


def check_ecs(text: str, row: dict) -> None:
    doc = json.loads(text)
    assert doc["event"]["kind"] == "alert" and doc["event"]["id"] == row["id"]
    assert doc["event"]["severity"] == int(CEF_SEVERITY[row["severity"]])
    assert doc["rule"]["name"] == row["rule"] and doc["message"] == row["message"]
    assert doc["source"] == {"ip": row["id.orig_h"], "port": row["id.orig_p"]}
    assert doc["destination"] == {"ip": row["id.resp_h"], "port": row["id.resp_p"]}
    assert doc["network"] == {"transport": "tcp", "protocol": "s7comm"}
    assert doc["threat"]["framework"] == "MITRE ATT&CK for ICS"
    assert doc["threat"]["technique"]["id"] == [t["id"] for t in row["techniques"]]
    assert doc["threat"]["technique"]["name"] == [t["name"] for t in row["techniques"]]
    assert doc["@timestamp"].startswith("2025-11-24T") and doc["@timestamp"].endswith("Z")


CHECKS = {"cef": check_cef, "leef": check_leef, "json": check_ecs}


def check_plain(msg: dict, row: dict, sd_id: str = "otsensor@32473") -> None:
    """The rfc5424 format: the alert's fields as SD-PARAMs, title and message as MSG."""
    fields = msg["sd"][sd_id]
    assert fields["id"] == row["id"] and fields["rule"] == row["rule"] and fields["severity"] == row["severity"]
    assert (fields["src"], fields["dst"], fields["spt"]) == (row["id.orig_h"], row["id.resp_h"], str(row["id.orig_p"]))
    assert fields["techniques"] == ",".join(t["id"] for t in row["techniques"])
    text = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), msg["msg"])
    assert text == f"{row['title']}: {row['message']}" and "\n" not in msg["msg"] and "\r" not in msg["msg"]


def alert_id_of(fmt: str, msg: dict) -> str:
    """The stable alert id a receiver would deduplicate on, from a parsed RFC 5424 message."""
    if fmt == "cef":
        return parse_cef(msg["msg"])["ext"]["externalId"]
    if fmt == "leef":
        return parse_leef(msg["msg"])["attrs"]["alertId"]
    if fmt == "json":
        return json.loads(msg["msg"])["event"]["id"]
    return msg["sd"]["otsensor@32473"]["id"]


def check_cef_by_liblognorm(parsed: dict, row: dict) -> None:
    """liblognorm's CEF reader (rsyslog mmnormalize), an independent implementation, agrees with the alert."""
    cef = parsed.get("cef")
    assert cef, f"liblognorm could not read the CEF message: {parsed}"
    ext = dict(cef["Extensions"])
    # liblognorm <= 2.0.6 drops the first character of the first extension key when no space follows
    # the last header "|" (rsyslog/liblognorm#363, fixed upstream); CEF puts none there, so "rt" reads "t".
    if "t" in ext and "rt" not in ext:
        ext["rt"] = ext.pop("t")
    assert (cef["SignatureID"], cef["Name"], cef["Severity"]) == (
        row["rule"], one_line(row["title"]), CEF_SEVERITY[row["severity"]])
    assert ext["msg"] == row["message"] and ext["externalId"] == row["id"]
    assert (ext["src"], ext["dst"], ext["dpt"]) == (row["id.orig_h"], row["id.resp_h"], str(row["id.resp_p"]))
    assert ext["rt"] == str(round(row["ts"] * 1000)) and ext["cs3"] == ",".join(t["id"] for t in row["techniques"])


def check_sd_by_rsyslog(parsed: dict, row: dict, sd_id: str = "otsensor@32473") -> None:
    """rsyslog's mmpstrucdata reading of our structured data (SD-IDs and PARAM-NAMEs come out lower-cased)."""
    fields = parsed["rfc5424-sd"][sd_id.lower()]
    assert fields["id"] == row["id"] and fields["rule"] == row["rule"] and fields["severity"] == row["severity"]
    assert fields["techniques"] == ",".join(t["id"] for t in row["techniques"])
