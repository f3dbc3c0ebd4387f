"""A batch's JSON lines (the JSONL sink's own bytes) as the body of ``INSERT ... FORMAT JSONEachRow``.

Each line gets ``sensor_id`` and ``_row`` put in front of its first key, byte operations on the batch's whole
body (only the ``_row`` number is made per row); the server parses the rest.  Where the server cannot read a
line as it is, the line is parsed and reshaped here, which is the exception and costs about a tenth of
building column blocks:

- old servers (the compatible schema: 18.16 has no setting for it) read a nested value into a String column
  only as a JSON string, and a null into an Array column not at all: on their tables with such columns each
  row's nested values become their JSON text and its nulls are left out (a missing key takes the column's
  default: NULL, or an empty array);
- a table with search columns derived from a row (alerts: technique ids, zones) gets them here;
- a batch a server refused as bad data is tried once more reshaped (an address the server cannot read is
  left out, a number in a String column becomes its text), and its table is reshaped from then on.

Servers that have the settings read the rest themselves (nested values as their JSON text, nulls as the
column's default, numbers into String columns); every version skips unknown keys, reads DateTime64 from epoch
seconds and IPv6 from an IPv4 address.  Which settings a server has is asked once per connection
(``system.settings``), not inferred from its version.
"""
from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Any

import orjson
from otsensor.sensor.clickhouse.batches import Lines
from otsensor.sensor.clickhouse.tables import ROW_ID_COLUMN, SENSOR_COLUMN, Table

ROW_ID_BITS = 20                 # a batch holds at most 2**20 rows: _row = batch id << 20 | index
WANTED_SETTINGS = {"input_format_skip_unknown_fields": 1, "input_format_null_as_default": 1,
                   "input_format_json_read_objects_as_strings": 1, "input_format_json_read_arrays_as_strings": 1,
                   "input_format_json_read_numbers_as_strings": 1}
NESTED_AS_TEXT = ("input_format_json_read_objects_as_strings", "input_format_json_read_arrays_as_strings")
# every byte but a quote and the brackets: deleted to see a body's strings and structure alone (plain_strings)
NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')


@lru_cache(maxsize=65536)
def is_address(text: Any) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def plain_strings(text: bytes) -> bool:
    """Is every quote in ``text`` (JSON) a string's delimiter, and does no string hold a bracket?  Then brackets
    alone show the structure (``value_end``).  True when it has no backslash and its structure (quotes and
    brackets alone) shows every string as two adjacent quotes (counted from the left, pairs stay in step with the
    strings up to the first that holds something)."""
    if b"\\" in text:
        return False
    structure = text.translate(None, NOT_STRUCTURE)
    return structure.count(b'""') * 2 == structure.count(b'"')     # counted left to right: pairs in step


def value_end(text: bytes, start: int) -> int:
    """Where the list or object that starts at ``start`` ends (just past its closing bracket), in JSON whose
    strings hold no bracket (plain_strings); -1 if no list or object starts there or it does not end.  Its
    closing bracket is the first one of its kind after as many more of them as it holds opening ones: a few
    searches in C (one for the sensor's lists of objects), however deep it is."""
    opening = text[start:start + 1]
    if opening == b"[":
        closing = b"]"
    elif opening == b"{":
        closing = b"}"
    else:
        return -1
    end = text.find(closing, start + 1)
    inner = text.find(opening, start + 1, end) if end >= 0 else -1
    while inner >= 0:            # one more opening before it: the next closing one
        end = text.find(closing, end + 1)
        if end < 0:
            return -1
        inner = text.find(opening, inner + 1, end)
    return end + 1 if end >= 0 else -1


