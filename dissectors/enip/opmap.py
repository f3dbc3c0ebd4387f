"""What a CIP record means to the analyzers: the Op of each service, as a table.

The table maps a service name (names already resolve class-specific codes) to
a category and tags; a few rules refine it by class: Reset on the identity
object restarts the device, File object (0x37) downloads are program
downloads, Set Attribute on the clock objects sets the clock.
"""
from __future__ import annotations

from typing import Any, Final, cast

from otsensor.dissectors.base import NO_TAGS, VALUE_ITEM, Category, Op, Tag
from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.connmgr import ForwardClose, ForwardOpen, ForwardOpenReply
from otsensor.dissectors.enip.logix import ReadModifyWrite, ReadReply, ReadTag, WriteTag
from otsensor.dissectors.enip.message import Data, Detail, Message, TypedValues
from otsensor.dissectors.enip.pccc import PcccReply, PcccRequest

_READ: Final[tuple[str, frozenset[str]]] = (Category.READ, frozenset())
_WRITE: Final[tuple[str, frozenset[str]]] = (Category.WRITE, frozenset())
_IDENTITY: Final[tuple[str, frozenset[str]]] = (Category.RECON, frozenset({Tag.IDENTITY_READ}))

SERVICE_OPS: Final[dict[str, tuple[str, frozenset[str]]]] = {
    "Get Attributes All": _READ, "Get Attributes Single": _READ, "Get Attribute List": _READ,
    "Get Member": _READ, "Read Tag": _READ, "Read Tag Fragmented": _READ, "Read Other Tag": _READ, "Read Template": _READ,
    "Get Instance Attribute List": (Category.RECON, frozenset()), "Find Next Object Instance": (Category.RECON, frozenset()),
    "Set Attributes All": _WRITE, "Set Attributes Single": _WRITE, "Set Attribute List": _WRITE,
    "Set Member": _WRITE, "Insert Member": _WRITE, "Remove Member": _WRITE, "Write Tag": _WRITE,
    "Write Tag Fragmented": _WRITE, "Read Modify Write Tag": _WRITE, "Create": _WRITE, "Delete": _WRITE,
    "Apply Attributes": (Category.WRITE, frozenset({Tag.CONFIG_CHANGE})),
    "Restore": (Category.WRITE, frozenset({Tag.CONFIG_CHANGE})), "Save": _WRITE,
    "Reset": (Category.CONTROL, frozenset()),
    "Start": (Category.CONTROL, frozenset({Tag.PLC_START})), "Stop": (Category.CONTROL, frozenset({Tag.PLC_STOP})),
    "Forward Open": (Category.SESSION, frozenset()), "Large Forward Open": (Category.SESSION, frozenset()),
    "Forward Close": (Category.SESSION, frozenset()),
    "Initiate Download": (Category.PROGRAM, frozenset({Tag.PROGRAM_DOWNLOAD, Tag.FILE_TRANSFER})),
    "Download Transfer": (Category.PROGRAM, frozenset({Tag.PROGRAM_DOWNLOAD, Tag.FILE_TRANSFER})),
    "Initiate Partial Write": (Category.PROGRAM, frozenset({Tag.PROGRAM_DOWNLOAD, Tag.FILE_TRANSFER})),
    "Initiate Upload": (Category.PROGRAM, frozenset({Tag.PROGRAM_UPLOAD, Tag.FILE_TRANSFER})),
    "Upload Transfer": (Category.PROGRAM, frozenset({Tag.PROGRAM_UPLOAD, Tag.FILE_TRANSFER})),
    "Initiate Partial Read": (Category.PROGRAM, frozenset({Tag.PROGRAM_UPLOAD, Tag.FILE_TRANSFER})),
    "Clear File": (Category.PROGRAM, frozenset({Tag.PROGRAM_DELETE})),
}
CLOCK_CLASSES: Final = frozenset({0x43, 0x8B})          # Time Sync, Logix wall clock
_REFINED_CLASSES: Final = (frozenset({T.IDENTITY_CLASS, T.FILE_CLASS, T.NVS_CLASS}) | CLOCK_CLASSES
                           | T.LOGIX_PROGRAM_CLASSES)
_OTHER: Final[tuple[str, frozenset[str]]] = (Category.OTHER, frozenset())


# PCCC functions (pccc.py names) -> category and tags; unlisted functions are OTHER
PCCC_OPS: Final[dict[str, tuple[str, frozenset[str]]]] = {
    "Unprotected Read": _READ, "Protected Read": _READ, "Word Range Read": _READ, "Typed Read": _READ,
    "Protected Typed Logical Read (2 address fields)": _READ, "Protected Typed Logical Read (3 address fields)": _READ,
    "Unprotected Write": _WRITE, "Protected Write": _WRITE, "Protected Bit Write": _WRITE,
    "Unprotected Bit Write": _WRITE, "Word Range Write": _WRITE, "Bit Write": _WRITE, "Typed Write": _WRITE,
    "Read-Modify-Write": _WRITE, "Protected Typed Logical Write (2 address fields)": _WRITE,
    "Protected Typed Logical Write (3 address fields)": _WRITE,
    "Protected Typed Logical Masked Write (3 address fields)": _WRITE,
    "Change Mode": (Category.CONTROL, frozenset({Tag.MODE_CHANGE})),
    "Set CPU Mode": (Category.CONTROL, frozenset({Tag.MODE_CHANGE})),
    "Get Edit Resource": (Category.PROGRAM, frozenset()),
    "Diagnostic Status": _IDENTITY,
}


