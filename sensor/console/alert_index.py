"""The alerts of a directory, indexed for paged, filtered, sorted queries that stay fast at 100,000 alerts.

Each alert keeps the few fields the feed filters and sorts on, and its original line (the detail view parses
that on demand), so memory stays near the size of alerts.jsonl.  ATT&CK technique names and tactics come
from the tables shipped in ``baselines/data/``, not from the alert, so the console and the SIEM formats agree.
"""
from __future__ import annotations

import bisect
import csv
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import orjson

from otsensor.baselines.alerts import SEVERITY_RANK, attack_techniques

SORT_KEYS = ("ts", "last_seen", "severity", "count", "rule")
MAX_PAGE = 500
CACHED_SELECTIONS = 16       # paging through a filtered feed re-uses its matching set
MAX_INSERTED = 2_000         # more new alerts than this at once: sort afresh instead of inserting each


class AlertEntry:
    __slots__ = ("category", "count", "dst", "function", "id", "last_seen", "message", "protocol", "rank", "raw",
                 "rule", "severity", "src", "tactics", "techniques", "text", "title", "ts")

    def __init__(self, d: dict[str, Any], raw: bytes) -> None:
        self.id = str(d.get("id", ""))
        self.ts = _number(d.get("ts"))
        self.last_seen = _number(d.get("last_seen", self.ts))
        self.count = int(_number(d.get("count", 1)))
        self.rule = str(d.get("rule", ""))
        self.title = str(d.get("title", self.rule))
        self.severity = str(d.get("severity", "medium"))
        self.rank = SEVERITY_RANK.get(self.severity, 2)
        self.category = str(d.get("category") or "")
        self.protocol = d.get("protocol") or ""
        self.function = d.get("function") or ""
        self.src = d.get("id.orig_h") or ""
        self.dst = d.get("id.resp_h") or ""
        self.techniques, self.tactics = _mapping(tuple(str(t.get("id")) for t in d.get("techniques") or ()
                                                       if isinstance(t, dict)))
        self.message = str(d.get("message") or "")
        self.text = f"{self.title} {self.message} {self.rule} {self.function}".lower()
        self.raw = raw

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "ts": self.ts, "last_seen": self.last_seen, "count": self.count, "rule": self.rule,
                "title": self.title, "severity": self.severity, "category": self.category,
                "protocol": self.protocol, "function": self.function, "src": self.src, "dst": self.dst,
                "message": self.message, "techniques": [technique_info(t) for t in self.techniques]}


@lru_cache(maxsize=4096)
def _mapping(techniques: tuple[str, ...]) -> tuple[tuple[str, ...], frozenset[str]]:
    """Techniques and their tactics, one shared pair per distinct set (alerts of a rule share theirs)."""
    return techniques, frozenset(tac for tid in techniques for tac in technique_info(tid)["tactics_ids"])


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


@lru_cache(maxsize=1)
def tactic_names() -> dict[str, str]:
    """ATT&CK for ICS tactic short names (``inhibit-response-function``) to their names, from the shipped table."""
    text = resources.files("otsensor.baselines").joinpath("data/attack-ics-tactics.tsv").read_text(encoding="utf-8")
    return {row["shortname"]: row["name"] for row in csv.DictReader(text.splitlines(), delimiter="\t")}


@lru_cache(maxsize=1024)
def technique_info(tid: str) -> dict[str, Any]:
    t = attack_techniques().get(tid)
    if t is None:
        return {"id": tid, "name": "(not in the shipped ATT&CK for ICS tables)", "tactics": [], "tactics_ids": [],
                "url": None}
    names = tactic_names()
    return {"id": t.id, "name": t.name, "tactics": [names.get(s, s) for s in t.tactics],
            "tactics_ids": list(t.tactics), "url": t.url}


FACETS = ("severity", "rule", "protocol", "tactics", "techniques")
SORTERS: dict[str, Callable[[AlertEntry], Any]] = {
    "ts": lambda a: (a.ts, a.id), "last_seen": lambda a: (a.last_seen, a.id), "count": lambda a: (a.count, a.ts),
    "severity": lambda a: (a.rank, a.ts), "rule": lambda a: (a.rule, a.ts)}


@dataclass(frozen=True)
class AlertQuery:
    """A feed request: every filter is optional; ``severity`` is the least severity shown."""

    severity: str = ""
    rule: str = ""
    protocol: str = ""
    host: str = ""
    technique: str = ""
    tactic: str = ""
    text: str = ""
    sort: str = "ts"
    descending: bool = True
    offset: int = 0
    limit: int = 50

    @classmethod
    def from_params(cls, params: dict[str, str]) -> AlertQuery:
        def whole(name: str, default: int, top: int) -> int:
            try:
                return max(0, min(top, int(params.get(name, default))))
            except ValueError:
                return default
        sort = params.get("sort", "ts")
        return cls(severity=params.get("severity", ""), rule=params.get("rule", ""),
                   protocol=params.get("protocol", ""), host=params.get("host", "").strip(),
                   technique=params.get("technique", "").strip().upper(), tactic=params.get("tactic", ""),
                   text=params.get("q", "").strip().lower(), sort=sort if sort in SORT_KEYS else "ts",
                   descending=params.get("order", "desc") != "asc", offset=whole("offset", 0, 10 ** 9),
                   limit=whole("limit", 50, MAX_PAGE) or 50)

    def predicates(self) -> list[Callable[[AlertEntry], bool]]:
        """One test per filter given (applied one after another: each pass is a tight comprehension)."""
        tests: list[Callable[[AlertEntry], bool]] = []
        if self.severity:
            least = SEVERITY_RANK.get(self.severity, 0)
            tests.append(lambda a: a.rank >= least)
        if self.rule:
            tests.append(lambda a: a.rule == self.rule)
        if self.protocol:
            tests.append(lambda a: a.protocol == self.protocol)
        if self.host:
            tests.append(lambda a: a.src == self.host or a.dst == self.host)
        if self.technique:
            tests.append(lambda a: self.technique in a.techniques)
        if self.tactic:
            tests.append(lambda a: self.tactic in a.tactics)
        if self.text:
            tests.append(lambda a: self.text in a.text)
        return tests

    def matches(self, a: AlertEntry) -> bool:
        return all(test(a) for test in self.predicates())

    def selection(self) -> tuple:
        """What decides the matching set and its order (not the page)."""
        return (self.severity, self.rule, self.protocol, self.host, self.technique, self.tactic, self.text,
                self.sort, self.descending)


