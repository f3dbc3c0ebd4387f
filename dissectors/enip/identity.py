"""The identity object's attributes (CIP Vol. 1 5A-2), as carried by Get Attributes All replies
and ListIdentity items, turned into log fields and inventory facts.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, ClassVar, Final

from otsensor.dissectors.enip.message import Detail, need
from otsensor.dissectors.enip.tables import DEVICE_STATES
from otsensor.dissectors.enip.vendors import device_type_name, vendor_name

_ATTRS: Final = struct.Struct("<HHHBBHI")   # vendor, device type, product code, revision major/minor, status, serial
_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")


class IdentityAttributes:
    """Attributes 1-8 of an identity object instance."""

    __slots__ = ("vendor_id", "device_type_id", "product_code", "revision", "device_status", "serial_number",
                 "product_name", "device_state")
    # the cip_identity columns fill_row writes (records.py declares them with the log's own)
    COLUMNS: ClassVar[str] = ("vendor_id:count vendor_name:string device_type_id:count device_type_name:string "
                              "product_code:count revision:string device_status:string serial_number:string "
                              "product_name:string device_state:string device_state_name:string")

    def __init__(self, vendor_id: int, device_type_id: int, product_code: int, revision: str, device_status: int,
                 serial_number: int, product_name: str, device_state: int | None) -> None:
        self.vendor_id = vendor_id
        self.device_type_id = device_type_id
        self.product_code = product_code
        self.revision = revision
        self.device_status = device_status
        self.serial_number = serial_number
        self.product_name = product_name
        self.device_state = device_state      # attribute 8, when the reply carries it

    def fill_row(self, row: dict[str, Any]) -> None:
        """Log fields in ICSNPP's cip_identity names (status, serial and state as hex strings)."""
        state = self.device_state
        row["vendor_id"] = self.vendor_id
        row["vendor_name"] = vendor_name(self.vendor_id)
        row["device_type_id"] = self.device_type_id
        row["device_type_name"] = device_type_name(self.device_type_id)
        row["product_code"] = self.product_code
        row["revision"] = self.revision
        row["device_status"] = f"0x{self.device_status:04x}"
        row["serial_number"] = f"0x{self.serial_number:08x}"
        row["product_name"] = self.product_name
        row["device_state"] = None if state is None else f"0x{state:02x}"
        row["device_state_name"] = None if state is None else DEVICE_STATES.get(state, f"unknown-{state}")

    def facts(self) -> dict[str, Any]:
        """Inventory facts with the shared keys of dissectors.base.Record.identity."""
        return {
            "vendor": vendor_name(self.vendor_id), "vendor_id": self.vendor_id,
            "device_type": device_type_name(self.device_type_id), "product_code": self.product_code,
            "revision": self.revision, "serial_number": f"0x{self.serial_number:08x}",
            "product_name": self.product_name,
        }


def parse_identity_attributes(data: bytes) -> IdentityAttributes | None:
    """Attributes 1-7 (and 8, state, when present) of a Get Attributes All reply."""
    if len(data) < _ATTRS.size + 1:
        return None
    vendor, dtype, product, major, minor, status, serial = _ATTRS.unpack_from(data, 0)
    pos = _ATTRS.size
    name_len = data[pos]
    name = data[pos + 1:pos + 1 + name_len]
    state_pos = pos + 1 + name_len
    return IdentityAttributes(vendor, dtype, product, f"{major}.{minor}", status, serial,
                              name.decode("latin-1", "replace"), data[state_pos] if len(data) > state_pos else None)


class IdentityAll(Detail):
    """A Get Attributes All reply of an identity instance: a cip_identity record, no cip columns of its own."""

    __slots__ = ("ident",)

    def __init__(self, ident: IdentityAttributes) -> None:
        self.ident = ident

    def fill_row(self, row: dict[str, Any]) -> None:
        return None


class IdentityAttribute(Detail):
    """A Get Attribute Single reply of an identity instance: the attribute by name, decoded."""

    __slots__ = ("name", "value", "vendor_name", "device_type_name")
    COLUMNS: ClassVar[str] = "attribute_name:string value:string vendor_name:string device_type_name:string"

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value
        self.vendor_name: str | None = None
        self.device_type_name: str | None = None

    def fill_row(self, row: dict[str, Any]) -> None:
        row["attribute_name"] = self.name
        row["value"] = self.value
        if self.vendor_name is not None:
            row["vendor_name"] = self.vendor_name
        elif self.device_type_name is not None:
            row["device_type_name"] = self.device_type_name


# Identity object instance attributes (Vol. 1 5A-2.2): number -> (name, bytes the value needs, decoder).
# The value is text, whatever the attribute: one column holds them all (numbers in decimal).
IDENTITY_ATTRIBUTES: Final[dict[int, tuple[str, int, Callable[[bytes], str]]]] = {
    1: ("vendor_id", 2, lambda b: str(_U16.unpack_from(b)[0])),
    2: ("device_type", 2, lambda b: str(_U16.unpack_from(b)[0])),
    3: ("product_code", 2, lambda b: str(_U16.unpack_from(b)[0])),
    4: ("revision", 2, lambda b: f"{b[0]}.{b[1]}"),
    5: ("status", 2, lambda b: f"0x{_U16.unpack_from(b)[0]:04x}"),
    6: ("serial_number", 4, lambda b: f"0x{_U32.unpack_from(b)[0]:08x}"),
    7: ("product_name", 1, lambda b: b[1:1 + b[0]].decode("latin-1", "replace")),
    8: ("state", 1, lambda b: str(b[0])),
}


def decode_identity_attribute(attribute: int, data: bytes) -> IdentityAttribute | None:
    """Name and value of one identity attribute (a Get Attribute Single reply); None if unknown."""
    entry = IDENTITY_ATTRIBUTES.get(attribute)
    if entry is None:
        return None
    name, size, decode = entry
    need(data, size, f"identity attribute {name}")
    out = IdentityAttribute(name, decode(data))
    if attribute == 1:
        out.vendor_name = vendor_name(_U16.unpack_from(data)[0])
    elif attribute == 2:
        out.device_type_name = device_type_name(_U16.unpack_from(data)[0])
    return out
