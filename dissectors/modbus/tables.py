"""Modbus names: function codes, exception codes, diagnostics sub-functions, MEI types, device-id objects.

Names follow Zeek's Modbus analyzer and ICSNPP (``READ_HOLDING_REGISTERS``,
``ILLEGAL_DATA_ADDRESS``); unknown codes are written ``unknown-<n>`` as Zeek
does.  Source: MODBUS Application Protocol Specification V1.1b3.
"""
from __future__ import annotations

FUNCTION_NAMES = {
    1: "READ_COILS",
    2: "READ_DISCRETE_INPUTS",
    3: "READ_HOLDING_REGISTERS",
    4: "READ_INPUT_REGISTERS",
    5: "WRITE_SINGLE_COIL",
    6: "WRITE_SINGLE_REGISTER",
    7: "READ_EXCEPTION_STATUS",
    8: "DIAGNOSTICS",
    11: "GET_COMM_EVENT_COUNTER",
    12: "GET_COMM_EVENT_LOG",
    15: "WRITE_MULTIPLE_COILS",
    16: "WRITE_MULTIPLE_REGISTERS",
    17: "REPORT_SLAVE_ID",
    20: "READ_FILE_RECORD",
    21: "WRITE_FILE_RECORD",
    22: "MASK_WRITE_REGISTER",
    23: "READ_WRITE_MULTIPLE_REGISTERS",
    24: "READ_FIFO_QUEUE",
    43: "ENCAP_INTERFACE_TRANSPORT",
}
# Machine-, vendor- and network-specific codes Zeek's function_codes table names (base/protocols/modbus/consts):
# named as Zeek names them, though the specification leaves them outside the public set.
VENDOR_FUNCTION_NAMES = {
    0x09: "PROGRAM_484", 0x0A: "POLL_484", 0x0D: "PROGRAM_584_984", 0x0E: "POLL_584_984",
    0x12: "PROGRAM_884_U84", 0x13: "RESET_COMM_LINK_884_U84", 0x28: "PROGRAM_CONCEPT",
    0x29: "MULTIPLE_FUNCTION_CODES", 0x5A: "PROGRAM_UNITY", 0x5B: "OBJECT_MESSAGING",
    0x7D: "FIRMWARE_REPLACEMENT", 0x7E: "PROGRAM_584_984_2", 0x7F: "REPORT_LOCAL_ADDRESS",
}

# Spec section 5: codes reserved for user-defined functions; the rest not listed above are reserved.
USER_DEFINED = set(range(65, 73)) | set(range(100, 111))


def function_name(code: int) -> str:
    """Zeek's name for a function code (``unknown-<n>`` for the codes it does not name; ``func_kind`` says
    whether such a code is user-defined or reserved)."""
    name = FUNCTION_NAMES.get(code) or VENDOR_FUNCTION_NAMES.get(code)
    return name if name is not None else f"unknown-{code}"


def function_kind(code: int) -> str:
    """'public', 'user_defined' or 'reserved' (spec 5.1 code categories)."""
    if code in FUNCTION_NAMES:
        return "public"
    return "user_defined" if code in USER_DEFINED else "reserved"


EXCEPTION_NAMES = {
    1: "ILLEGAL_FUNCTION",
    2: "ILLEGAL_DATA_ADDRESS",
    3: "ILLEGAL_DATA_VALUE",
    4: "SLAVE_DEVICE_FAILURE",
    5: "ACKNOWLEDGE",
    6: "SLAVE_DEVICE_BUSY",
    8: "MEMORY_PARITY_ERROR",
    10: "GATEWAY_PATH_UNAVAILABLE",
    11: "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
}


def exception_name(code: int) -> str:
    return EXCEPTION_NAMES.get(code, f"unknown-{code}")


# FC 8 sub-functions (spec 6.8.1), as ICSNPP names them (diagnostic_subfunction_code)
DIAGNOSTIC_NAMES = {
    0x00: "Return Query Data",
    0x01: "Restart Communications Option",
    0x02: "Return Diagnostic Register",
    0x03: "Change ASCII Input Delimiter",
    0x04: "Force Listen Only Mode",
    0x0A: "Clear Counters and Diagnostic Register",
    0x0B: "Return Bus Message Count",
    0x0C: "Return Bus Communication Error Count",
    0x0D: "Return Bus Exception Error Count",
    0x0E: "Return Server Message Count",
    0x0F: "Return Server No Response Count",
    0x10: "Return Server NAK Count",
    0x11: "Return Server Busy Count",
    0x12: "Return Bus Character Overrun Count",
    0x14: "Clear Overrun Counter and Flag",
}


