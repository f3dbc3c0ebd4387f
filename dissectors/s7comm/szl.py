"""SZL (system status list) ids and the lists that identify a device.

Request payload: SZL id, index.  Response payload: SZL id, index, record
length, record count, records.  The id's low byte is the list number; its
high byte selects a partial list (Wireshark packet-s7comm_szl_ids.c names).
"""
from __future__ import annotations

import struct
from typing import Any

from otsensor.dissectors.s7comm.constants import CPU_MODES, SZL_001C_FIELDS, SZL_0011_INDEXES, SZL_LISTS, name_of

ID_INDEX = struct.Struct(">HH")
LIST_HEADER = struct.Struct(">HH")       # record length, record count
MAX_RECORDS = 128


def szl_id_name(szl_id: int) -> str:
    return SZL_LISTS.get(szl_id & 0xFF) or f"unknown-0x{szl_id:04x}"


def decode(payload: bytes, is_request: bool, problems: list[tuple[str, str]]) -> dict[str, Any]:
    if len(payload) < ID_INDEX.size:
        return {}
    szl_id, index = ID_INDEX.unpack_from(payload)
    out: dict[str, Any] = {"szl_id": szl_id, "szl_index": index}
    if is_request or len(payload) < ID_INDEX.size + LIST_HEADER.size:
        return out
    rec_len, count = LIST_HEADER.unpack_from(payload, ID_INDEX.size)
    body = payload[ID_INDEX.size + LIST_HEADER.size:]
    out["szl_record_length"], out["szl_record_count"] = rec_len, count
    if rec_len == 0 or rec_len * count > len(body):
        problems.append(("s7comm.bad_szl", f"SZL 0x{szl_id:04x}: {count} records of {rec_len} bytes, {len(body)} bytes present"))
        count = len(body) // rec_len if rec_len else 0
    records = [body[i * rec_len:(i + 1) * rec_len] for i in range(min(count, MAX_RECORDS))]
    decoder = _LIST_DECODERS.get(szl_id & 0xFF)
    if decoder is not None:
        out.update(decoder(records))
    return out


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("latin-1").strip()


def _module_identification(records: list[bytes]) -> dict[str, Any]:
    """SZL 0x0011 records: index, MlfB (order number, 20 chars), BGTyp, Ausbg, Ausbe."""
    out: dict[str, Any] = {}
    for rec in records:
        if len(rec) < 22:
            continue
        index = struct.unpack_from(">H", rec)[0]
        role = SZL_0011_INDEXES.get(index)
        order = _text(rec[2:22])
        if role == "module" and order:
            out["order_number"] = order
        version = _version(rec[24:28]) if len(rec) >= 28 else None
        if role == "basic_firmware" and version:
            out["firmware_version"] = version
        elif role == "basic_hardware" and version:
            out["hardware_version"] = version
        elif role == "module" and len(rec) >= 28:
            out["module_version"] = struct.unpack_from(">H", rec, 26)[0]
    return out


def _version(raw: bytes) -> str | None:
    """Ausbg 'V' + major, Ausbe minor, patch (firmware/hardware records of 0x0011)."""
    if raw[0:1] != b"V":
        return None
    return f"V{raw[1]}.{raw[2]}.{raw[3]}"


def _component_identification(records: list[bytes]) -> dict[str, Any]:
    """SZL 0x001C records: index (2) + 32-byte text (station, module, plant id, copyright, serial, ...)."""
    out: dict[str, Any] = {}
    for rec in records:
        if len(rec) < 4:
            continue
        key = SZL_001C_FIELDS.get(struct.unpack_from(">H", rec)[0])
        text = _text(rec[2:34])
        if key and text:
            out[key] = text
    return out


def _cpu_mode(records: list[bytes]) -> dict[str, Any]:
    """SZL xy24 (modes): byte 3 (bzu-id) low nibble = current/requested mode, high nibble = previous."""
    if not records or len(records[0]) < 4:
        return {}
    bzu = records[0][3]
    return {"cpu_state": name_of(CPU_MODES, bzu & 0x0F), "cpu_previous_state": name_of(CPU_MODES, bzu >> 4)}


MODE_SWITCH = {0: "undefined", 1: "RUN", 2: "RUN_P", 3: "STOP", 4: "MRES"}
STATUS_WORDS = struct.Struct(">HHHHHH")     # index, key, param, real, bart_sch, crst_wrst


def _communication_status(records: list[bytes]) -> dict[str, Any]:
    """SZL 0x0132 index 4 (object management status): protection levels, mode switch, checksums.

    The version/checksum words (offsets 16-23) are little-endian, as Wireshark reads them.
    """
    for rec in records:
        if len(rec) < 24 or struct.unpack_from(">H", rec)[0] != 0x0004:
            continue
        _index, key, param, real, switch, _crst = STATUS_WORDS.unpack_from(rec)
        hw1, hw2, awp1, awp2 = struct.unpack_from("<HHHH", rec, 16)
        return {
            "protection_level_key": key, "protection_level_assigned": param, "protection_level": real,
            "mode_switch": name_of(MODE_SWITCH, switch, 1),
            "hw_config_checksum": f"0x{hw1:04x}/0x{hw2:04x}", "program_checksum": f"0x{awp1:04x}/0x{awp2:04x}",
        }
    return {}


_LIST_DECODERS = {0x11: _module_identification, 0x1C: _component_identification, 0x24: _cpu_mode,
                  0x32: _communication_status}