class JsonRows:
    """Builds one table's insert bodies for the column types the server holds (``server_types``)."""

    def __init__(self, table: Table, server_types: dict[str, str], sensor_id: str, known: frozenset[str]) -> None:
        self.table = table
        kinds = {c.name: c.kind for c in table.all_columns if c.name in server_types}
        self.nested = frozenset(n for n, k in kinds.items() if k == "json")
        self.strings = frozenset(n for n, k in kinds.items() if k == "string")
        self.addresses = frozenset(n for n, k in kinds.items() if k == "addr")
        arrays = frozenset(n for n, t in server_types.items() if t.startswith("Array("))
        self.nested_as_text = all(name in known for name in NESTED_AS_TEXT)
        # what this server cannot read as it is, on every row: nested values, nulls in arrays
        self.nested_fix = frozenset() if self.nested_as_text else self.nested
        self.array_fix = frozenset() if "input_format_null_as_default" in known else arrays
        self.reshape = table.derive is not None or bool(self.nested_fix or self.array_fix)
        # the byte patterns of fixed_body: a nested key with a value (not null); a null array, inside or last
        keys = b"|".join(re.escape(k.encode()) for k in sorted(self.nested_fix))
        self.nested_key = re.compile(b'"(?:%s)":(?!null)' % keys) if keys else None
        # a null array after another key (where it always is: a row starts with its time), and first in a line
        self.null_arrays = [(b',"%s":null' % k.encode(), b'{"%s":null,' % k.encode()) for k in sorted(self.array_fix)]
        head = b"{"
        if SENSOR_COLUMN.name in server_types:
            head += b'"' + SENSOR_COLUMN.name.encode() + b'":' + orjson.dumps(sensor_id) + b","
        self.head = head
        self.row_id = ROW_ID_COLUMN in server_types
        self.settings = {name: value for name, value in WANTED_SETTINGS.items() if name in known}

    def body(self, rows: Lines | list[bytes], batch_id: int, reshape: bool = False, start: int = 0) -> bytes:
        """The rows with sensor_id and _row in front, reshaped where this server needs it (module docstring).
        Whole-body byte operations where they can be: per row only the ``_row`` number and the rows that
        must be parsed.  ``start``: the first row's index in its batch (a piece of a batch: stream.py)."""
        if reshape:
            text = b"\n".join([orjson.dumps(self.reshaped(orjson.loads(line))) for line in rows])
        else:
            text = bytes(rows.body) if isinstance(rows, Lines) else b"\n".join(rows)   # bytes: no copy
            if self.reshape and self.row_id and self.table.derive is None:
                # null arrays cut after the prefix: a key is in front of each, one pass per column
                return self.without_null_arrays(self.prefixed(self.with_nested_values_as_text(text), batch_id, start),
                                                after_another=True)
            if self.reshape:
                text = self.fixed_body(text)
        return self.prefixed(text, batch_id, start)

    def prefixed(self, text: bytes, batch_id: int, start: int = 0) -> bytes:
        """``sensor_id`` and ``_row`` put in front of each line's first key (a line starts with ``{`` and holds
        no newline: ``\\n{`` is where a line starts)."""
        head = self.head
        if not self.row_id:
            return head + text[1:].replace(b"\n{", b"\n" + head)
        pieces = text.split(b"\n{")
        pieces[0] = pieces[0][1:]
        base = (batch_id << ROW_ID_BITS) + start
        lead = b"\n" + head + b'"_row":'
        parts: list[bytes] = [b""] * (2 * len(pieces))
        parts[0::2] = [b"%s%d," % (lead, n) for n in range(base, base + len(pieces))]
        parts[0] = parts[0][1:]
        parts[1::2] = pieces
        return b"".join(parts)

    def fixed_body(self, text: bytes) -> bytes:
        """``fixed`` on every line, without parsing them: each nested value (most rows have none: every nested
        key null) replaced by its JSON text as a JSON string, then null arrays cut out, byte edits of the whole
        body (a string cannot hold ``"key":null``: its quotes are escaped).  Where some string in the batch has
        a backslash or a bracket, line by line (``by_line``).  Lines are parsed and encoded again only where a
        table derives columns."""
        if self.table.derive is not None:
            return b"\n".join([self.parsed(line) for line in text.split(b"\n")])
        return self.without_null_arrays(self.with_nested_values_as_text(text))

    def with_nested_values_as_text(self, text: bytes) -> bytes:
        """``fixed_body`` but for the null arrays: each nested value as a JSON string of its text."""
        first = self.nested_key.search(text) if self.nested_key is not None else None
        if first is None:                     # no row has a nested value: nothing to look at
            return text
        edited = self.with_nested_text(text, first.start()) if plain_strings(text) else None
        return self.by_line(text) if edited is None else edited

    def by_line(self, text: bytes) -> bytes:
        """``with_nested_text`` on each line that has a nested value; a line where it cannot (a backslash or a
        bracket in one of its strings, a nested value that is not a list or an object) is parsed and encoded
        again."""
        out: list[bytes] = []
        done = 0
        for found in self.nested_key.finditer(text):  # type: ignore[union-attr]
            if found.start() < done:          # in a line already edited
                continue
            start = text.rfind(b"\n", 0, found.start()) + 1
            end = text.find(b"\n", found.end())
            end = len(text) if end < 0 else end
            line = text[start:end]
            edited = self.with_nested_text(line) if plain_strings(line) else None
            out += (text[done:start], self.parsed(line) if edited is None else edited)
            done = end
        out.append(text[done:])
        return b"".join(out)

    def with_nested_text(self, text: bytes, first: int = 0) -> bytes | None:
        """``text`` (lines for which plain_strings holds) with each nested value as a JSON string of its text,
        what ``fixed`` makes of it (from ``first`` on: none is before); None if one is not a list or an object.
        A value is taken whole (``value_end``), so a nested key inside it is left as it is, as ``fixed`` leaves it
        (a key of that name inside an object of a key the table has no column for, which the server skips, is
        edited too)."""
        out: list[bytes] = []
        done = 0
        search = self.nested_key.search  # type: ignore[union-attr]
        found = search(text, first)
        while found is not None:
            start = found.end()
            end = value_end(text, start)
            if end < 0:
                return None
            # no backslash in the value (plain_strings): a quote is the only byte to escape
            out += (text[done:start], b'"', text[start:end].replace(b'"', b'\\"'), b'"')
            done = end
            found = search(text, end)
        out.append(text[done:])
        return b"".join(out)

    def parsed(self, line: bytes) -> bytes:
        return orjson.dumps(self.fixed(orjson.loads(line)))

    def without_null_arrays(self, text: bytes, after_another: bool = False) -> bytes:
        """Lines (their nested values already text) with their null arrays cut out: one pass per column for a key
        after another key (a value is followed by a comma or its line's closing brace, so the cut leaves the line
        whole), and, unless the caller knows that none is first in its line (``after_another``: a prefix is in
        front of each), a search for one first in its line."""
        for not_first, first in self.null_arrays:
            text = text.replace(not_first, b"")
            if not after_another and first in text:
                text = text.replace(first, b"{")
        return text

    def fixed(self, row: dict[str, Any]) -> dict[str, Any]:
        """What every row needs on this server: search columns derived, nested values as their JSON text,
        null arrays left out (the column's default, an empty array, takes their place)."""
        if self.table.derive is not None:
            row.update(self.table.derive(row))
        for key in self.nested_fix:
            value = row.get(key)
            if value is not None:
                row[key] = orjson.dumps(value, default=str).decode()
        for key in self.array_fix:
            if key in row and row[key] is None:
                del row[key]
        return row

    def reshaped(self, row: dict[str, Any]) -> dict[str, Any]:
        """A row as this server reads it: nulls left out, nested values as JSON text on old servers, search
        columns derived, values the columns cannot hold left out or as text.  Never empty (``body`` needs a key)."""
        if self.table.derive is not None:
            row = {**row, **self.table.derive(row)}
        out: dict[str, Any] = {}
        for key, value in row.items():
            if value is None:
                continue
            if key in self.nested and not self.nested_as_text:
                value = orjson.dumps(value, default=str).decode()
            elif key in self.strings and value.__class__ is not str:
                value = str(value)
            elif key in self.addresses and not is_address(value):
                continue
            out[key] = value
        return out or {self.table.time: 0}
