"""Records of the S7 package: cotp, s7comm, s7comm_read_szl, s7comm_upload_download (s7comm_plus: :mod:`plus_record`).

Field names follow Zeek ICSNPP s7comm (scripts/icsnpp/s7comm/main.zeek) where
it has one; ``is_orig`` says whether the request (or lone PDU) came from the
connection's originator.  An S7comm record keeps the parsed request and
response PDUs and builds its row, ``op()`` and the names of its codes from
them when asked.  ``Op.unit`` is the PLC's rack and slot as in the called
TSAP's low byte (``rack << 5 | slot``), once the flow's COTP connection
request was seen.
"""
from __future__ import annotations

from typing import Any, ClassVar, Final, Iterable

from otsensor.dissectors.base import Category, Column, Direction, Op, Record, columns
from otsensor.dissectors.s7comm import cotp, ops
from otsensor.dissectors.s7comm.blocks import PiService, TransferAck, TransferJob
from otsensor.dissectors.s7comm.constants import (
    COTP_DISCONNECT_REASONS,
    COTP_PDU_TYPES,
    ERROR_CLASSES,
    ERROR_CODES,
    FUNCTION_NAMES,
    RETURN_NAMES,
    RETURN_SUCCESS,
    ROSCTR_NAMES,
    TSAP_CONNECTION_TYPES,
    USERDATA_ERROR_CLASSES,
    hexcode,
    name_of,
)
from otsensor.dissectors.s7comm.s7 import Setup
from otsensor.dissectors.s7comm.shapes import Detail, S7Pdu
from otsensor.dissectors.s7comm.szl import LISTS, SzlContent, szl_id_name
from otsensor.dissectors.s7comm.userdata import CONTENTS

MAX_RECORD_ITEMS: Final = 256


def _union(specs: Iterable[str]) -> str:
    """Column declarations of several details, each column once (details sharing a column agree on its type)."""
    kinds: dict[str, str] = {}
    for spec in specs:
        for column in spec.split():
            name, _, kind = column.partition(":")
            if kinds.setdefault(name, kind) != kind:
                raise ValueError(f"column {name} declared as {kinds[name]} and {kind}")
    return " ".join(f"{name}:{kind}" for name, kind in kinds.items())


def _server_side(is_orig: bool) -> Direction:
    """Facts from an answer describe the side that answered the request."""
    return Direction.RESP if is_orig else Direction.ORIG


class CotpRecord(Record):
    """One COTP connection-management TPDU (CR, CC, DR, DC, ER, ...); data TPDUs are not logged."""

    __slots__ = ("is_orig", "code", "src_ref", "dst_ref", "calling_tsap", "called_tsap", "connection_type",
                 "rack", "slot", "tpdu_size", "reason", "unit")
    LOG: ClassVar[str] = "cotp"
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(
        "is_orig:bool pdu_code:string pdu_name:string src_ref:count dst_ref:count calling_tsap:string "
        "called_tsap:string connection_type:string rack:count slot:count tpdu_size:count disconnect_reason:string")

    def __init__(self, ts: float, is_orig: bool, pdu: cotp.CotpPdu, flow_unit: int | None) -> None:
        super().__init__(ts)
        self.is_orig = is_orig
        self.code = pdu.code
        self.src_ref = pdu.src_ref
        self.dst_ref = pdu.dst_ref
        self.calling_tsap = cotp.tsap_value(pdu.params, cotp.CALLING)
        self.called_tsap = cotp.tsap_value(pdu.params, cotp.CALLED)
        self.connection_type, self.rack, self.slot = cotp.rack_slot(self.called_tsap)
        self.tpdu_size = cotp.tpdu_size(pdu.params)
        self.reason = pdu.reason
        # the PLC's rack/slot: as this connection request names it, else as the flow's last one did
        requested = self.requested_unit()
        self.unit = requested if requested is not None else flow_unit

    def fill_row(self, row: dict[str, Any]) -> None:
        row["is_orig"] = self.is_orig
        row["pdu_code"] = hexcode(self.code)
        row["pdu_name"] = COTP_PDU_TYPES[self.code]
        row["src_ref"] = self.src_ref
        row["dst_ref"] = self.dst_ref
        row["calling_tsap"] = None if self.calling_tsap is None else f"0x{self.calling_tsap:04x}"
        row["called_tsap"] = None if self.called_tsap is None else f"0x{self.called_tsap:04x}"
        row["connection_type"] = (None if self.connection_type is None
                                  else name_of(TSAP_CONNECTION_TYPES, self.connection_type))
        row["rack"] = self.rack
        row["slot"] = self.slot
        row["tpdu_size"] = self.tpdu_size
        row["disconnect_reason"] = None if self.reason is None else name_of(COTP_DISCONNECT_REASONS, self.reason)

    def requested_unit(self) -> int | None:
        """The PLC's ``rack << 5 | slot`` that a connection request names in its called TSAP, else None."""
        if self.code != cotp.CR or self.rack is None or self.slot is None:
            return None
        return (self.rack << 5) | self.slot

    def op(self) -> Op:
        return Op("cotp", COTP_PDU_TYPES[self.code], Category.SESSION, unit=self.unit)

    def identity(self) -> tuple[Direction, dict[str, Any]] | None:
        if self.requested_unit() is None:
            return None
        return _server_side(self.is_orig), {"rack": self.rack, "slot": self.slot}


