"""What each S7 operation means to the analyzers: category, address space, tags.

Tables map (function) or (user-data group, sub-function) to a category and
tags; a few functions need their parameters (PI service name, item area,
SZL id, block named).
"""
from __future__ import annotations

from typing import Final

from otsensor.dissectors.base import NO_TAGS, Category, Op, Tag
from otsensor.dissectors.s7comm.blocks import BlockName, PiService, TransferJob
from otsensor.dissectors.s7comm.constants import (
    F_PI_SERVICE,
    F_PLC_STOP,
    F_READ_VAR,
    F_SETUP,
    F_WRITE_VAR,
    G_BLOCK,
    G_CPU,
    G_CYCLIC,
    G_MODE,
    G_SEC,
    G_TIME,
    G_TIS,
    SUB_READ_SZL,
    TIME_SET_SUBFUNCTIONS,
    TIS_FORCE_SUBFUNCTIONS,
    TRANSPORT_SIZE_NAMES,
)
from otsensor.dissectors.s7comm.shapes import S7Pdu
from otsensor.dissectors.s7comm.szl import SzlContent
from otsensor.dissectors.s7comm.userdata import BlockQuery

PROTOCOL: Final = "s7comm"
MAX_ITEM_OPS: Final = 64     # a Read/Write Var request holds at most a few dozen items; a bound for hostile ones
_DOWNLOAD, _UPLOAD = frozenset({0x1A, 0x1B, 0x1C}), frozenset({0x1D, 0x1E, 0x1F})

# PI service -> (category, tags)
PI_OPS: Final[dict[str, tuple[str, frozenset[str]]]] = {
    "P_PROGRAM": (Category.CONTROL, frozenset({Tag.PLC_START})),
    "_INSE": (Category.PROGRAM, frozenset({Tag.PROGRAM_DOWNLOAD})),    # activates a downloaded block
    "_INS2": (Category.PROGRAM, frozenset({Tag.PROGRAM_DOWNLOAD})),
    "_DELE": (Category.PROGRAM, frozenset({Tag.PROGRAM_DELETE})),
    "_MODU": (Category.PROGRAM, frozenset({Tag.CONFIG_CHANGE})),       # copy RAM to ROM
    "_GARB": (Category.PROGRAM, NO_TAGS),                              # compress memory
    "_N_LOGIN_": (Category.SESSION, NO_TAGS),
    "_N_LOGOUT": (Category.SESSION, NO_TAGS),
}
# user-data (group) -> category; (group, sub-function) overrides with tags
UD_GROUP_CATEGORY: Final = {
    G_MODE: Category.DIAGNOSTIC, G_TIS: Category.DIAGNOSTIC, G_CYCLIC: Category.READ,
    G_BLOCK: Category.RECON, G_CPU: Category.DIAGNOSTIC, G_SEC: Category.SESSION, G_TIME: Category.READ,
}
UD_SUB_OPS: Final[dict[tuple[int, int], tuple[str, frozenset[str]]]] = {
    (G_CPU, SUB_READ_SZL): (Category.RECON, frozenset({Tag.IDENTITY_READ})),
    (G_TIS, 0x0C): (Category.CONTROL, frozenset({Tag.PROGRAM_DELETE})),     # memory reset
    (G_TIS, 0x0B): (Category.CONTROL, frozenset({Tag.MODE_CHANGE})),        # exit HOLD
    **{(G_TIS, sub): (Category.WRITE, frozenset({Tag.FORCE})) for sub in TIS_FORCE_SUBFUNCTIONS},
    **{(G_TIME, sub): (Category.WRITE, frozenset({Tag.CLOCK_SET})) for sub in TIME_SET_SUBFUNCTIONS},
    **{(G_MODE, sub): (Category.DIAGNOSTIC, frozenset({Tag.MODE_CHANGE})) for sub in range(0x10)},
}
# transport size -> an item Op's detail, (("width", "word"),): one shared tuple per size, not one per item
WIDTH_DETAILS: Final[tuple[tuple[tuple[str, str]], ...]] = tuple((("width", name.lower()),)
                                                             for name in TRANSPORT_SIZE_NAMES)
TRANSFER_TAGS: Final = {
    **{f: frozenset({Tag.PROGRAM_DOWNLOAD, Tag.FILE_TRANSFER}) for f in _DOWNLOAD},
    **{f: frozenset({Tag.PROGRAM_UPLOAD, Tag.FILE_TRANSFER}) for f in _UPLOAD},
}


