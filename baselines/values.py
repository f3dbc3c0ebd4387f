"""Written values per item and width: learned as small sets or as ranges, and the writes that depart from them.

Every item of a write counts, not only the first: each variable of an S7
Write Var, each register or coil of a Modbus FC 15/16/23 (one address per
value), each operation a record's ``extra_ops()`` adds.  A record whose
extra operations name one item each (``VALUE_ITEM``: every point of a DNP3
select / operate / direct operate, every element of a Logix Write Tag,
Write Tag Fragmented or Read Modify Write Tag, in a Multiple Service Packet
or an Unconnected Send too) is learned and checked from those alone.  The width of an
item (bit, byte, word, int, dword, dint, real, char, ...) is the ``width``
the dissector puts in ``Op.detail``, or the width a Modbus table implies; the
same address written at another width (a byte over bits the HMI sets one by
one) is another kind of write.

The baseline's ``written_values`` maps an item (``server protocol space
address``) to its widths, each ``{"set": [...]}`` (booleans, text, and numbers
that take a few values again and again: modes, states) or ``{"range": [lo,
hi]}`` (a setpoint), checked with a tolerance.  A baseline written before
widths were learned holds ``[lo, hi]``: a range for any width.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from otsensor.dissectors.base import VALUE_ITEM, Category, Op

ANY_WIDTH = "*"
MAX_ITEMS = 20_000           # items learned
MAX_VALUES_PER_OP = 256
SET_MAX = 8                  # distinct values a set may hold
SET_REPEATS = 3              # a number is learned as a set only when each value came back this often
# Modbus tables whose width the function does not say
TABLE_WIDTHS = {"coils": "bit", "discrete_inputs": "bit", "holding_registers": "word", "input_registers": "word"}


def value_key(server: str, protocol: str, space: str, address: int | None) -> str:
    return f"{server} {protocol} {space} {'*' if address is None else address}"


def width_of(op: Op) -> str:
    for key, value in op.detail or ():
        if key == "width":
            return str(value)
    return TABLE_WIDTHS.get(op.space or "", ANY_WIDTH)


def written_items(op: Op) -> Iterator[tuple[int | None, Any]]:
    """(address, value) of each value a write carries: consecutive addresses from ``start``."""
    values = op.values or ()
    if op.start is not None and len(values) <= MAX_VALUES_PER_OP:
        for i, value in enumerate(values):
            yield op.start + i, value
        return
    for value in values[:MAX_VALUES_PER_OP]:
        yield None, value


def value_ops(op: Op, extras: tuple[Op, ...]) -> tuple[Op, ...]:
    """The writes whose values a record carries: its per-item operations when it has them (``op`` then
    only summarises the request), else ``op`` and its extra operations."""
    items = tuple(e for e in extras if e.detail is not None and (VALUE_ITEM, True) in e.detail)
    return items or (op, *extras)


def keyed_values(server: str, protocol: str, op: Op) -> Iterator[tuple[str, int | None, str, Any]]:
    """(item key, address, width, value) of each usable value a write carries."""
    if op.space is None or not op.values:
        return
    width = width_of(op)
    for address, value in written_items(op):
        if _usable(value):
            yield value_key(server, protocol, op.space, address), address, width, value


def _usable(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str)) and not (isinstance(value, str) and len(value) > 64)


@dataclass(slots=True)
class _Seen:
    """What one item at one width was written: its distinct values (up to a bound), extremes and count."""

    distinct: dict[Any, int] = field(default_factory=dict)
    overflow: bool = False
    # int | float, not float: mypyc turns an int stored where a float is declared into a float (a learned
    # range of 100 would read 100.0 from the compiled build and 100 from the sources)
    lo: int | float | None = None
    hi: int | float | None = None
    numeric: bool = True

    def add(self, value: Any) -> None:
        if value in self.distinct:
            self.distinct[value] += 1
        elif len(self.distinct) < SET_MAX:
            self.distinct[value] = 1
        else:
            self.overflow = True
        if isinstance(value, bool) or isinstance(value, str):
            self.numeric = False
            return
        self.lo = value if self.lo is None else min(self.lo, value)
        self.hi = value if self.hi is None else max(self.hi, value)

    def summary(self) -> dict[str, Any]:
        repeated = all(n >= SET_REPEATS for n in self.distinct.values())
        if not self.numeric or (not self.overflow and len(self.distinct) <= SET_MAX // 2 and repeated):
            if self.overflow:
                return {"any": True}
            return {"set": sorted(self.distinct, key=lambda v: (str(type(v)), v))}
        return {"range": [self.lo, self.hi]}


class ValueLearner:
    """The learning side: values written per item and width."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, _Seen]] = {}

    def note(self, server: str, protocol: str, op: Op) -> None:
        if op.category != Category.WRITE:
            return
        for key, _, width, value in keyed_values(server, protocol, op):
            widths = self.items.get(key)
            if widths is None:
                if len(self.items) >= MAX_ITEMS:
                    continue
                widths = self.items[key] = {}
            widths.setdefault(width, _Seen()).add(value)

    def to_baseline(self) -> dict[str, dict[str, Any]]:
        return {key: {w: seen.summary() for w, seen in sorted(widths.items())} for key, widths in self.items.items()}

    def to_state(self) -> dict[str, Any]:
        """As JSON, for a live sensor's checkpoint (values as [value, count] pairs: JSON keys are strings)."""
        return {key: {w: [list(seen.distinct.items()), seen.overflow, seen.lo, seen.hi, seen.numeric]
                      for w, seen in widths.items()} for key, widths in self.items.items()}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`to_state` wrote (KeyError, TypeError, ValueError or AttributeError when it
        is not that; nothing changes then)."""
        items = {key: {str(w): _Seen({v: int(n) for v, n in distinct}, bool(overflow), lo, hi, bool(numeric))
                       for w, (distinct, overflow, lo, hi, numeric) in widths.items()}
                 for key, widths in state.items()}
        self.items = items


@dataclass(frozen=True)
class Departure:
    key: str
    address: int | None
    width: str
    value: Any
    learned: str              # in words: the learned set or range, or (new_width) the widths written
    new_width: bool           # the item was never written at this width


def departures(learned: dict[str, Any], server: str, protocol: str, op: Op) -> Iterator[Departure]:
    """The values of a write that the baseline's ``written_values`` does not hold."""
    for key, address, width, value in keyed_values(server, protocol, op):
        entry = learned.get(key)
        if entry is None:
            continue   # an address never written: address_out_of_range says so
        if isinstance(entry, list):     # [lo, hi] of a baseline without widths
            entry = {ANY_WIDTH: {"range": entry}}
        facts = entry.get(width, entry.get(ANY_WIDTH))
        if facts is None:
            yield Departure(key, address, width, value, ", ".join(sorted(entry)), True)
        elif not _holds(facts, value):
            yield Departure(key, address, width, value, _describe(facts), False)