def _payload(detail: Detail | None) -> TypedValues | Data | None:
    """The values part of a detail: what a write carries or a read returned."""
    if isinstance(detail, (TypedValues, Data)):
        return detail
    if isinstance(detail, (WriteTag, ReadReply)):
        return detail.payload
    if isinstance(detail, PcccRequest) and detail.address is not None:
        return detail.address.payload
    return None


def _values(req: Detail | None, resp: Detail | None) -> tuple[Any, ...] | None:
    """Typed values (the reply's before the request's), else raw data as one hex value."""
    first, second = _payload(resp), _payload(req)
    for payload in (first, second):
        if isinstance(payload, TypedValues):
            return tuple(payload.values)
    for payload in (first, second):
        if isinstance(payload, Data):
            return (payload.hex,)
    return None


def _session_detail(req: Detail | None, resp: Detail | None) -> tuple[tuple[str, Any], ...] | None:
    """What a Forward Open / Close shows on its graph edge: RPIs, transport, connection ids and path."""
    fo = req if isinstance(req, ForwardOpen) else None
    pairs: list[tuple[str, Any]] = []
    if fo is not None:
        pairs += [("o_t_rpi_us", fo.o_t_rpi), ("t_o_rpi_us", fo.t_o_rpi), ("transport_class", fo.transport_class),
                  ("transport_trigger", fo.trigger), ("o_t_connection_type", fo.o_t.type),
                  ("t_o_connection_type", fo.t_o.type)]
    ids = resp if isinstance(resp, ForwardOpenReply) else fo   # the ids the target chose, else those asked for
    if ids is not None:
        pairs += [("o_t_connection_id", f"0x{ids.o_t_id:08x}"), ("t_o_connection_id", f"0x{ids.t_o_id:08x}")]
    if fo is not None:
        pairs.append(("connection_path", fo.connection_path))
    elif isinstance(req, ForwardClose):
        pairs.append(("connection_path", req.connection_path))
    return tuple(pairs) or None


def _pccc_op(request: PcccRequest, resp: Detail | None, ok: bool | None) -> Op:
    function = request.function_name
    category, tags = PCCC_OPS.get(function, _OTHER)
    values = _values(request, resp) if category == Category.WRITE else None
    address = request.address
    if address is None:
        return Op("cip", f"PCCC {function}", category, values=values, ok=ok, tags=tags)
    return Op("cip", f"PCCC {function}", category, space=address.file, start=address.element,
              count=address.byte_size, values=values, ok=ok, tags=tags)


def _by_class(category: str, tags: frozenset[str], cls: int, service: int) -> tuple[str, frozenset[str]]:
    """The class-specific refinements of a service's category and tags (each rule names one class)."""
    if cls == T.IDENTITY_CLASS:
        if category == Category.READ:
            category, tags = _IDENTITY
        if service == T.RESET:
            tags = tags | {Tag.RESTART}
    elif category == Category.WRITE and cls == T.FILE_CLASS:
        category, tags = Category.PROGRAM, tags | {Tag.PROGRAM_DOWNLOAD, Tag.FILE_TRANSFER}
    elif category == Category.WRITE and cls in CLOCK_CLASSES:
        tags = tags | {Tag.CLOCK_SET}
    elif category == Category.WRITE and cls in T.LOGIX_PROGRAM_CLASSES:
        # creating or setting programs, routines or templates is how Logix downloads logic
        category, tags = Category.PROGRAM, tags | {Tag.PROGRAM_DOWNLOAD}
    elif cls == T.NVS_CLASS and service >= 0x4B:
        # the NVS object's class-specific services carry firmware images (ControlFLASH)
        category, tags = Category.PROGRAM, tags | {Tag.FIRMWARE}
    return category, tags


MAX_PATH_OPS: Final = 16   # Ops kept per request path (Path.ops): a poll repeats one or two
# categories whose Op carries what one request held (values written, a connection's parameters)
_CARRY_DETAILS: Final = frozenset({Category.WRITE, Category.PROGRAM, Category.SESSION})


