"""The s7comm_plus record: one S7comm-plus request with its response, and what it means to the analyzers.

``integrity_part`` is True/False for V3/V1 and None where it is not determined
(V2 places its integrity data differently; not decoded).  Operations are
named only where the unprotected bytes say so (:func:`s7plus.recognise`).
"""
from __future__ import annotations

from typing import Any, ClassVar

from otsensor.dissectors.base import NO_TAGS, Category, Column, Op, Record, Tag, columns
from otsensor.dissectors.s7comm.constants import PLUS_FUNCTIONS, PLUS_OPCODES, hexcode, name_of
from otsensor.dissectors.s7comm.s7plus import PlusOperation, PlusPdu, created_object_id, recognise

PLUS_OPS: dict[str, tuple[str, frozenset[str]]] = {
    "session_setup": (Category.SESSION, NO_TAGS),
    "keep_alive": (Category.SESSION, NO_TAGS),
    "notification": (Category.READ, NO_TAGS),
    "cpu_stop": (Category.CONTROL, frozenset({Tag.PLC_STOP})),
    "cpu_start": (Category.CONTROL, frozenset({Tag.PLC_START})),
    "operating_state_request": (Category.CONTROL, frozenset({Tag.MODE_CHANGE})),
    "read": (Category.READ, NO_TAGS),
    "write": (Category.WRITE, NO_TAGS),
    "unrecognised": (Category.OTHER, NO_TAGS),
}


def plus_op(operation: PlusOperation, function_name: str | None) -> Op:
    """SetVariable names its target: space ``object 0x00000034``, start = attribute id.

    ``ok`` stays unknown: the answer's return value sits in the (partly undocumented) body.
    """
    category, tags = PLUS_OPS.get(operation.name, (Category.OTHER, NO_TAGS))
    space = None if operation.object_id is None else f"object 0x{operation.object_id:08x}"
    return Op("s7comm_plus", function_name or operation.name, category, space, operation.attribute_id, None, None,
              None, tags, None)


class S7PlusRecord(Record):
    """One S7comm-plus request with its response (paired by sequence number), or a lone PDU.

    Built when the request is seen; a response completes it (:meth:`answer`).
    """

    __slots__ = ("is_orig", "request", "operation", "response")
    LOG: ClassVar[str] = "s7comm_plus"
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(
        "is_orig:bool version:count opcode:string opcode_name:string function_code:string function_name:string "
        "sequence_number:count session_id:count integrity_part:bool operation_name:string requested_state:string "
        "object_id:string attribute_id:count assigned_session_id:count response_opcode:string matched:bool")

    def __init__(self, ts: float, is_orig: bool, request: PlusPdu) -> None:
        super().__init__(ts)
        self.is_orig = is_orig
        self.request = request
        self.operation: PlusOperation = recognise(request)
        self.response: PlusPdu | None = None

    def answer(self, response: PlusPdu) -> S7PlusRecord:
        self.response = response
        return self

    def fill_row(self, row: dict[str, Any]) -> None:
        req, operation = self.request, self.operation
        row["is_orig"] = self.is_orig
        row["version"] = req.version
        row["opcode"] = self.opcode
        row["opcode_name"] = self.opcode_name
        row["function_code"] = None if req.function is None else hexcode(req.function, 4)
        row["function_name"] = self.function_name
        row["sequence_number"] = req.sequence
        row["session_id"] = req.session_id
        row["integrity_part"] = req.integrity_part
        row["operation_name"] = operation.name
        row["requested_state"] = operation.requested_state
        row["object_id"] = self.object_id
        row["attribute_id"] = operation.attribute_id
        row["assigned_session_id"] = self.assigned_session_id
        row["response_opcode"] = self.response_opcode
        row["matched"] = self.response is not None

    def op(self) -> Op:
        return plus_op(self.operation, self.function_name)

    # -- the row's values by name ---------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self.request.version

    @property
    def opcode(self) -> str | None:
        return None if self.request.opcode is None else hexcode(self.request.opcode)

    @property
    def opcode_name(self) -> str | None:
        return None if self.request.opcode is None else name_of(PLUS_OPCODES, self.request.opcode)

    @property
    def function_name(self) -> str | None:
        return None if self.request.function is None else name_of(PLUS_FUNCTIONS, self.request.function, 4)

    @property
    def sequence_number(self) -> int | None:
        return self.request.sequence

    @property
    def session_id(self) -> int | None:
        return self.request.session_id

    @property
    def integrity_part(self) -> bool | None:
        return self.request.integrity_part

    @property
    def operation_name(self) -> str:
        return self.operation.name

    @property
    def requested_state(self) -> str | None:
        return self.operation.requested_state

    @property
    def object_id(self) -> str | None:
        return None if self.operation.object_id is None else f"0x{self.operation.object_id:08x}"

    @property
    def attribute_id(self) -> int | None:
        return self.operation.attribute_id

    @property
    def assigned_session_id(self) -> int | None:
        """The session a V1 CreateObject opened: the first object id its response returns."""
        if self.response is None or self.operation.name != "session_setup":
            return None
        return created_object_id(self.response)

    @property
    def response_opcode(self) -> str | None:
        resp = self.response
        return None if resp is None or resp.opcode is None else hexcode(resp.opcode)

    @property
    def matched(self) -> bool:
        return self.response is not None
