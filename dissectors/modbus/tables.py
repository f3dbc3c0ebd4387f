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

# Spec section 5: codes reserved for user-defined functions; the rest not listed above are reserved.
USER_DEFINED = set(range(65, 73)) | set(range(100, 111))


def function_name(code: int) -> str:
    name = FUNCTION_NAMES.get(code)
    if name is not None:
        return name
    if code in USER_DEFINED:
        return f"USER_DEFINED-{code}"
    return f"unknown-{code}"


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


# FC 8 sub-functions (spec 6.8.1)
DIAGNOSTIC_NAMES = {
    0: "RETURN_QUERY_DATA",
    1: "RESTART_COMMUNICATIONS_OPTION",
    2: "RETURN_DIAGNOSTIC_REGISTER",
    3: "CHANGE_ASCII_INPUT_DELIMITER",
    4: "FORCE_LISTEN_ONLY_MODE",
    10: "CLEAR_COUNTERS_AND_DIAGNOSTIC_REGISTER",
    11: "RETURN_BUS_MESSAGE_COUNT",
    12: "RETURN_BUS_COMMUNICATION_ERROR_COUNT",
    13: "RETURN_BUS_EXCEPTION_ERROR_COUNT",
    14: "RETURN_SERVER_MESSAGE_COUNT",
    15: "RETURN_SERVER_NO_RESPONSE_COUNT",
    16: "RETURN_SERVER_NAK_COUNT",
    17: "RETURN_SERVER_BUSY_COUNT",
    18: "RETURN_BUS_CHARACTER_OVERRUN_COUNT",
    20: "CLEAR_OVERRUN_COUNTER_AND_FLAG",
}


def diagnostic_name(code: int) -> str:
    return DIAGNOSTIC_NAMES.get(code, f"unknown-{code}")


# FC 43 MEI types (spec 6.21, 6.20)
MEI_NAMES = {13: "CANOPEN_GENERAL_REFERENCE", 14: "READ_DEVICE_IDENTIFICATION"}

READ_DEVICE_ID_CODES = {1: "BASIC_STREAM", 2: "REGULAR_STREAM", 3: "EXTENDED_STREAM", 4: "SPECIFIC_OBJECT"}

CONFORMITY_LEVELS = {
    0x01: "BASIC_STREAM_ONLY", 0x02: "REGULAR_STREAM_ONLY", 0x03: "EXTENDED_STREAM_ONLY",
    0x81: "BASIC_STREAM_AND_INDIVIDUAL", 0x82: "REGULAR_STREAM_AND_INDIVIDUAL",
    0x83: "EXTENDED_STREAM_AND_INDIVIDUAL",
}

# Device identification objects (spec table 6.21): id -> (record name, inventory key)
DEVICE_ID_OBJECTS = {
    0x00: ("VendorName", "vendor"),
    0x01: ("ProductCode", "product_code"),
    0x02: ("MajorMinorRevision", "revision"),
    0x03: ("VendorUrl", "vendor_url"),
    0x04: ("ProductName", "product_name"),
    0x05: ("ModelName", "model"),
    0x06: ("UserApplicationName", "application_name"),
}


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
