"""What a CIP record means to the analyzers: the Op of each service, as a table.

The table maps a service name (names already resolve class-specific codes) to
a category and tags; a few rules refine it by class: Reset on the identity
object restarts the device, File object (0x37) downloads are program
downloads, Set Attribute on the clock objects sets the clock.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otsensor.dissectors.base import Category, Op, Tag
from otsensor.dissectors.enip import tables as T

if TYPE_CHECKING:
    from otsensor.dissectors.enip.records import CipRecord

_READ = (Category.READ, frozenset())
_WRITE = (Category.WRITE, frozenset())
_IDENTITY = (Category.RECON, frozenset({Tag.IDENTITY_READ}))

SERVICE_OPS: dict[str, tuple[str, frozenset[str]]] = {
    "Get Attributes All": _READ, "Get Attribute Single": _READ, "Get Attribute List": _READ,
    "Get Member": _READ, "Read Tag": _READ, "Read Tag Fragmented": _READ, "Read Other Tag": _READ, "Read Template": _READ,
    "Get Instance Attribute List": (Category.RECON, frozenset()), "Find Next Object Instance": (Category.RECON, frozenset()),
    "Set Attributes All": _WRITE, "Set Attribute Single": _WRITE, "Set Attribute List": _WRITE,
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
CLOCK_CLASSES = frozenset({0x43, 0x8B})          # Time Sync, Logix wall clock
FO_OP_KEYS = ("o_t_rpi_us", "t_o_rpi_us", "transport_class", "transport_trigger", "o_t_connection_type",
              "t_o_connection_type", "o_t_connection_id", "t_o_connection_id", "connection_path")


# PCCC functions (pccc.py names) -> category and tags; unlisted functions are OTHER
PCCC_OPS: dict[str, tuple[str, frozenset[str]]] = {
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


def _pccc_op(rec: CipRecord, info: dict[str, Any], ok: bool | None) -> Op:
    function = info.get("pccc_function", "unknown")
    category, tags = PCCC_OPS.get(function, (Category.OTHER, frozenset()))
    values = _values(rec, info) if category == Category.WRITE else None
    return Op("cip", f"PCCC {function}", category, space=info.get("pccc_file"), start=info.get("pccc_element"),
              count=info.get("pccc_byte_size"), values=values, ok=ok, tags=tags)


def _values(rec: CipRecord, info: dict[str, Any]) -> tuple | None:
    if "values" in info:
        return tuple(info["values"])
    if "data" in info:
        return (info["data"],)
    return None


def cip_op(rec: CipRecord) -> Op | None:
    if rec.direction == "response":
        return None          # an orphan response: its request (and so its meaning) was not seen
    category, tags = SERVICE_OPS.get(rec.service_name, (Category.OTHER, frozenset()))
    info = dict(rec.info)
    cls = rec.class_id
    if cls == T.IDENTITY_CLASS and category == Category.READ:
        category, tags = _IDENTITY
    if rec.service == T.RESET and cls == T.IDENTITY_CLASS:
        tags = tags | {Tag.RESTART}
    if category == Category.WRITE and cls == T.FILE_CLASS:
        category, tags = Category.PROGRAM, tags | {Tag.PROGRAM_DOWNLOAD, Tag.FILE_TRANSFER}
    if category == Category.WRITE and cls in CLOCK_CLASSES:
        tags = tags | {Tag.CLOCK_SET}
    if category == Category.WRITE and cls in T.LOGIX_PROGRAM_CLASSES:
        # creating or setting programs, routines or templates is how Logix downloads logic
        category, tags = Category.PROGRAM, tags | {Tag.PROGRAM_DOWNLOAD}
    if cls == T.NVS_CLASS and rec.service >= 0x4B:
        # the NVS object's class-specific services carry firmware images (ControlFLASH)
        category, tags = Category.PROGRAM, tags | {Tag.FIRMWARE}
    ok = None if rec.status is None else rec.status in (0x00, 0x06)
    if "enip_status_code" in info:   # refused at the encapsulation layer
        ok = False
    if "pccc_function" in info:
        return _pccc_op(rec, info, ok if info.get("pccc_status") in (None, "0x00") else False)
    space, start, count, values, detail = rec.space, None, None, None, None
    if category == Category.SESSION:
        detail = tuple((key, info[key]) for key in FO_OP_KEYS if key in info) or None
    else:
        start = rec.instance_id if not rec.symbol else _first_index(rec.symbol)
        count = info.get("elements")
        if category in (Category.WRITE, Category.PROGRAM):
            values = _values(rec, info)
    return Op("cip", rec.service_name, category, space=space, start=start, count=count, values=values,
              ok=ok, tags=frozenset(tags), detail=detail)


def _first_index(symbol: str) -> int | None:
    if "[" not in symbol:
        return None
    inner = symbol.split("[", 1)[1].split("]", 1)[0].split(",", 1)[0]
    return int(inner) if inner.isdigit() else None
