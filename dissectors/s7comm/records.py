"""Records of the S7 package: cotp, s7comm, s7comm_read_szl, s7comm_upload_download, s7comm_plus.

Field names follow Zeek ICSNPP s7comm (scripts/icsnpp/s7comm/main.zeek) where
it has one; ``is_orig`` says whether the request (or lone PDU) came from the
connection's originator.  ``op()`` and ``identity()`` are computed by the
dissector when the record is built (see :mod:`ops`) and carried along.
``Op.unit`` is the PLC's rack and slot as in the called TSAP's low byte
(``rack << 5 | slot``), once the flow's COTP connection request was seen.
S7comm-plus ``integrity_part`` is True/False for V3/V1 and None where it is not
determined (V2 places its integrity data differently; not decoded).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from otsensor.dissectors.base import Direction, Op, Record

_HIDDEN = frozenset({"ts", "operation", "facts", "extra"})


def _flat(record: Any) -> dict[str, Any]:
    out = {f.name: getattr(record, f.name) for f in fields(record) if f.name not in _HIDDEN}
    extra = getattr(record, "extra", None)
    if extra:
        out.update({k: v for k, v in extra.items() if k not in out})
    return out


class _S7Record(Record):
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return _flat(self)

    def op(self) -> Op | None:
        return self.operation  # type: ignore[attr-defined]

    def identity(self) -> tuple[Direction, dict[str, Any]] | None:
        facts = self.facts  # type: ignore[attr-defined]
        if not facts:
            return None
        # facts describe the server side of the request (the PLC answering it)
        return (Direction.RESP if self.is_orig else Direction.ORIG), dict(facts)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class CotpRecord(_S7Record):
    """One COTP connection-management TPDU (CR, CC, DR, DC, ER, ...); data TPDUs are not logged."""

    LOG: ClassVar[str] = "cotp"
    ts: float
    is_orig: bool
    pdu_code: str
    pdu_name: str
    src_ref: int | None = None
    dst_ref: int | None = None
    calling_tsap: str | None = None
    called_tsap: str | None = None
    connection_type: str | None = None
    rack: int | None = None
    slot: int | None = None
    tpdu_size: int | None = None
    disconnect_reason: str | None = None
    operation: Op | None = field(default=None, compare=False, repr=False)
    facts: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class S7commRecord(_S7Record):
    """One S7comm request with its response (paired by PDU reference), or a lone PDU."""

    LOG: ClassVar[str] = "s7comm"
    ts: float
    is_orig: bool
    rosctr_code: int
    rosctr_name: str
    pdu_reference: int
    function_code: str | None
    function_name: str | None
    subfunction_code: str | None = None
    subfunction_name: str | None = None
    error_class: str | None = None
    error_code: str | None = None
    error_name: str | None = None
    response_rosctr_code: int | None = None
    matched: bool = False
    item_count: int | None = None
    items: tuple[dict[str, Any], ...] = ()
    items_truncated: bool = False
    extra: dict[str, Any] | None = field(default=None, compare=False)
    operation: Op | None = field(default=None, compare=False, repr=False)
    facts: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = _flat(self)
        out["items"] = [dict(item) for item in self.items]
        return out


@dataclass(frozen=True, slots=True)
class S7ReadSzlRecord(_S7Record):
    """An SZL read (User-Data CPU functions / Read SZL) with its decoded answer."""

    LOG: ClassVar[str] = "s7comm_read_szl"
    ts: float
    is_orig: bool
    pdu_reference: int
    method: str
    szl_id: str | None
    szl_id_name: str | None
    szl_index: str | None
    return_code: str | None = None
    return_code_name: str | None = None
    matched: bool = False
    extra: dict[str, Any] | None = field(default=None, compare=False)
    operation: Op | None = field(default=None, compare=False, repr=False)
    facts: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class S7UploadDownloadRecord(_S7Record):
    """A block transfer step (request/start/end download or upload) with its response."""

    LOG: ClassVar[str] = "s7comm_upload_download"
    ts: float
    is_orig: bool
    rosctr: str
    pdu_reference: int
    function_name: str
    function_status: int | None = None
    session_id: int | None = None
    blocklength: int | None = None
    filename: str | None = None
    block_type: str | None = None
    block_number: str | None = None
    destination_filesystem: str | None = None
    matched: bool = False
    error_code: str | None = None
    operation: Op | None = field(default=None, compare=False, repr=False)
    facts: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class S7PlusRecord(_S7Record):
    """One S7comm-plus request with its response (paired by sequence number), or a lone PDU."""

    LOG: ClassVar[str] = "s7comm_plus"
    ts: float
    is_orig: bool
    version: int
    opcode: str | None
    opcode_name: str | None
    function_code: str | None
    function_name: str | None
    sequence_number: int | None = None
    session_id: int | None = None
    integrity_part: bool | None = None
    operation_name: str = "unrecognised"
    requested_state: str | None = None
    object_id: str | None = None
    attribute_id: int | None = None
    assigned_session_id: int | None = None
    response_opcode: str | None = None
    matched: bool = False
    operation: Op | None = field(default=None, compare=False, repr=False)
    facts: dict[str, Any] | None = field(default=None, compare=False, repr=False)
