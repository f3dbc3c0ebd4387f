"""One validator for every TOML file the sensor reads: each section declares its keys, their types and checks.

A mistake is one line naming the file, the section and the key, and what was expected, with the name
that was probably meant when one is close (difflib, as Python's own "did you mean" hints)::

    sensor.toml: [detection] engineering_station: unknown key; did you mean engineering_stations?
    sensor.toml: [detecton]: unknown section; did you mean [detection]?
    sensor.toml: [[sinks.syslog]] #2 records: expected true or false, not the string 'yes'

Adding a section is a declaration: a :class:`Section` of :class:`Key` s (and sub-sections), placed in
the file's top-level :class:`Section`.  The loaders then read values they know to be well formed.
"""
from __future__ import annotations

import difflib
import ipaddress
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable, Iterable, Mapping

Check = Callable[[Any], "str | None"]   # why a well-typed value is still wrong, or None


@dataclass(frozen=True)
class Type:
    """A TOML value type: what messages call it (one, and several), and how to recognise it."""

    name: str
    plural: str
    accepts: Callable[[Any], bool]


def _instance_of(*kinds: type) -> Callable[[Any], bool]:
    # TOML keeps booleans apart from numbers; Python's bool is an int
    return lambda v: isinstance(v, kinds) and (bool in kinds or not isinstance(v, bool))


STRING = Type("a string", "strings", _instance_of(str))
INTEGER = Type("a whole number", "whole numbers", _instance_of(int))
NUMBER = Type("a number", "numbers", _instance_of(int, float))
BOOLEAN = Type("true or false", "booleans", _instance_of(bool))
TABLE = Type("a table", "tables", _instance_of(dict))
TIME = Type("a time", "times", _instance_of(str, date, int, float))   # checked further by the section


def list_of(item: Type) -> Type:
    return Type(f"a list of {item.plural}", f"lists of {item.plural}",
                lambda v: isinstance(v, list) and all(item.accepts(x) for x in v))


def either(*types: Type) -> Type:
    return Type(" or ".join(t.name for t in types), " or ".join(t.plural for t in types),
                lambda v: any(t.accepts(v) for t in types))


@dataclass(frozen=True)
class Key:
    type: Type
    check: Check | None = None
    required: str | None = None        # set when the key must be given: what to write there


@dataclass(frozen=True)
class Section:
    keys: Mapping[str, Key] = field(default_factory=dict)
    sections: Mapping[str, "Section"] = field(default_factory=dict)
    array: bool = False                # written [[name]]: an array of tables


class Invalid(ValueError):
    """A value that breaks its declaration; the message says where from the file's top."""


def validate(data: Mapping[str, Any], schema: Section, source: str, error: type[Exception]) -> None:
    """Check ``data`` (a parsed file) against ``schema``; the first mistake raises ``error``
    with the message ``SOURCE: [section] key: why``."""
    try:
        _table(data, schema, (), "")
    except Invalid as exc:
        raise error(f"{source}: {exc}") from None


def did_you_mean(word: str, candidates: Mapping[str, str] | Iterable[str]) -> str:
    """``'; did you mean X?'`` for the candidate closest to ``word``, or ''.  A mapping gives each
    candidate's spelling in the message (``detection`` -> ``[detection]``)."""
    shown = dict(candidates) if isinstance(candidates, Mapping) else {c: c for c in candidates}
    close = difflib.get_close_matches(word, list(shown), n=1)
    return f"; did you mean {shown[close[0]]}?" if close else ""


def at(label: str, key: str, why: str) -> str:
    """The message for ``key`` of the table ``label`` ("[detection]", or "" at the top of the file)."""
    return f"{label} {key}: {why}" if label else f"{key}: {why}"


# -- checks a key can declare ------------------------------------------------------------------------------

def one_of(choices: Iterable[str]) -> Check:
    names = tuple(choices)

    def check(value: Any) -> str | None:
        if value in names:
            return None
        return f"expected one of {', '.join(names)}, not {value!r}{did_you_mean(str(value), names)}"
    return check


def between(low: float, high: float) -> Check:
    return lambda v: None if low <= v <= high else f"expected a value from {low:g} to {high:g}, not {v!r}"


def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"expected at least {low:g}, not {v!r}"


def above(low: float) -> Check:
    return lambda v: None if v > low else f"expected more than {low:g}, not {v!r}"


def each(check: Check) -> Check:
    """A list whose every item passes ``check`` (the first failure is reported)."""
    def check_all(values: list) -> str | None:
        return next((why for why in map(check, values) if why), None)
    return check_all


def parses(parse: Callable[[Any], Any], expected: str) -> Check:
    """Values that ``parse`` accepts (ValueError otherwise), e.g. addresses or times."""
    def check(value: Any) -> str | None:
        try:
            parse(value)
        except ValueError:
            return f"expected {expected}, not {value!r}"
        return None
    return check


IP_ADDRESSES = each(parses(ipaddress.ip_address, "IP addresses"))
CIDRS = each(parses(lambda text: ipaddress.ip_network(text, strict=False), "CIDRs"))


# -- the walk ------------------------------------------------------------------------------------------------

def _table(table: Mapping[str, Any], section: Section, path: tuple[str, ...], label: str) -> None:
    """``path`` is the table's dotted name, ``label`` how messages name it ("[[sinks.syslog]] #2")."""
    for name, value in table.items():
        key = section.keys.get(name)
        if key is not None:
            why = _why(key, value)
            if why:
                raise Invalid(at(label, name, why))
        elif name in section.sections:
            _section(value, section.sections[name], (*path, name))
        else:
            raise Invalid(_unknown(name, value, section, path, label))
    for name, key in section.keys.items():
        if key.required and name not in table:
            raise Invalid(at(label, name, f"required ({key.required})"))


def _section(value: Any, section: Section, path: tuple[str, ...]) -> None:
    title = _title(path, section.array)
    if section.array:
        if not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            raise Invalid(f"{title}: expected an array of tables, written {title}")
        for i, element in enumerate(value, 1):
            _table(element, section, path, f"{title} #{i}")
    elif isinstance(value, dict):
        _table(value, section, path, title)
    else:
        raise Invalid(f"{title}: expected a table, written {title}")


def _unknown(name: str, value: Any, section: Section, path: tuple[str, ...], label: str) -> str:
    spellings = {k: k for k in section.keys}
    spellings.update({s: _title((*path, s), sub.array) for s, sub in section.sections.items()})
    hint = did_you_mean(name, spellings)
    tables = isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    if (isinstance(value, dict) or tables) and not label.startswith("[["):   # a table of one of many is a key
        return f"{_title((*path, name), tables)}: unknown section{hint}"
    return at(label, name, f"unknown key{hint}")


def _title(path: tuple[str, ...], array: bool) -> str:
    dotted = ".".join(path)
    return f"[[{dotted}]]" if array else f"[{dotted}]"


def _why(key: Key, value: Any) -> str | None:
    if not key.type.accepts(value):
        return f"expected {key.type.name}, not {_describe(value)}"
    return key.check(value) if key.check is not None else None


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, date):
        return f"the date {value.isoformat()}" if not isinstance(value, datetime) else f"the time {value.isoformat()}"
    text = json.dumps(value, default=str)
    return f"the list {text if len(text) <= 60 else text[:57] + '...'}"