# Everything a PDU's function-specific detail or user-data content can write into an s7comm row.
DETAILS: Final[tuple[type[Detail], ...]] = (Setup, PiService, TransferJob, TransferAck, SzlContent, *LISTS, *CONTENTS)
DETAIL_COLUMNS: Final = _union(d.COLUMNS for d in DETAILS)


class S7commRecord(Record):
    """One S7comm request with its response (paired by PDU reference), or a lone PDU.

    A request waits in the dissector as a record without a response; the
    response completes the same object (:meth:`answer`) before it is emitted.
    """

    __slots__ = ("is_orig", "request", "response", "unit", "all_ops")
    LOG: ClassVar[str] = "s7comm"
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(
        "is_orig:bool rosctr_code:count rosctr_name:string pdu_reference:count function_code:string "
        "function_name:string subfunction_code:string subfunction_name:string error_class:string "
        "error_code:string error_name:string response_rosctr_code:count matched:bool item_count:count "
        "items:json items_truncated:bool " + DETAIL_COLUMNS +
        " userdata_type:count sequence_number:count return_code:string return_name:string")

    def __init__(self, ts: float, is_orig: bool, request: S7Pdu | None, response: S7Pdu | None) -> None:
        super().__init__(ts)
        self.is_orig = is_orig
        self.request = request
        self.response = response
        self.unit: int | None = None       # the flow's rack/slot when the record is emitted
        self.all_ops: tuple[Op, ...] | None = None   # op() and extra_ops(), worked out once (:meth:`_ops`)

    def answer(self, response: S7Pdu) -> S7commRecord:
        self.response = response
        self.all_ops = None
        return self

    @property
    def main(self) -> S7Pdu:
        """The PDU the record is about: the request, or a lone response."""
        pdu = self.request if self.request is not None else self.response
        assert pdu is not None, "a record has a request or a response"
        return pdu

    @property
    def matched(self) -> bool:
        return self.request is not None and self.response is not None

    def fill_row(self, row: dict[str, Any]) -> None:
        req, resp = self.request, self.response
        main = self.main
        ud = main.userdata
        row["is_orig"] = self.is_orig
        row["rosctr_code"] = main.rosctr
        row["rosctr_name"] = ROSCTR_NAMES[main.rosctr]
        row["pdu_reference"] = main.pdu_ref
        (row["function_code"], row["function_name"], row["subfunction_code"],
         row["subfunction_name"]) = _function_names(main)
        row["error_class"], row["error_code"], row["error_name"] = _error(resp)
        row["response_rosctr_code"] = resp.rosctr if resp is not None and req is not None else None
        row["matched"] = req is not None and resp is not None
        row["item_count"] = main.item_count
        items = _merged_items(req, resp)
        row["items"] = items[:MAX_RECORD_ITEMS]
        row["items_truncated"] = len(items) > MAX_RECORD_ITEMS
        _fill_details(row, req, resp)
        if ud is not None:
            row["userdata_type"] = ud.type
            row["sequence_number"] = ud.sequence
            answer = resp.userdata if resp is not None else None
            if answer is not None and answer.return_code is not None:
                row["return_code"] = hexcode(answer.return_code)
                row["return_name"] = RETURN_NAMES[answer.return_code]

    def ok(self) -> bool | None:
        """Whether the answer reports success (header, user-data and every item); None when unanswered."""
        resp = self.response
        if resp is None:
            return None
        ud = resp.userdata
        if resp.error_class or (ud is not None and ud.error_code):
            return False
        if ud is not None and ud.return_code is not None and ud.return_code != RETURN_SUCCESS:
            return False
        return all(item.return_code is None or item.return_code == RETURN_SUCCESS for item in resp.items)

    def op(self) -> Op:
        return self._ops()[0]

    def extra_ops(self) -> tuple[Op, ...]:
        """The second and later variables of a multi-item Read/Write Var (``op()`` is the first)."""
        req = self.request
        if req is None or len(req.items) < 2 or req.userdata is not None:
            return ()
        return self._ops()[1:]

    def _ops(self) -> tuple[Op, ...]:
        """One Op per variable of a Read/Write Var, else one: computed on the first ask and kept, since the
        pipeline asks op() and the graph, learner and detector each ask extra_ops() of the same record."""
        found = self.all_ops
        if found is None:
            main = self.main
            ud = main.userdata
            if ud is not None:
                name = ud.subfunction_name
            else:
                name = "none" if main.function is None else FUNCTION_NAMES[main.function]
            pi = ops.pi_service(self.request)
            if pi is not None and pi.service:
                name = f"{name} {pi.service}"          # e.g. "PI-Service P_PROGRAM"
            found = self.all_ops = tuple(ops.s7_ops(self.request, self.response, self.ok(), self.unit, name))
        return found

    # -- the row's values by name, for tests and tools (the row is built without them) -----------------

    @property
    def rosctr_code(self) -> int:
        return self.main.rosctr

    @property
    def pdu_reference(self) -> int:
        return self.main.pdu_ref

    @property
    def response_rosctr_code(self) -> int | None:
        return self.response.rosctr if self.response is not None and self.request is not None else None

    @property
    def item_count(self) -> int | None:
        return self.main.item_count

    @property
    def items(self) -> list[dict[str, Any]]:
        return _merged_items(self.request, self.response)[:MAX_RECORD_ITEMS]

    @property
    def function_code(self) -> str | None:
        return _function_names(self.main)[0]

    @property
    def function_name(self) -> str | None:
        return _function_names(self.main)[1]

    @property
    def subfunction_code(self) -> str | None:
        return _function_names(self.main)[2]

    @property
    def subfunction_name(self) -> str | None:
        return _function_names(self.main)[3]

    @property
    def error_class(self) -> str | None:
        return _error(self.response)[0]

    @property
    def error_code(self) -> str | None:
        return _error(self.response)[1]

    @property
    def error_name(self) -> str | None:
        return _error(self.response)[2]


