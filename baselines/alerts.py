"""The alert model: what an analyzer raises, with its ATT&CK for ICS mapping, evidence and a stable id.

Alerts are aggregated by (rule, identifier): the same rule firing again on
the same hosts updates ``count`` and ``last_seen`` rather than producing a new
alert, until it has been quiet for the recurrence period (or the occurrence
has lasted the aggregation window): then the next firing is a new
*occurrence*, its own alert with ``occurrence`` 2, 3, ... and ``first_id``
naming the first one, so a second attack is seen as such.  ``id`` is derived
from the rule, the identifier and the occurrence's first firing, so it is the
same every time the alert is delivered or re-delivered, and a receiver can
drop duplicates.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from otsensor.dissectors.base import columns

SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK = {name: i for i, name in enumerate(SEVERITIES)}
MAX_EVIDENCE = 5
MAX_FOLDS = 256
EVIDENCE_LIST_CAP = 16
# alerts.jsonl's columns (Alert.to_dict) in Zeek's vocabulary (dissectors/base.py); the ClickHouse sink's
# alerts table is built from them.
ALERT_COLUMNS = columns(
    "id:string ts:time last_seen:time count:count rule:string title:string severity:string category:string "
    "techniques:json message:string identifier:string uid:string id.orig_h:addr id.orig_p:port id.resp_h:addr "
    "id.resp_p:port proto:string protocol:string function:string baseline:string zones:json evidence:json "
    "baseline_fold:json")


@dataclass(frozen=True, slots=True)
class Technique:
    id: str
    name: str
    tactics: tuple[str, ...]
    url: str


@lru_cache(maxsize=1)
def attack_techniques() -> dict[str, Technique]:
    """MITRE ATT&CK for ICS v18.1 techniques, from the table shipped with the package (see data/)."""
    text = resources.files("otsensor.baselines").joinpath("data/attack-ics-techniques.tsv").read_text(encoding="utf-8")
    out: dict[str, Technique] = {}
    for row in csv.DictReader(text.splitlines(), delimiter="\t"):
        tactics = tuple(t for t in row["tactics"].split(",") if t)
        out[row["technique_id"]] = Technique(row["technique_id"], row["name"], tactics, row["url"])
    return out


def technique(tid: str) -> Technique:
    found = attack_techniques().get(tid)
    if found is None:
        raise KeyError(f"unknown ATT&CK for ICS technique {tid}")
    return found


@dataclass
class Alert:
    """One (possibly aggregated) alert."""

    rule: str                        # stable rule name, e.g. "plc_stop"
    title: str
    severity: str                    # one of SEVERITIES
    category: str                    # control, program, restart, recon, boundary, baseline, ...
    techniques: tuple[Technique, ...]
    first_seen: float
    last_seen: float
    message: str
    identifier: str                  # what makes two firings "the same" for aggregation
    src: str | None = None
    dst: str | None = None
    src_port: int | None = None
    dst_port: int | None = None
    transport: str | None = None     # tcp / udp
    protocol: str | None = None      # modbus, s7comm, dnp3, enip, ...
    function: str | None = None
    uid: str | None = None           # the connection uid of the first occurrence
    baseline: str | None = None      # the baseline fact this departs from, in words
    zones: dict[str, Any] = field(default_factory=dict)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    count: int = 1
    fold: dict[str, Any] | None = None   # the baseline fact that, accepted, makes this behaviour normal
    running_total: bool = False          # the message states a growing count: later firings replace it
    occurrence: int = 1                  # 2, 3, ...: the same alert again after a quiet period
    first_id: str | None = None          # the id of the first occurrence (None on the first itself)

    @property
    def id(self) -> str:
        seed = f"{self.rule}|{self.identifier}|{self.first_seen:.6f}".encode()
        return hashlib.sha256(seed).hexdigest()[:24]

    def recur(self, later: "Alert") -> None:
        """Make ``later`` the next occurrence of this alert: numbered after it and linked to the first."""
        later.occurrence = self.occurrence + 1
        later.first_id = self.first_id or self.id

    def add_evidence(self, row: dict[str, Any]) -> None:
        if len(self.evidence) < MAX_EVIDENCE:
            self.evidence.append(row)

    def merge(self, other: "Alert") -> None:
        """Fold a later firing of the same rule on the same identifier into this alert."""
        self.count += other.count
        self.last_seen = max(self.last_seen, other.last_seen)
        if self.running_total:
            self.message = other.message
        # a later firing can carry more (a write on the same crossing adds T0855): keep the union
        self.techniques += tuple(t for t in other.techniques if t not in self.techniques)
        for row in other.evidence:
            self.add_evidence(row)
        self._merge_fold(other.fold)

    def _merge_fold(self, fold: dict[str, Any] | None) -> None:
        """Accepting an aggregated alert must accept every firing it stands for (a bounded list)."""
        if not fold or self.fold is None or fold == self.fold:
            return
        also = self.fold.setdefault("also", [])
        if fold not in also and len(also) < MAX_FOLDS:
            also.append(fold)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": round(self.first_seen, 6),
            "last_seen": round(self.last_seen, 6),
            "count": self.count,
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity,
            "category": self.category,
            "techniques": [{"id": t.id, "name": t.name, "tactics": list(t.tactics)} for t in self.techniques],
            "message": self.message,
            "identifier": self.identifier,
            "uid": self.uid,
            "id.orig_h": self.src,
            "id.orig_p": self.src_port,
            "id.resp_h": self.dst,
            "id.resp_p": self.dst_port,
            "proto": self.transport,
            "protocol": self.protocol,
            "function": self.function,
            "baseline": self.baseline,
            "zones": self.zones,
            "evidence": self.evidence,
            "baseline_fold": self.fold,
            "occurrence": self.occurrence,
            "first_id": self.first_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Alert":
        """Rebuild an alert from its to_dict() form (alerts.jsonl, a spool file)."""
        known = attack_techniques()
        techs = tuple(known.get(t["id"]) or Technique(t["id"], t.get("name", ""), tuple(t.get("tactics", ())), "")
                      for t in d.get("techniques", ()))
        alert = cls(rule=d["rule"], title=d.get("title", d["rule"]), severity=d.get("severity", "medium"),
                    category=d.get("category", ""), techniques=techs, first_seen=d["ts"],
                    last_seen=d.get("last_seen", d["ts"]), message=d.get("message", ""),
                    identifier=d.get("identifier", d.get("id", "")), src=d.get("id.orig_h"),
                    dst=d.get("id.resp_h"), src_port=d.get("id.orig_p"), dst_port=d.get("id.resp_p"),
                    transport=d.get("proto"), protocol=d.get("protocol"), function=d.get("function"),
                    uid=d.get("uid"), baseline=d.get("baseline"), zones=d.get("zones") or {},
                    evidence=list(d.get("evidence") or []), count=d.get("count", 1),
                    fold=d.get("baseline_fold"), occurrence=d.get("occurrence", 1), first_id=d.get("first_id"))
        return alert


def evidence(flow: Any, record: Any | None) -> dict[str, Any]:
    """An evidence row: the connection, and the record (lists cut to EVIDENCE_LIST_CAP) or the flow's counts."""
    row: dict[str, Any] = {"uid": flow.uid, "id.orig_h": flow.orig_h, "id.resp_h": flow.resp_h,
                           "id.resp_p": flow.resp_p}
    if record is None:
        row.update({"log": "conn", "ts": round(flow.first_ts, 6), "service": flow.service,
                    "orig_pkts": flow.pkts[0], "resp_pkts": flow.pkts[1]})
        return row
    row["log"] = record.LOG
    row["ts"] = round(record.ts, 6)
    for key, value in record.to_dict().items():
        if isinstance(value, list) and len(value) > EVIDENCE_LIST_CAP:
            value = value[:EVIDENCE_LIST_CAP] + ["..."]
        row[key] = value
    return row