def s7_ops(req: S7Pdu | None, resp: S7Pdu | None, ok: bool | None, unit: int | None,
           function_name: str) -> list[Op]:
    """The Ops of one S7comm request/response pair (or of either alone): one per variable of a Read/Write
    Var request (:func:`var_ops`), else one for the whole PDU."""
    main = req if req is not None else resp
    assert main is not None
    ud = main.userdata
    if ud is not None:
        return [_userdata_op(req, resp, ud.group, ud.subfunction, ok, unit, function_name)]
    function = main.function
    category, tags = Category.OTHER, NO_TAGS
    space: str | None = None
    start: int | None = None
    if function == F_READ_VAR or function == F_WRITE_VAR:
        item_ops = var_ops(req, resp, ok, unit, function_name)
        if item_ops:
            return item_ops
        category = Category.READ if function == F_READ_VAR else Category.WRITE
    elif function == F_SETUP:
        category = Category.SESSION
    elif function == F_PLC_STOP:
        category, tags = Category.CONTROL, frozenset({Tag.PLC_STOP})
    elif function == F_PI_SERVICE:
        pi = pi_service(req)
        category, tags = PI_OPS.get(pi.service if pi is not None else "", (Category.CONTROL, NO_TAGS))
        if pi is not None and pi.blocks:
            space, start = pi.blocks[0].block_type, _int(pi.blocks[0].block_number)
    elif function in TRANSFER_TAGS:
        category, tags = Category.PROGRAM, TRANSFER_TAGS[function]
        name = transfer_name(req)
        if name is not None and name.block_number is not None:
            space, start = name.block_type, _int(name.block_number)
    return [Op(PROTOCOL, function_name, category, space, start, None, None, ok, tags, unit)]


def _userdata_op(req: S7Pdu | None, resp: S7Pdu | None, group: int, subfunction: int, ok: bool | None,
                 unit: int | None, function_name: str) -> Op:
    category, tags = UD_SUB_OPS.get((group, subfunction), (UD_GROUP_CATEGORY.get(group, Category.OTHER), NO_TAGS))
    space: str | None = None
    start = None
    if group == G_TIME:
        space = "clock"
    else:
        szl = szl_asked(req, resp)
        if szl is not None:
            space, start = f"SZL 0x{szl.szl_id:04x}", szl.szl_index
        elif group == G_BLOCK:
            space = _block_queried(req) or None
    return Op(PROTOCOL, function_name, category, space, start, None, None, ok, tags, unit)


def var_ops(req: S7Pdu | None, resp: S7Pdu | None, ok: bool | None, unit: int | None,
            function_name: str) -> list[Op]:
    """One Op per variable of a Read/Write Var request (the answer's items carry no specification).

    Each says the item's width (``detail`` ``width``: bit, byte, word, int, dword, dint, real, char, ...,
    from its transport size): a byte written where bits were is another kind of write.
    """
    if req is None or not req.items or req.function not in (F_READ_VAR, F_WRITE_VAR):
        return []
    category = Category.READ if req.function == F_READ_VAR else Category.WRITE
    out = []
    for i, item in enumerate(req.items[:MAX_ITEM_OPS]):
        count = item.count if item.area is not None else None
        values = _item_values(req, resp, i) if category == Category.WRITE else None
        tsize = item.transport_size
        out.append(Op(PROTOCOL, function_name, category, item.space(), item.byte_address(), count,
                      None if values is None else tuple(values), ok, NO_TAGS, unit,
                      None if tsize is None else WIDTH_DETAILS[tsize]))
    return out


def _item_values(req: S7Pdu, resp: S7Pdu | None, index: int) -> list[object] | None:
    """The values of one item: the answer's when it carries data, else the request's."""
    for pdu in (resp, req):
        if pdu is not None and len(pdu.items) > index and pdu.items[index].values is not None:
            return pdu.items[index].values
    return None


def szl_asked(req: S7Pdu | None, resp: S7Pdu | None) -> SzlContent | None:
    """The SZL id and index: as asked for in the request, else as echoed in the answer."""
    for pdu in (req, resp):
        content = pdu.userdata.content if pdu is not None and pdu.userdata is not None else None
        if isinstance(content, SzlContent):
            return content
    return None


def _block_queried(req: S7Pdu | None) -> str | None:
    content = req.userdata.content if req is not None and req.userdata is not None else None
    if not isinstance(content, BlockQuery):
        return None
    if content.name is None:
        return content.block_type
    return content.name.block_type if content.name.block_number is not None else None


def pi_service(req: S7Pdu | None) -> PiService | None:
    detail = req.detail if req is not None else None
    return detail if isinstance(detail, PiService) else None


def transfer_name(req: S7Pdu | None) -> BlockName | None:
    """The block a transfer job names (the answers name none)."""
    detail = req.detail if req is not None else None
    return detail.name if isinstance(detail, TransferJob) else None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