def _function_names(main: S7Pdu) -> tuple[str | None, str | None, str | None, str | None]:
    """(function code, name, sub-function code, name): user-data reports group and sub-function."""
    ud = main.userdata
    if ud is not None:
        return hexcode(ud.group, 1), ud.group_name, hexcode(ud.subfunction), ud.subfunction_name
    if main.function is None:
        return None, None, None, None
    return hexcode(main.function), FUNCTION_NAMES[main.function], None, None


def _error(resp: S7Pdu | None) -> tuple[str | None, str | None, str | None]:
    """(error class, code, name) of the header, or of the user-data parameter.

    A user-data parameter's error is one 16-bit code (0xd209: a block not
    found), not a class and a code; it has no class, so the class is
    ICSNPP's "No error" or "Parameter Error" for it, and a successful reply
    says "No error" rather than nothing.
    """
    if resp is None:
        return None, None, None
    cls, code = resp.error_class, resp.error_code
    ud = resp.userdata
    if cls is None and ud is not None and ud.error_code is not None:
        whole = ud.error_code
        return (USERDATA_ERROR_CLASSES[whole != 0], hexcode(whole, 4), name_of(ERROR_CODES, whole, 4))
    if cls is None or code is None:
        return None, None, None
    return name_of(ERROR_CLASSES, cls), hexcode(code), name_of(ERROR_CODES, (cls << 8) | code, 4)


def _merged_items(req: S7Pdu | None, resp: S7Pdu | None) -> list[dict[str, Any]]:
    """Each request item's specification with its answer's return code and data (the answer's win)."""
    reqs = [] if req is None else req.items or (req.userdata.items if req.userdata is not None else req.items)
    resps = [] if resp is None else resp.items
    merged = []
    asked, answered = len(reqs), len(resps)
    for i in range(max(asked, answered)):
        if i < asked:
            merged.append(reqs[i].merged_row(resps[i]) if i < answered else reqs[i].row())
        else:
            item: dict[str, Any] = {}
            resps[i].fill(item)
            merged.append(item)
    return merged


def _fill_details(row: dict[str, Any], req: S7Pdu | None, resp: S7Pdu | None) -> None:
    """The function-specific columns of both PDUs: the answer's win (negotiated PDU size, upload id), ...

    ... except the SZL id and index asked for, which the request's keep.
    """
    for pdu in (req, resp):
        if pdu is not None:
            if pdu.detail is not None:
                pdu.detail.fill_row(row)
            if pdu.userdata is not None and pdu.userdata.content is not None:
                pdu.userdata.content.fill_row(row)
    asked = req.userdata.content if req is not None and req.userdata is not None else None
    if isinstance(asked, SzlContent):
        row["szl_id"] = asked.szl_id
        row["szl_index"] = asked.szl_index


