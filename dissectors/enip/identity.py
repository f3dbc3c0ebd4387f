"""The identity object's attributes (CIP Vol. 1 5A-2), as carried by Get Attributes All replies
and ListIdentity items, turned into log fields and inventory facts.
"""
from __future__ import annotations

import struct
from typing import Any

from otsensor.dissectors.enip.tables import DEVICE_STATES
from otsensor.dissectors.enip.vendors import device_type_name, vendor_name

_ATTRS = struct.Struct("<HHHBBHI")   # vendor, device type, product code, revision major/minor, status, serial


def parse_identity_attributes(data: bytes) -> dict[str, Any] | None:
    """Attributes 1-7 (and 8, state, when present) of a Get Attributes All reply."""
    if len(data) < _ATTRS.size + 1:
        return None
    vendor, dtype, product, major, minor, status, serial = _ATTRS.unpack_from(data, 0)
    pos = _ATTRS.size
    name_len = data[pos]
    name = data[pos + 1:pos + 1 + name_len]
    state_pos = pos + 1 + name_len
    return {"vendor_id": vendor, "device_type_id": dtype, "product_code": product,
            "revision": f"{major}.{minor}", "device_status": status, "serial_number": serial,
            "product_name": name.decode("latin-1", "replace"),
            "device_state": data[state_pos] if len(data) > state_pos else None}


# Identity object instance attributes (Vol. 1 5A-2.2): number -> (name, decoder of the value bytes)
IDENTITY_ATTRIBUTES: dict[int, tuple[str, Any]] = {
    1: ("vendor_id", lambda b: struct.unpack_from("<H", b)[0]),
    2: ("device_type", lambda b: struct.unpack_from("<H", b)[0]),
    3: ("product_code", lambda b: struct.unpack_from("<H", b)[0]),
    4: ("revision", lambda b: f"{b[0]}.{b[1]}"),
    5: ("status", lambda b: f"0x{struct.unpack_from('<H', b)[0]:04x}"),
    6: ("serial_number", lambda b: f"0x{struct.unpack_from('<I', b)[0]:08x}"),
    7: ("product_name", lambda b: b[1:1 + b[0]].decode("latin-1", "replace")),
    8: ("state", lambda b: b[0]),
}


def decode_identity_attribute(attribute: int, data: bytes) -> dict[str, Any] | None:
    """Name and value of one identity attribute (a Get Attribute Single reply); None if unknown."""
    entry = IDENTITY_ATTRIBUTES.get(attribute)
    if entry is None:
        return None
    name, decode = entry
    out: dict[str, Any] = {"attribute_name": name, "value": decode(data)}
    if attribute == 1:
        out["vendor_name"] = vendor_name(out["value"])
    elif attribute == 2:
        out["device_type_name"] = device_type_name(out["value"])
    return out


def identity_fields(ident: dict[str, Any]) -> dict[str, Any]:
    """Log fields in ICSNPP's cip_identity names (status, serial and state as hex strings)."""
    state = ident.get("device_state")
    return {
        "vendor_id": ident["vendor_id"], "vendor_name": vendor_name(ident["vendor_id"]),
        "device_type_id": ident["device_type_id"], "device_type_name": device_type_name(ident["device_type_id"]),
        "product_code": ident["product_code"], "revision": ident["revision"],
        "device_status": f"0x{ident['device_status']:04x}", "serial_number": f"0x{ident['serial_number']:08x}",
        "product_name": ident["product_name"],
        "device_state": None if state is None else f"0x{state:02x}",
        "device_state_name": None if state is None else DEVICE_STATES.get(state, f"unknown-{state}"),
    }


def identity_facts(ident: dict[str, Any]) -> dict[str, Any]:
    """Inventory facts with the shared keys of dissectors.base.Record.identity."""
    return {
        "vendor": vendor_name(ident["vendor_id"]), "vendor_id": ident["vendor_id"],
        "device_type": device_type_name(ident["device_type_id"]), "product_code": ident["product_code"],
        "revision": ident["revision"], "serial_number": f"0x{ident['serial_number']:08x}",
        "product_name": ident["product_name"],
    }