def _holds(facts: dict[str, Any], value: Any) -> bool:
    if facts.get("any"):
        return True
    if "set" in facts:
        # True == 1 in Python: a bit's value and a number's are not the same value
        return any(v == value and isinstance(v, bool) == isinstance(value, bool) for v in facts["set"])
    lo, hi = facts["range"]
    if isinstance(value, (bool, str)) or lo is None or hi is None:
        return False
    margin = max((hi - lo) * 0.25, abs(hi) * 0.1, 1.0)
    return lo - margin <= value <= hi + margin


def _describe(facts: dict[str, Any]) -> str:
    if "set" in facts:
        return "{" + ", ".join(_show(v) for v in facts["set"]) + "}"
    lo, hi = facts["range"]
    return f"{_show(lo)}..{_show(hi)}"


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def fold(baseline: dict[str, Any], f: dict[str, Any]) -> None:
    """``baseline accept`` of a value alert: the value joins its item's set or widens its range."""
    entry = baseline["written_values"].get(f["key"])
    if isinstance(entry, list) or (entry is None and "width" not in f):   # a baseline without widths
        span = baseline["written_values"].setdefault(f["key"], [f["value"], f["value"]])
        span[0], span[1] = min(span[0], f["value"]), max(span[1], f["value"])
        return
    facts = baseline["written_values"].setdefault(f["key"], {}).setdefault(f["width"], {"set": []})
    value = f["value"]
    if facts.get("any"):
        return
    if "set" in facts:
        if value not in facts["set"]:
            facts["set"].append(value)
        return
    facts["range"] = [min(facts["range"][0], value), max(facts["range"][1], value)]