def cip_op(req: Message, resp: Message | None, name: str, refused: bool) -> Op:
    """The operation a request (and its reply, when seen) describes; ``refused``: an encapsulation error answered.

    An operation that carries no values (a read, a recon or control request; not a write, a download,
    a session or PCCC) is the same object each time the flow repeats it: kept in its path's ``ops``; the
    service and the path decide its category, name and address, the reply whether it succeeded."""
    status = resp.status if resp is not None else None
    ok = None if status is None else status == 0x00 or status == 0x06
    if refused:   # refused at the encapsulation layer
        ok = False
    req_detail = req.detail
    count = req_detail.elements if isinstance(req_detail, (ReadTag, WriteTag)) else None
    path = req.path
    if path is None or isinstance(req_detail, PcccRequest):
        return _cip_op(req, resp, name, ok, count)
    # one int for (service, outcome, count): no tuple made and hashed per record
    key = (0 if count is None else count + 1) << 9 | req.service << 2 | (0 if ok is None else 2 if ok else 1)
    ops = path.ops
    if ops is not None:
        known = ops.get(key)
        if known is not None:
            return cast(Op, known)
    op = _cip_op(req, resp, name, ok, count)
    if op.category not in _CARRY_DETAILS:
        if ops is None:
            ops = path.ops = {}
        if len(ops) < MAX_PATH_OPS:
            ops[key] = op
    return op


def _cip_op(req: Message, resp: Message | None, name: str, ok: bool | None, count: int | None) -> Op:
    category, tags = SERVICE_OPS.get(name, _OTHER)
    path = req.path
    cls = path.class_id if path is not None else None
    if cls is not None and cls in _REFINED_CLASSES:
        category, tags = _by_class(category, tags, cls, req.service)
    req_detail, resp_detail = req.detail, resp.detail if resp is not None else None
    if isinstance(req_detail, PcccRequest):
        reply_ok = not isinstance(resp_detail, PcccReply) or resp_detail.status == 0
        return _pccc_op(req_detail, resp_detail, ok if reply_ok else False)
    symbol = path.tag if path is not None else None
    space = symbol.split("[", 1)[0] if symbol else "class " + T.hex2(cls) if cls is not None else None
    if category == Category.SESSION:
        return Op("cip", name, category, space, None, None, None, ok, tags, None,
                  _session_detail(req_detail, resp_detail))
    start = _first_index(symbol) if symbol else path.instance_id if path is not None else None
    values = _values(req_detail, resp_detail) if category == Category.WRITE or category == Category.PROGRAM else None
    return Op("cip", name, category, space, start, count, values, ok, tags)


def _first_index(symbol: str) -> int | None:
    if "[" not in symbol:
        return None
    inner = symbol.split("[", 1)[1].split("]", 1)[0].split(",", 1)[0]
    # ASCII digits only: a symbol's own bytes may hold "[" and characters such as "²" that isdigit() accepts
    return int(inner) if inner.isascii() and inner.isdigit() else None


# Element sizes by Logix type name: a Write Tag Fragmented's byte offset in elements
_ELEMENT_SIZES: Final[dict[str, int]] = {name: size for name, _fmt, size in T.DATA_TYPES.values()}


def logix_items(op: Op, req: Message) -> tuple[Op, ...]:
    """Each element a Logix write sets, one Op apiece (``VALUE_ITEM``), for the value baseline.

    The item is named after the tag as written, its first subscript left empty (``Level[]``,
    ``Recipe[].Setpoint``; a tag written without one keeps its name) and the element's index, so the
    name is the same whichever element a request starts at; the width is the Logix data type (``dint``,
    ``real``, ...) and a Read Modify Write Tag's value its masks. Write Tag Fragmented counts its byte
    offset in elements."""
    path, detail = req.path, req.detail
    symbol = path.tag if path is not None else None
    if symbol is None:
        return ()
    name, first = _item_name(symbol)
    if isinstance(detail, ReadModifyWrite):
        width = f"mask{len(detail.or_mask) * 4}"
        return (_item(op, name, first, f"or {detail.or_mask} and {detail.and_mask}", width),)
    if not isinstance(detail, WriteTag):
        return ()
    payload = detail.payload
    width = detail.data_type.lower()
    if not isinstance(payload, TypedValues):          # a structure: its bytes as one value
        return (_item(op, name, first, payload.hex, width),)
    size = _ELEMENT_SIZES.get(detail.data_type, 0)
    start = first + (detail.offset // size if detail.offset is not None and size else 0)
    return tuple(_item(op, name, start + i, value, width) for i, value in enumerate(payload.values))


def _item(op: Op, name: str, element: int, value: Any, width: str) -> Op:
    return Op("cip", op.function, Category.WRITE, name, element, 1, (value,), op.ok, NO_TAGS, None,
              (("width", width), (VALUE_ITEM, True)))


def _item_name(symbol: str) -> tuple[str, int]:
    """(the symbol with its first subscript emptied, that subscript's index); index 0 without one."""
    index = _first_index(symbol)
    if index is None:
        return symbol, 0
    head, _, rest = symbol.partition("[")
    return f"{head}[]{rest.partition(']')[2]}", index