def diagnostic_name(code: int) -> str:
    return DIAGNOSTIC_NAMES.get(code, f"unknown-{code}")


# FC 43 MEI types (spec 6.21, 6.20), as ICSNPP names them in modbus_detailed's mei_type
MEI_NAMES = {13: "CANopen", 14: "Read Device Identification"}


def mei_name(code: int) -> str:
    return MEI_NAMES.get(code, f"unknown-{code}")


READ_DEVICE_ID_CODES = {1: "BASIC_STREAM", 2: "REGULAR_STREAM", 3: "EXTENDED_STREAM", 4: "SPECIFIC_OBJECT"}

# Conformity levels (spec table 6.21), as ICSNPP names them (device_identification_conformity_level)
CONFORMITY_LEVELS = {
    0x01: "Basic Identification (Stream)",
    0x02: "Regular Identification (Stream)",
    0x03: "Extended Identification (Stream)",
    0x81: "Basic Identification (Stream, Individual)",
    0x82: "Regular Identification (Stream, Individual)",
    0x83: "Extended Identification (Stream, Individual)",
}
# ICSNPP's own table differs from the specification: 0x04 where 0x03 belongs (an ICSNPP bug, kept only in the
# Zeek logs; CONFORMITY_LEVELS above is the correct table)
ICSNPP_CONFORMITY_LEVELS = {**{k: v for k, v in CONFORMITY_LEVELS.items() if k != 0x03},
                            0x04: "Extended Identification (Stream)"}

# Device identification objects (spec table 6.21): id -> (ICSNPP's name, inventory key)
DEVICE_ID_OBJECTS = {
    0x00: ("VendorName", "vendor"),
    0x01: ("ProductCode", "product_code"),
    0x02: ("MajorMinorVersion", "revision"),
    0x03: ("VendorURL", "vendor_url"),
    0x04: ("ProductName", "product_name"),
    0x05: ("ModelName", "model"),
    0x06: ("UserApplicationName", "application_name"),
}
ICSNPP_OBJECT_IDS = {code: name for code, (name, _) in DEVICE_ID_OBJECTS.items()}
# ICSNPP names the object id of a request from this table of read device id codes (0-3), an ICSNPP bug kept
# only in the Zeek logs
ICSNPP_READ_OBJECT_IDS = {0: "Basic Device Identification", 1: "Regular Device Identification",
                          2: "Extended Device Identification", 3: "Specific Device Identification"}


def device_object_name(obj_id: int) -> str:
    entry = DEVICE_ID_OBJECTS.get(obj_id)
    if entry:
        return entry[0]
    return f"reserved-{obj_id}" if obj_id < 0x80 else f"private-{obj_id}"


# Which Modbus table each function reads or writes, for the analyzers.
COILS, DISCRETE_INPUTS, HOLDING_REGISTERS, INPUT_REGISTERS = (
    "coils", "discrete_inputs", "holding_registers", "input_registers")
FUNCTION_TABLE = {
    1: COILS, 2: DISCRETE_INPUTS, 3: HOLDING_REGISTERS, 4: INPUT_REGISTERS,
    5: COILS, 6: HOLDING_REGISTERS, 15: COILS, 16: HOLDING_REGISTERS,
    22: HOLDING_REGISTERS, 23: HOLDING_REGISTERS, 24: HOLDING_REGISTERS,
    20: "file_records", 21: "file_records",
}

# The closed set of anomalies this dissector reports (stable public names).
ANOMALIES = {
    "modbus.invalid_protocol_id": "MBAP protocol identifier is not 0",
    "modbus.invalid_length": "MBAP length field outside 2..254",
    "modbus.length_mismatch": "MBAP length disagrees with what the function's PDU needs",
    "modbus.byte_count_mismatch": "a byte count field disagrees with the data that follows",
    "modbus.truncated_pdu": "the PDU ends before its fixed fields do",
    "modbus.invalid_function_code": "function code 0",
    "modbus.invalid_value": "a field holds a value the specification forbids",
    "modbus.quantity_out_of_range": "quantity outside the range the specification allows",
    "modbus.invalid_exception_code": "exception response with an undefined exception code",
    "modbus.function_mismatch": "exception response whose function code is not the request's (paired by transaction id and unit)",
    "modbus.unmatched_response": "response with no outstanding request of that transaction id and unit",
    "modbus.unanswered_request": "request never answered before the flow ended or timed out",
    "modbus.too_many_pending": "more outstanding requests than the per-flow cap; the oldest was given up",
    "modbus.resync": "bytes skipped to find the next plausible MBAP header",
    "modbus.gap": "bytes lost in capture; framing resynchronised",
}