class S7ReadSzlRecord(Record):
    """An SZL read (User-Data CPU functions / Read SZL) with its decoded answer."""

    __slots__ = ("is_orig", "request", "response", "answer")
    LOG: ClassVar[str] = "s7comm_read_szl"
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(
        "is_orig:bool pdu_reference:count method:string szl_id:string szl_id_name:string szl_index:string "
        "return_code:string return_code_name:string matched:bool szl_record_length:count szl_record_count:count "
        + _union(d.COLUMNS for d in LISTS) + " response_szl_index:string")

    def __init__(self, ts: float, is_orig: bool, request: S7Pdu | None, response: S7Pdu,
                 answer: SzlContent | None) -> None:
        super().__init__(ts)
        self.is_orig = is_orig
        self.request = request
        self.response = response
        self.answer = answer        # the (reassembled) answer's content; ``response`` is its first PDU

    def fill_row(self, row: dict[str, Any]) -> None:
        req, answer = self.request, self.answer
        asked = ops.szl_asked(req, None)
        szl = asked if asked is not None else answer        # the id and index asked for win over the echo
        row["is_orig"] = self.is_orig
        row["pdu_reference"] = (req if req is not None else self.response).pdu_ref
        row["method"] = "Request/Response" if req is not None else "Response"
        row["szl_id"] = None if szl is None else f"0x{szl.szl_id:04x}"
        row["szl_id_name"] = None if szl is None else szl_id_name(szl.szl_id)
        row["szl_index"] = None if szl is None else f"0x{szl.szl_index:04x}"
        ret = self.response.userdata.return_code if self.response.userdata is not None else None
        row["return_code"] = None if ret is None else hexcode(ret)
        row["return_code_name"] = None if ret is None else RETURN_NAMES[ret]
        row["matched"] = req is not None
        if answer is not None:
            answer.fill_answer(row)
            if asked is not None and answer.szl_index != asked.szl_index:
                row["response_szl_index"] = f"0x{answer.szl_index:04x}"

    def identity(self) -> tuple[Direction, dict[str, Any]] | None:
        listing = self.answer.listing if self.answer is not None else None
        if listing is None:
            return None
        facts: dict[str, Any] = {}
        listing.facts(facts)
        if not facts:
            return None
        facts["vendor"] = "Siemens"
        return _server_side(self.is_orig), facts


class S7UploadDownloadRecord(Record):
    """A block transfer step (request/start/end download or upload) with its response."""

    __slots__ = ("is_orig", "rosctr", "pdu_reference", "function_name", "function_status", "session_id",
                 "blocklength", "filename", "block_type", "block_number", "destination_filesystem", "matched",
                 "error_code")
    LOG: ClassVar[str] = "s7comm_upload_download"
    COLUMNS: ClassVar[tuple[Column, ...]] = columns(
        "is_orig:bool rosctr:string pdu_reference:count function_name:string function_status:count "
        "session_id:count blocklength:count filename:string block_type:string block_number:string "
        "destination_filesystem:string matched:bool error_code:string")

    def __init__(self, record: S7commRecord) -> None:
        req, resp = record.request, record.response
        main = record.main
        job = req.detail if req is not None and isinstance(req.detail, TransferJob) else None
        ack = resp.detail if resp is not None and isinstance(resp.detail, TransferAck) else None
        super().__init__(record.ts)
        self.is_orig = record.is_orig
        self.rosctr = ROSCTR_NAMES[main.rosctr]
        self.pdu_reference = main.pdu_ref
        self.function_name = FUNCTION_NAMES[main.function or 0]
        # the answer's status, session and length win over the job's
        self.function_status = (ack.function_status if ack is not None
                                else job.function_status if job is not None else None)
        self.session_id = (ack.session_id if ack is not None and ack.upload_started
                           else job.session_id if job is not None else None)
        self.blocklength = (ack.blocklength if ack is not None and ack.upload_started
                            else job.blocklength if job is not None and job.has_lengths else None)
        name = job.name if job is not None else None
        self.filename = name.filename if name is not None else None
        self.block_type = name.block_type if name is not None else None
        self.block_number = name.block_number if name is not None else None
        self.destination_filesystem = name.destination_filesystem if name is not None else None
        self.matched = record.matched
        error = _error(resp)[2]
        self.error_code = error if error != "No error" else None

    def fill_row(self, row: dict[str, Any]) -> None:
        row["is_orig"] = self.is_orig
        row["rosctr"] = self.rosctr
        row["pdu_reference"] = self.pdu_reference
        row["function_name"] = self.function_name
        row["function_status"] = self.function_status
        row["session_id"] = self.session_id
        row["blocklength"] = self.blocklength
        row["filename"] = self.filename
        row["block_type"] = self.block_type
        row["block_number"] = self.block_number
        row["destination_filesystem"] = self.destination_filesystem
        row["matched"] = self.matched
        row["error_code"] = self.error_code
