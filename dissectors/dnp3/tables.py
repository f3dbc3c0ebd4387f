"""DNP3 code tables (IEEE 1815-2012): link functions, application functions, IIN bits,
qualifiers, control codes and status codes, and the closed set of anomaly names.

Names of application functions follow Zeek's dnp3 analyzer (``fc_request`` /
``fc_reply`` values in dnp3.log); descriptive names of objects and control codes
follow ICSNPP ``dnp3_objects`` / ``dnp3_control`` and Wireshark's packet-dnp.c.
"""
from __future__ import annotations


def name_of(table: dict[int, str], code: int, width: int = 2) -> str:
    """``table[code]`` or the named fallback ``unknown-0x..`` (never an exception, never silence)."""
    name = table.get(code)
    return name if name is not None else f"unknown-0x{code:0{width}x}"


# --- Link layer (9.2.4.1.3) -------------------------------------------------------------
LINK_PRIMARY_FUNCTIONS = {
    0: "RESET_LINK_STATES",
    1: "RESET_USER_PROCESS",      # obsolete in 1815-2012
    2: "TEST_LINK_STATES",
    3: "CONFIRMED_USER_DATA",
    4: "UNCONFIRMED_USER_DATA",
    9: "REQUEST_LINK_STATUS",
}
LINK_SECONDARY_FUNCTIONS = {
    0: "ACK",
    1: "NACK",
    11: "LINK_STATUS",
    14: "NOT_FUNCTIONING",        # obsolete
    15: "NOT_SUPPORTED",
}
LINK_USER_DATA = (3, 4)          # primary functions that carry a transport segment
BROADCAST_ADDRESSES = frozenset((0xFFFD, 0xFFFE, 0xFFFF))

# --- Application layer function codes (4.2.2.5) --------------------------------------------
FUNCTIONS = {
    0x00: "CONFIRM",
    0x01: "READ",
    0x02: "WRITE",
    0x03: "SELECT",
    0x04: "OPERATE",
    0x05: "DIRECT_OPERATE",
    0x06: "DIRECT_OPERATE_NR",
    0x07: "IMMED_FREEZE",
    0x08: "IMMED_FREEZE_NR",
    0x09: "FREEZE_CLEAR",
    0x0A: "FREEZE_CLEAR_NR",
    0x0B: "FREEZE_AT_TIME",
    0x0C: "FREEZE_AT_TIME_NR",
    0x0D: "COLD_RESTART",
    0x0E: "WARM_RESTART",
    0x0F: "INITIALIZE_DATA",
    0x10: "INITIALIZE_APPL",
    0x11: "START_APPL",
    0x12: "STOP_APPL",
    0x13: "SAVE_CONFIG",
    0x14: "ENABLE_UNSOLICITED",
    0x15: "DISABLE_UNSOLICITED",
    0x16: "ASSIGN_CLASS",
    0x17: "DELAY_MEASURE",
    0x18: "RECORD_CURRENT_TIME",
    0x19: "OPEN_FILE",
    0x1A: "CLOSE_FILE",
    0x1B: "DELETE_FILE",
    0x1C: "GET_FILE_INFO",
    0x1D: "AUTHENTICATE_FILE",
    0x1E: "ABORT_FILE",
    0x1F: "ACTIVATE_CONFIG",
    0x20: "AUTHENTICATE_REQ",
    0x21: "AUTHENTICATE_ERR",     # AUTH_REQ_NO_ACK in 1815-2012
    0x81: "RESPONSE",
    0x82: "UNSOLICITED_RESPONSE",
    0x83: "AUTHENTICATE_RESP",
}
FC_CONFIRM, FC_READ, FC_WRITE = 0x00, 0x01, 0x02
FC_SELECT, FC_OPERATE, FC_DIRECT_OPERATE, FC_DIRECT_OPERATE_NR = 0x03, 0x04, 0x05, 0x06
FC_RESPONSE, FC_UNSOLICITED, FC_AUTH_RESP = 0x81, 0x82, 0x83
FC_OPEN_FILE, FC_DELETE_FILE, FC_GET_FILE_INFO = 0x19, 0x1B, 0x1C
RESPONSE_FUNCTIONS = frozenset((FC_RESPONSE, FC_UNSOLICITED, FC_AUTH_RESP))
# Requests the outstation never answers (no-ack variants, confirms, 7.5.x).
NO_RESPONSE_FUNCTIONS = frozenset((0x00, 0x06, 0x08, 0x0A, 0x0C, 0x21))
# Requests whose object headers carry no object data (Wireshark "header only" functions).
HEADER_ONLY_FUNCTIONS = frozenset((0x01, 0x07, 0x08, 0x09, 0x0A, 0x14, 0x15, 0x16))
CONTROL_FUNCTIONS = {0x03: "SELECT", 0x04: "OPERATE", 0x05: "DIRECT_OPERATE", 0x06: "DIRECT_OPERATE"}
FILE_FUNCTIONS = frozenset(range(0x19, 0x1F))