def facet_view(c: dict[str, Counter]) -> dict[str, Any]:
    """Facet counts (one Counter per name in FACETS) as the feed's filters show them."""
    return {"severity": dict(c["severity"]), "rule": dict(c["rule"]),
            "protocol": {k: n for k, n in c["protocol"].items() if k},
            "tactic": [{"id": t, "name": tactic_names().get(t, t), "count": n} for t, n in sorted(c["tactics"].items())],
            "technique": [{**technique_info(t), "count": n} for t, n in sorted(c["techniques"].items())]}


class AlertIndex:
    """Alerts in arrival order, with per-host and per-value indexes, sorted orders built once per key,
    facet counts kept as alerts arrive, and the last few matching sets cached for paging."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.entries: list[AlertEntry] = []
        self.by_id: dict[str, AlertEntry] = {}
        self.position: dict[str, int] = {}
        self.by_host: dict[str, list[AlertEntry]] = {}
        self.bad_lines = 0
        self.counts: dict[str, Counter] = {name: Counter() for name in FACETS}
        self._orders: dict[str, list[AlertEntry]] = {}
        self._selections: OrderedDict[tuple, list[AlertEntry]] = OrderedDict()

    def add_lines(self, lines: Iterable[bytes]) -> None:
        replaced, added = False, []
        for raw in lines:
            try:
                d = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self.bad_lines += 1
                continue
            if not isinstance(d, dict) or "rule" not in d:
                self.bad_lines += 1
                continue
            entry = AlertEntry(d, raw)
            at = self.position.get(entry.id)
            if at is not None:          # a re-delivered alert: the later line is its current state
                self.entries[at] = entry
                replaced = True
            else:
                self.position[entry.id] = len(self.entries)
                self.entries.append(entry)
                self._count(entry)
                added.append(entry)
            self.by_id[entry.id] = entry
        if replaced:
            self._reindex()
        if replaced or len(added) > MAX_INSERTED:
            self._orders = {}
        else:   # a live sensor adds a few alerts at a time: insert them rather than sort 100,000 again
            for key, order in self._orders.items():
                for entry in added:
                    bisect.insort(order, entry, key=SORTERS[key])
        self._selections = OrderedDict()

    def _count(self, a: AlertEntry) -> None:
        for host in {a.src, a.dst} - {""}:
            self.by_host.setdefault(host, []).append(a)
        for name in FACETS:
            values = getattr(a, name)
            self.counts[name].update((values,) if isinstance(values, str) else values)

    def _reindex(self) -> None:
        self.by_host, self.counts = {}, {name: Counter() for name in FACETS}
        for a in self.entries:
            self._count(a)

    def _ordered(self, key: str) -> list[AlertEntry]:
        order = self._orders.get(key)
        if order is None:
            order = sorted(self.entries, key=SORTERS[key])
            self._orders[key] = order
        return order

    def _matching(self, q: AlertQuery) -> list[AlertEntry]:
        key = q.selection()
        found = self._selections.get(key)
        if found is not None:
            self._selections.move_to_end(key)
            return found
        if q.host:     # few alerts name one host: start from them, then order them
            found = sorted(self.by_host.get(q.host, ()), key=SORTERS[q.sort], reverse=q.descending)
        else:
            order = self._ordered(q.sort)
            found = order[::-1] if q.descending else order
        for test in q.predicates():
            found = [a for a in found if test(a)]
        self._selections[key] = found
        if len(self._selections) > CACHED_SELECTIONS:
            self._selections.popitem(last=False)
        return found

    def query(self, q: AlertQuery) -> dict[str, Any]:
        matched = self._matching(q)
        page = matched[q.offset:q.offset + q.limit]
        return {"total": len(matched), "all": len(self.entries), "offset": q.offset, "limit": q.limit,
                "alerts": [a.summary() for a in page]}

    def facets(self) -> dict[str, Any]:
        """The values the feed's filters offer, with counts over every alert."""
        return facet_view(self.counts)

    def detail(self, alert_id: str) -> dict[str, Any] | None:
        entry = self.by_id.get(alert_id)
        if entry is None:
            return None
        d = orjson.loads(entry.raw)
        d["techniques"] = [technique_info(t) for t in entry.techniques]
        return d

    def for_hosts(self) -> dict[str, int]:
        return {host: len(alerts) for host, alerts in self.by_host.items()}

    def for_edges(self) -> dict[tuple[str, str, str], int]:
        """Alerts per (client, server, protocol), to highlight map edges."""
        counts: dict[tuple[str, str, str], int] = {}
        for a in self.entries:
            if a.src and a.dst:
                key = (a.src, a.dst, a.protocol)
                counts[key] = counts.get(key, 0) + 1
        return counts
