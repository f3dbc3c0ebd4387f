"""What an S7comm PDU decodes to: the shapes the parsers fill and the records read.

A PDU (:class:`S7Pdu`) has its header fields, its Read/Write Var items
(:class:`Item`), for User-Data its parameter head (:class:`UserData`), and at
most one function-specific :class:`Detail` (setup parameters, a PI service,
a block transfer step, an SZL answer, a clock, ...).  Each detail writes its
own columns into a row; a record merges the request's and the response's.
The parsers (:mod:`s7`, :mod:`items`, :mod:`userdata`, :mod:`blocks`,
:mod:`szl`) import this module and never each other in a circle.
"""
from __future__ import annotations

from typing import Any, ClassVar, Final

from otsensor.dissectors.s7comm.constants import (
    AREA_DB,
    AREA_DI,
    AREA_NAMES,
    DATA_TRANSPORT_SIZE_NAMES,
    NUMBERED_AREAS,
    RETURN_NAMES,
    SYNTAX_NAMES,
    TRANSPORT_SIZE_NAMES,
    UD_GROUPS,
    UD_SUBFUNCTIONS,
    UD_TYPE_REQUEST,
    name_of,
)

Problems = list[tuple[str, str]]      # (anomaly name, reason) noted while parsing one PDU
NO_NAMES: Final[dict[int, str]] = {}


class Malformed(Exception):
    """A part of a PDU is too short or inconsistent to decode; the caller names the anomaly.

    Raised only by explicit checks: any other exception out of a decoder is a bug, which the
    dissector reports as a DissectorFault.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def need(buf: bytes, size: int, what: str) -> None:
    """``what`` takes ``size`` bytes of ``buf``; raises Malformed when they are not there."""
    if len(buf) < size:
        raise Malformed(f"{what}: {len(buf)} bytes, needs {size}")


class Detail:
    """Function-specific fields of one PDU; each subclass writes its own columns, in its own order."""

    __slots__ = ()
    COLUMNS: ClassVar[str] = ""       # the columns a subclass may write, for the log's declaration

    def fill_row(self, row: dict[str, Any]) -> None:
        raise NotImplementedError


class Item:
    """One Read/Write Var item: the variable specification of a request and/or the data of an item.

    A request item has a specification (``syntax`` set) and, in a Write Var
    job, the data written; a response item has a return code and, in a Read
    Var answer, the data read.  An answer item beyond the data present has
    neither (written as ``{}``).
    """

    __slots__ = ("syntax", "address_hex", "transport_size", "count", "db", "area", "address", "return_code",
                 "data_transport_size", "data", "values", "values_truncated")

    def __init__(self) -> None:
        self.syntax: int | None = None            # syntax id of a specification
        self.address_hex: str | None = None       # the address of a non-S7ANY specification, as hex
        self.transport_size: int | None = None    # S7ANY: transport size, count, DB, area, bit address
        self.count = 0
        self.db = 0
        self.area: int | None = None
        self.address = 0
        self.return_code: int | None = None       # data or result of a response item
        self.data_transport_size: int | None = None
        self.data = b""
        self.values: list[Any] | None = None      # decoded from ``data`` (bool, int, float or str elements)
        self.values_truncated = False

    def row(self) -> dict[str, Any]:
        """This item's fields as a new dict (its specification's columns built in one go)."""
        out = self._specification() if self.syntax is not None else {}
        self._fill_data(out)
        return out

    def fill(self, out: dict[str, Any]) -> None:
        """This item's fields, written over ``out`` (a response item over its request's: the answer's win)."""
        if self.syntax is not None:
            out.update(self._specification())
        self._fill_data(out)

    def merged_row(self, answer: Item) -> dict[str, Any]:
        """This request item's fields with its answer's written over them, as :meth:`row` then
        ``answer.fill`` give them, in one new dict.

        The usual items, a Read Var answer's data or a Write Var's return code on a byte-addressed S7ANY
        variable, are built in one dict display with the keys in their final order: the 9-key
        specification grown to 15 keys cost a resize of every item's dict.  Any other shape goes through
        :meth:`row` and :meth:`fill`."""
        area, tsize, code = self.area, self.transport_size, answer.return_code
        if (area is None or tsize is None or code is None or area in NUMBERED_AREAS or answer.syntax is not None
                or self.return_code is not None):
            return self._merged_slowly(answer)
        db = self.db if area == AREA_DB or area == AREA_DI else None
        syntax = SYNTAX_NAMES[self.syntax or 0]
        if self.data_transport_size is None and answer.data_transport_size is not None and answer.data:
            return {"syntax_id": syntax, "transport_size": TRANSPORT_SIZE_NAMES[tsize], "transport_size_code": tsize,
                    "count": self.count, "area": AREA_NAMES[area], "area_code": area, "db": db,
                    "byte_address": self.address >> 3, "bit_address": self.address & 0x7,
                    "return_code": code, "return_name": RETURN_NAMES[code],
                    "data_transport_size": DATA_TRANSPORT_SIZE_NAMES[answer.data_transport_size],
                    "data_hex": answer.data[:512].hex(), "values": answer.values,
                    "values_truncated": answer.values_truncated}
        if self.data_transport_size is not None and self.data and answer.data_transport_size is None:
            return {"syntax_id": syntax, "transport_size": TRANSPORT_SIZE_NAMES[tsize], "transport_size_code": tsize,
                    "count": self.count, "area": AREA_NAMES[area], "area_code": area, "db": db,
                    "byte_address": self.address >> 3, "bit_address": self.address & 0x7,
                    "data_transport_size": DATA_TRANSPORT_SIZE_NAMES[self.data_transport_size],
                    "data_hex": self.data[:512].hex(), "values": self.values,
                    "values_truncated": self.values_truncated,
                    "return_code": code, "return_name": RETURN_NAMES[code]}
        return self._merged_slowly(answer)

    def _merged_slowly(self, answer: Item) -> dict[str, Any]:
        out = self.row()
        answer.fill(out)
        return out

    def _specification(self) -> dict[str, Any]:
        syntax = SYNTAX_NAMES[self.syntax or 0]
        if self.address_hex is not None:
            return {"syntax_id": syntax, "address_hex": self.address_hex}
        area, tsize = self.area, self.transport_size
        if area is None or tsize is None:
            return {"syntax_id": syntax}
        db = self.db if area == AREA_DB or area == AREA_DI else None
        if area in NUMBERED_AREAS:       # timers and counters are addressed by number, not byte.bit
            return {"syntax_id": syntax, "transport_size": TRANSPORT_SIZE_NAMES[tsize], "transport_size_code": tsize,
                    "count": self.count, "area": AREA_NAMES[area], "area_code": area, "db": db,
                    "byte_address": self.address, "bit_address": None, "number": True}
        return {"syntax_id": syntax, "transport_size": TRANSPORT_SIZE_NAMES[tsize], "transport_size_code": tsize,
                "count": self.count, "area": AREA_NAMES[area], "area_code": area, "db": db,
                "byte_address": self.address >> 3, "bit_address": self.address & 0x7}

    def _fill_data(self, out: dict[str, Any]) -> None:
        if self.return_code is not None:
            out["return_code"] = self.return_code
            out["return_name"] = RETURN_NAMES[self.return_code]
        if self.data_transport_size is not None:
            out["data_transport_size"] = DATA_TRANSPORT_SIZE_NAMES[self.data_transport_size]
            if self.data:
                out["data_hex"] = self.data[:512].hex()
                out["values"] = self.values
                out["values_truncated"] = self.values_truncated

    def space(self) -> str | None:
        """``DB1`` / ``M`` / ``I`` / ``Q`` / ``T`` / ``C`` ... of an S7ANY specification (else its syntax)."""
        area = self.area
        if area is None:
            return None if self.syntax is None else SYNTAX_NAMES[self.syntax]
        if area == AREA_DB or area == AREA_DI:
            return block_space(area, self.db)
        return AREA_NAMES[area]

    def byte_address(self) -> int | None:
        if self.area is None:
            return None
        return self.address if self.area in NUMBERED_AREAS else self.address >> 3