# --- Internal indications (4.2.2.7.2): bit number in the 16-bit IIN1<<8 | IIN2 ------------
IIN_BITS = (
    (15, "DEVICE_RESTART"),
    (14, "DEVICE_TROUBLE"),
    (13, "LOCAL_CONTROL"),
    (12, "NEED_TIME"),
    (11, "CLASS_3_EVENTS"),
    (10, "CLASS_2_EVENTS"),
    (9, "CLASS_1_EVENTS"),
    (8, "BROADCAST"),
    (7, "RESERVED_2"),
    (6, "RESERVED_1"),
    (5, "CONFIG_CORRUPT"),
    (4, "ALREADY_EXECUTING"),
    (3, "EVENT_BUFFER_OVERFLOW"),
    (2, "PARAMETER_ERROR"),
    (1, "OBJECT_UNKNOWN"),
    (0, "NO_FUNC_CODE_SUPPORT"),
)
IIN_ERROR_MASK = 0x0007          # IIN2.0-2.2: the request was refused
# g80 point index -> IIN bit (IIN1.0 is index 0 ... IIN2.7 is index 15)
IIN_INDEX_NAMES = {(bit - 8 if bit >= 8 else bit + 8): name for bit, name in IIN_BITS}


def _octet_names(low_bit: int) -> tuple[tuple[str, ...], ...]:
    """For each value of one IIN octet, the names of its set bits (``low_bit``: 8 for IIN1, 0 for IIN2)."""
    return tuple(tuple(name for bit, name in IIN_BITS if low_bit <= bit < low_bit + 8 and value << low_bit & 1 << bit)
                 for value in range(256))


_IIN1_NAMES, _IIN2_NAMES = _octet_names(8), _octet_names(0)


def iin_names(iin: int) -> list[str]:
    """Names of the IIN bits set, most significant first (two table look-ups rather than sixteen tests)."""
    return [*_IIN1_NAMES[iin >> 8 & 0xFF], *_IIN2_NAMES[iin & 0xFF]]


# --- Qualifier codes (4.2.2.7.3) ------------------------------------------------------------
PREFIX_NONE, PREFIX_INDEX1, PREFIX_INDEX2, PREFIX_INDEX4 = 0, 1, 2, 3
PREFIX_SIZE1, PREFIX_SIZE2, PREFIX_SIZE4 = 4, 5, 6
PREFIX_WIDTH = {0: 0, 1: 1, 2: 2, 3: 4, 4: 1, 5: 2, 6: 4}
RANGE_START_STOP = {0: 1, 1: 2, 2: 4, 3: 1, 4: 2, 5: 4}   # range code -> width of start and stop
RANGE_ALL = 6
RANGE_COUNT = {7: 1, 8: 2, 9: 4, 0xB: 1}                # range code -> width of the count
RANGE_NAMES = {
    0: "8-bit start/stop", 1: "16-bit start/stop", 2: "32-bit start/stop",
    3: "8-bit virtual start/stop", 4: "16-bit virtual start/stop", 5: "32-bit virtual start/stop",
    6: "all objects", 7: "8-bit count", 8: "16-bit count", 9: "32-bit count", 0xB: "variable-format count",
}

# --- Control relay output block (A.8.1) and command status (Table 11-2 / A.8.1.2.5) --------
TRIP_CLOSE_CODES = {0: "Nul", 1: "Close", 2: "Trip", 3: "Reserved"}
OPERATION_TYPES = {0: "Nul", 1: "Pulse On", 2: "Pulse Off", 3: "Latch On", 4: "Latch Off"}
COMMAND_STATUS = {
    0: "Success", 1: "Timeout", 2: "No Select", 3: "Format Error", 4: "Not Supported",
    5: "Already Active", 6: "Hardware Error", 7: "Local", 8: "Too Many Operations",
    9: "Not Authorized", 10: "Automation Inhibit", 11: "Processing Limited",
    12: "Out Of Range", 13: "Downstream Local", 14: "Already Complete", 15: "Blocked",
    16: "Canceled", 17: "Blocked Other Master", 18: "Downstream Fail",
    126: "Reserved", 127: "Undefined",
}

