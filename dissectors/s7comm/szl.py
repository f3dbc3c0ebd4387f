"""SZL (system status list) ids and the lists that identify a device.

Request payload: SZL id, index.  Response payload: SZL id, index, record
length, record count, records.  The id's low byte is the list number; its
high byte selects a partial list (Wireshark packet-s7comm_szl_ids.c names).
Each list this package reads has its own detail class, which writes its
columns and the identity facts it reveals.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, ClassVar

from otsensor.dissectors.s7comm.constants import CPU_MODES, SZL_001C_FIELDS, SZL_0011_INDEXES, SZL_LISTS, name_of
from otsensor.dissectors.s7comm.shapes import Detail, Problems

ID_INDEX = struct.Struct(">HH")
LIST_HEADER = struct.Struct(">HH")       # record length, record count
_U16 = struct.Struct(">H")
MAX_RECORDS = 128


def szl_id_name(szl_id: int) -> str:
    return SZL_LISTS.get(szl_id & 0xFF) or f"unknown-0x{szl_id:04x}"


class SzlList(Detail):
    """The decoded records of one SZL list; ``facts`` adds what identifies the device."""

    __slots__ = ()

    def facts(self, out: dict[str, Any]) -> None:
        raise NotImplementedError


class SzlContent(Detail):
    """An SZL request (id and index) or answer (with the list header and, for lists we read, the records)."""

    __slots__ = ("szl_id", "szl_index", "has_header", "record_length", "record_count", "listing")
    COLUMNS: ClassVar[str] = "szl_id:count szl_index:count szl_record_length:count szl_record_count:count"

    def __init__(self, szl_id: int, szl_index: int) -> None:
        self.szl_id = szl_id
        self.szl_index = szl_index
        self.has_header = False             # an answer's record length and count were present
        self.record_length = 0
        self.record_count = 0
        self.listing: SzlList | None = None

    def fill_row(self, row: dict[str, Any]) -> None:
        row["szl_id"] = self.szl_id
        row["szl_index"] = self.szl_index
        self.fill_answer(row)

    def fill_answer(self, row: dict[str, Any]) -> None:
        """The answer's own columns: the list header and the records' fields."""
        if self.has_header:
            row["szl_record_length"] = self.record_length
            row["szl_record_count"] = self.record_count
        if self.listing is not None:
            self.listing.fill_row(row)


def decode(payload: bytes, is_request: bool, problems: Problems) -> SzlContent | None:
    if len(payload) < ID_INDEX.size:
        return None
    szl_id, index = ID_INDEX.unpack_from(payload)
    content = SzlContent(szl_id, index)
    if is_request or len(payload) < ID_INDEX.size + LIST_HEADER.size:
        return content
    rec_len, count = LIST_HEADER.unpack_from(payload, ID_INDEX.size)
    body = payload[ID_INDEX.size + LIST_HEADER.size:]
    content.has_header, content.record_length, content.record_count = True, rec_len, count
    if rec_len == 0 or rec_len * count > len(body):
        problems.append(("s7comm.bad_szl",
                         f"SZL 0x{szl_id:04x}: {count} records of {rec_len} bytes, {len(body)} bytes present"))
        count = len(body) // rec_len if rec_len else 0
    records = [body[i * rec_len:(i + 1) * rec_len] for i in range(min(count, MAX_RECORDS))]
    decoder = LIST_DECODERS.get(szl_id & 0xFF)
    if decoder is not None:
        content.listing = decoder(records)
    return content


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("latin-1").strip()


class ModuleIdentification(SzlList):
    """SZL 0x0011 records: index, MlfB (order number, 20 chars), BGTyp, Ausbg, Ausbe."""

    __slots__ = ("order_number", "module_version", "hardware_version", "firmware_version")
    COLUMNS: ClassVar[str] = ("order_number:string module_version:count hardware_version:string "
                              "firmware_version:string")

    def __init__(self, records: list[bytes]) -> None:
        self.order_number: str | None = None
        self.module_version: int | None = None
        self.hardware_version: str | None = None
        self.firmware_version: str | None = None
        for rec in records:
            if len(rec) >= 22:
                self._record(rec)

    def _record(self, rec: bytes) -> None:
        role = SZL_0011_INDEXES.get(_U16.unpack_from(rec)[0])
        order = _text(rec[2:22])
        if role == "module" and order:
            self.order_number = order
        version = _version(rec[24:28]) if len(rec) >= 28 else None
        if role == "basic_firmware" and version:
            self.firmware_version = version
        elif role == "basic_hardware" and version:
            self.hardware_version = version
        elif role == "module" and len(rec) >= 28:
            self.module_version = _U16.unpack_from(rec, 26)[0]

    def fill_row(self, row: dict[str, Any]) -> None:
        # the order of the records a CPU answers with: module (index 1), hardware (6), firmware (7)
        if self.order_number is not None:
            row["order_number"] = self.order_number
        if self.module_version is not None:
            row["module_version"] = self.module_version
        if self.hardware_version is not None:
            row["hardware_version"] = self.hardware_version
        if self.firmware_version is not None:
            row["firmware_version"] = self.firmware_version

    def facts(self, out: dict[str, Any]) -> None:
        if self.order_number is not None:
            out["order_number"] = self.order_number
        if self.hardware_version is not None:
            out["hardware_revision"] = self.hardware_version
        if self.firmware_version is not None:
            out["revision"] = self.firmware_version


def _version(raw: bytes) -> str | None:
    """Ausbg 'V' + major, Ausbe minor, patch (firmware/hardware records of 0x0011)."""
    if raw[0:1] != b"V":
        return None
    return f"V{raw[1]}.{raw[2]}.{raw[3]}"


# SZL 0x001C texts that identify a device: column -> identity key
COMPONENT_IDENTITY = {"station_name": "station_name", "module_name": "module_name", "plant_id": "plant_id",
                      "copyright": "copyright", "serial_number": "serial_number", "module_type": "model"}


class ComponentIdentification(SzlList):
    """SZL 0x001C records: index (2) + 32-byte text (station, module, plant id, copyright, serial, ...).

    The texts are kept by record index in the order the records came (a repeated index keeps its place).
    """

    __slots__ = ("texts",)
    COLUMNS: ClassVar[str] = " ".join(f"{column}:string" for column in SZL_001C_FIELDS.values())

    def __init__(self, records: list[bytes]) -> None:
        self.texts: dict[int, str] = {}
        for rec in records:
            if len(rec) < 4:
                continue
            index = _U16.unpack_from(rec)[0]
            text = _text(rec[2:34])
            if index in SZL_001C_FIELDS and text:
                self.texts[index] = text

    def fill_row(self, row: dict[str, Any]) -> None:
        for index, text in self.texts.items():
            row[SZL_001C_FIELDS[index]] = text

    def facts(self, out: dict[str, Any]) -> None:
        for index, text in self.texts.items():
            key = COMPONENT_IDENTITY.get(SZL_001C_FIELDS[index])
            if key is not None:
                out[key] = text


class CpuMode(SzlList):
    """SZL xy24 (modes): byte 3 (bzu-id) low nibble = current/requested mode, high nibble = previous."""

    __slots__ = ("state", "previous_state")
    COLUMNS: ClassVar[str] = "cpu_state:string cpu_previous_state:string"

    def __init__(self, bzu: int) -> None:
        self.state = name_of(CPU_MODES, bzu & 0x0F)
        self.previous_state = name_of(CPU_MODES, bzu >> 4)

    def fill_row(self, row: dict[str, Any]) -> None:
        row["cpu_state"] = self.state
        row["cpu_previous_state"] = self.previous_state

    def facts(self, out: dict[str, Any]) -> None:
        out["cpu_state"] = self.state


def _cpu_mode(records: list[bytes]) -> CpuMode | None:
    if not records or len(records[0]) < 4:
        return None
    return CpuMode(records[0][3])


MODE_SWITCH = {0: "undefined", 1: "RUN", 2: "RUN_P", 3: "STOP", 4: "MRES"}
STATUS_WORDS = struct.Struct(">HHHHHH")     # index, key, param, real, bart_sch, crst_wrst
CHECKSUM_WORDS = struct.Struct("<HHHH")     # little-endian, as Wireshark reads them


class CommunicationStatus(SzlList):
    """SZL 0x0132 index 4 (object management status): protection levels, mode switch, checksums."""

    __slots__ = ("key", "assigned", "level", "mode_switch", "hw_config_checksum", "program_checksum")
    COLUMNS: ClassVar[str] = ("protection_level_key:count protection_level_assigned:count protection_level:count "
                              "mode_switch:string hw_config_checksum:string program_checksum:string")

    def __init__(self, record: bytes) -> None:
        _index, self.key, self.assigned, self.level, switch, _crst = STATUS_WORDS.unpack_from(record)
        hw1, hw2, awp1, awp2 = CHECKSUM_WORDS.unpack_from(record, 16)
        self.mode_switch = name_of(MODE_SWITCH, switch, 1)
        self.hw_config_checksum = f"0x{hw1:04x}/0x{hw2:04x}"
        self.program_checksum = f"0x{awp1:04x}/0x{awp2:04x}"

    def fill_row(self, row: dict[str, Any]) -> None:
        row["protection_level_key"] = self.key
        row["protection_level_assigned"] = self.assigned
        row["protection_level"] = self.level
        row["mode_switch"] = self.mode_switch
        row["hw_config_checksum"] = self.hw_config_checksum
        row["program_checksum"] = self.program_checksum

    def facts(self, out: dict[str, Any]) -> None:
        out["protection_level"] = self.level
        out["mode_switch"] = self.mode_switch
        out["hw_config_checksum"] = self.hw_config_checksum
        out["program_checksum"] = self.program_checksum


def _communication_status(records: list[bytes]) -> CommunicationStatus | None:
    for rec in records:
        if len(rec) >= 24 and _U16.unpack_from(rec)[0] == 0x0004:
            return CommunicationStatus(rec)
    return None


LIST_DECODERS: dict[int, Callable[[list[bytes]], SzlList | None]] = {
    0x11: ModuleIdentification, 0x1C: ComponentIdentification, 0x24: _cpu_mode, 0x32: _communication_status,
}
LISTS: tuple[type[SzlList], ...] = (ModuleIdentification, ComponentIdentification, CpuMode, CommunicationStatus)
