"""What each S7 operation means to the analyzers: category, address space, tags.

Tables map (function) or (user-data group, sub-function) to a category and
tags; a few functions need their parameters (PI service name, item area).
"""
from __future__ import annotations

from typing import Any

from otsensor.dissectors.base import Category, Op, Tag
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
)

PROTOCOL = "s7comm"
_DOWNLOAD, _UPLOAD = frozenset({0x1A, 0x1B, 0x1C}), frozenset({0x1D, 0x1E, 0x1F})

# PI service -> (category, tags)
PI_OPS: dict[str, tuple[str, frozenset[str]]] = {
    "P_PROGRAM": (Category.CONTROL, frozenset({Tag.PLC_START})),
    "_INSE": (Category.PROGRAM, frozenset({Tag.PROGRAM_DOWNLOAD})),    # activates a downloaded block
    "_INS2": (Category.PROGRAM, frozenset({Tag.PROGRAM_DOWNLOAD})),
    "_DELE": (Category.PROGRAM, frozenset({Tag.PROGRAM_DELETE})),
    "_MODU": (Category.PROGRAM, frozenset({Tag.CONFIG_CHANGE})),       # copy RAM to ROM
    "_GARB": (Category.PROGRAM, frozenset()),                          # compress memory
    "_N_LOGIN_": (Category.SESSION, frozenset()),
    "_N_LOGOUT": (Category.SESSION, frozenset()),
}
# user-data (group) -> category; (group, sub-function) overrides with tags
UD_GROUP_CATEGORY = {
    G_MODE: Category.DIAGNOSTIC, G_TIS: Category.DIAGNOSTIC, G_CYCLIC: Category.READ,
    G_BLOCK: Category.RECON, G_CPU: Category.DIAGNOSTIC, G_SEC: Category.SESSION, G_TIME: Category.READ,
}
UD_SUB_OPS: dict[tuple[int, int], tuple[str, frozenset[str]]] = {
    (G_CPU, SUB_READ_SZL): (Category.RECON, frozenset({Tag.IDENTITY_READ})),
    (G_TIS, 0x0C): (Category.CONTROL, frozenset({Tag.PROGRAM_DELETE})),     # memory reset
    (G_TIS, 0x0B): (Category.CONTROL, frozenset({Tag.MODE_CHANGE})),        # exit HOLD
    **{(G_TIS, sub): (Category.WRITE, frozenset({Tag.FORCE})) for sub in TIS_FORCE_SUBFUNCTIONS},
    **{(G_TIME, sub): (Category.WRITE, frozenset({Tag.CLOCK_SET})) for sub in TIME_SET_SUBFUNCTIONS},
    **{(G_MODE, sub): (Category.DIAGNOSTIC, frozenset({Tag.MODE_CHANGE})) for sub in range(0x10)},
}


def item_space(item: dict[str, Any]) -> str | None:
    """``DB1`` / ``M`` / ``I`` / ``Q`` / ``T`` / ``C`` ... for an S7ANY item."""
    area = item.get("area")
    if area is None:
        return item.get("syntax_id")
    if area in ("DB", "DI") and item.get("db") is not None:
        return f"{area}{item['db']}"
    return area


def s7_op(function: int | None, group: int | None, subfunction: int | None, items: list[dict[str, Any]],
          fields: dict[str, Any], ok: bool | None, unit: int | None, function_name: str) -> Op:
    """The Op of one S7comm request/response pair."""
    category, tags = Category.OTHER, frozenset()
    space = start = count = None
    values: tuple | None = None
    if group is not None:
        category = UD_GROUP_CATEGORY.get(group, Category.OTHER)
        category, tags = UD_SUB_OPS.get((group, subfunction or 0), (category, tags))
        if group == G_TIME:
            space = "clock"
        elif "szl_id" in fields:
            space, start = f"SZL 0x{fields['szl_id']:04x}", fields.get("szl_index")
        elif group == G_BLOCK and fields.get("block_type"):
            space = fields["block_type"]
    elif function in (F_READ_VAR, F_WRITE_VAR):
        category = Category.READ if function == F_READ_VAR else Category.WRITE
        first = items[0] if items else {}
        space, start, count = item_space(first), first.get("byte_address"), first.get("count")
        if function == F_WRITE_VAR and "values" in first:
            values = tuple(first["values"])
    elif function == F_SETUP:
        category = Category.SESSION
    elif function == F_PLC_STOP:
        category, tags = Category.CONTROL, frozenset({Tag.PLC_STOP})
    elif function == F_PI_SERVICE:
        category, tags = PI_OPS.get(fields.get("pi_service", ""), (Category.CONTROL, frozenset()))
        blocks = fields.get("pi_blocks") or []
        if blocks:
            space = blocks[0].get("block_type")
            start = _int(blocks[0].get("block_number"))
    elif function in _DOWNLOAD or function in _UPLOAD:
        category = Category.PROGRAM
        tags = frozenset({Tag.PROGRAM_DOWNLOAD if function in _DOWNLOAD else Tag.PROGRAM_UPLOAD, Tag.FILE_TRANSFER})
        space, start = fields.get("block_type"), _int(fields.get("block_number"))
    return Op(protocol=PROTOCOL, function=function_name, category=category, space=space, start=start,
              count=count, values=values, ok=ok, tags=tags, unit=unit)


def _int(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


PLUS_OPS: dict[str, tuple[str, frozenset[str]]] = {
    "session_setup": (Category.SESSION, frozenset()),
    "keep_alive": (Category.SESSION, frozenset()),
    "notification": (Category.READ, frozenset()),
    "cpu_stop": (Category.CONTROL, frozenset({Tag.PLC_STOP})),
    "cpu_start": (Category.CONTROL, frozenset({Tag.PLC_START})),
    "operating_state_request": (Category.CONTROL, frozenset({Tag.MODE_CHANGE})),
    "read": (Category.READ, frozenset()),
    "write": (Category.WRITE, frozenset()),
    "unrecognised": (Category.OTHER, frozenset()),
}


def plus_op(operation: str, function_name: str | None, ok: bool | None, details: dict[str, Any]) -> Op:
    """SetVariable names its target: space ``object 0x00000034``, start = attribute id."""
    category, tags = PLUS_OPS.get(operation, (Category.OTHER, frozenset()))
    space = None if "object_id" not in details else f"object 0x{details['object_id']:08x}"
    return Op(protocol="s7comm_plus", function=function_name or operation, category=category, ok=ok, tags=tags,
              space=space, start=details.get("attribute_id"))