# --- Device attribute data types (A.1.1.2) and the g0 variations identity draws on ----------
ATTRIBUTE_TYPES = {1: "VSTR", 2: "UINT", 3: "INT", 4: "FLT", 5: "OSTR", 6: "BSTR", 254: "UNCD", 255: "LIST"}
ATTRIBUTE_IDENTITY_KEYS = {
    242: "revision",               # device manufacturer's software version
    243: "hardware_revision",
    244: "owner_name",
    245: "location",
    246: "id_code",
    247: "station_name",           # user-assigned device name
    248: "serial_number",
    249: "dnp3_conformance",
    250: "model",                  # product name and model
    252: "vendor",                 # manufacturer's name
}

# --- File control (A.24 g70) -----------------------------------------------------------------
FILE_MODES = {0: "NULL", 1: "READ", 2: "WRITE", 3: "APPEND"}
FILE_STATUS = {
    0: "SUCCESS", 1: "PERMISSION_DENIED", 2: "INVALID_MODE", 3: "FILE_NOT_FOUND", 4: "FILE_LOCKED",
    5: "TOO_MANY_OPEN", 6: "INVALID_HANDLE", 7: "WRITE_BLOCK_SIZE", 8: "COMM_LOST", 9: "CANNOT_ABORT",
    16: "NOT_OPENED", 17: "HANDLE_EXPIRED", 18: "BUFFER_OVERRUN", 19: "FATAL", 20: "BLOCK_SEQ", 255: "UNDEFINED",
}

# --- Secure authentication (A.45 g120) -------------------------------------------------------
AUTH_ERRORS = {
    1: "AUTHENTICATION_FAILED", 2: "UNEXPECTED_RESPONSE", 3: "NO_RESPONSE", 4: "AGGRESSIVE_MODE_NOT_SUPPORTED",
    5: "MAC_ALGORITHM_NOT_SUPPORTED", 6: "KEY_WRAP_ALGORITHM_NOT_SUPPORTED", 7: "AUTHORIZATION_FAILED",
    8: "UPDATE_KEY_METHOD_NOT_PERMITTED", 9: "INVALID_SIGNATURE", 10: "INVALID_CERTIFICATION_DATA",
    11: "UNKNOWN_USER", 12: "MAX_SESSION_KEY_STATUS_REQUESTS_EXCEEDED",
}

# --- Anomalies: the closed, public set for this protocol ------------------------------------
ANOMALIES = {
    "dnp3.bad_crc": "a link header or data block CRC does not match (the frame or block is dropped)",
    "dnp3.bad_length": "link length below 5 (impossible frame)",
    "dnp3.junk_bytes": "bytes between link frames that are not a frame start were skipped",
    "dnp3.unknown_link_function": "link control function code not defined for its direction",
    "dnp3.transport_out_of_sequence": "transport segment sequence did not follow the previous one",
    "dnp3.transport_no_first": "transport segment without FIR while no fragment was in progress",
    "dnp3.transport_incomplete": "a fragment was abandoned before its FIN segment (segments missing)",
    "dnp3.fragment_too_large": "reassembled application fragment exceeds the size cap",
    "dnp3.truncated_fragment": "application fragment shorter than its header",
    "dnp3.unknown_function": "application function code not defined by IEEE 1815",
    "dnp3.unknown_object": "object group/variation unknown, its size cannot be known; rest of fragment skipped",
    "dnp3.bad_qualifier": "reserved prefix or range code in an object header",
    "dnp3.bad_range": "object range with stop below start or a count impossible for the data",
    "dnp3.truncated_object": "object header or object data runs past the end of the fragment",
    "dnp3.too_many_objects": "objects beyond the per-fragment decode cap were skipped",
    "dnp3.too_many_pending": "too many unanswered requests; the oldest was emitted unanswered",
    "dnp3.too_many_streams": "too many transport reassembly streams in one flow; the oldest was dropped",
    "dnp3.gap": "bytes of the stream were lost (capture gap); framing resynchronised",
    "dnp3.too_many_stations": "too many distinct link addresses in one flow; the rest are not reported",
}