def block_space(area: int, db: int) -> str:
    """``DB12`` (or ``DI12``): a data block's address space, made once per block and then shared.

    Every item of every Read/Write Var names one, and the graph and the learner look each up in their
    per-edge dicts: a string made once also keeps its hash.  The cache holds at most BLOCK_SPACES_CACHED
    names (a scan of every block number must not grow it); past that a name is made per item, as before.
    """
    key = area << 16 | db
    name = _BLOCK_SPACES.get(key)
    if name is None:
        name = f"{AREA_NAMES[area]}{db}"
        if len(_BLOCK_SPACES) < BLOCK_SPACES_CACHED:
            _BLOCK_SPACES[key] = name
    return name


BLOCK_SPACES_CACHED: Final = 4096
_BLOCK_SPACES: Final[dict[int, str]] = {}


class UserData:
    """The User-Data parameter head and data header of a ROSCTR 7 PDU, with its decoded content."""

    __slots__ = ("method", "type", "group", "subfunction", "sequence", "data_unit_ref", "last_data_unit",
                 "error_code", "return_code", "payload", "content", "items")

    def __init__(self, method: int, type_: int, group: int, subfunction: int, sequence: int) -> None:
        self.method = method
        self.type = type_
        self.group = group
        self.subfunction = subfunction
        self.sequence = sequence
        self.data_unit_ref: int | None = None
        self.last_data_unit = True
        self.error_code: int | None = None
        self.return_code: int | None = None
        self.payload = b""
        self.content: Detail | None = None      # what the payload says (SZL list, clock, block list, ...)
        self.items: list[Item] = []             # the variables of a cyclic subscription

    @property
    def is_request(self) -> bool:
        return self.type == UD_TYPE_REQUEST

    @property
    def group_name(self) -> str:
        return name_of(UD_GROUPS, self.group, 1)

    @property
    def subfunction_name(self) -> str:
        return name_of(UD_SUBFUNCTIONS.get(self.group, NO_NAMES), self.subfunction)


class S7Pdu:
    """One S7comm PDU: header, parameter and data parts, and what they decode to."""

    __slots__ = ("rosctr", "pdu_ref", "error_class", "error_code", "function", "item_count", "items", "detail",
                 "param", "data", "userdata", "problems")

    def __init__(self, rosctr: int, pdu_ref: int) -> None:
        self.rosctr = rosctr
        self.pdu_ref = pdu_ref
        self.error_class: int | None = None     # Ack / Ack_Data header
        self.error_code: int | None = None
        self.function: int | None = None        # parameter byte 0 (User-Data: the function group)
        self.item_count: int | None = None
        self.items: list[Item] = []
        self.detail: Detail | None = None
        self.param = b""
        self.data = b""
        self.userdata: UserData | None = None
        self.problems: Problems = []

    def problem(self, name: str, reason: str) -> None:
        self.problems.append((name, reason))
