"""Code -> name tables for EtherNet/IP encapsulation and CIP (CIP Vol. 1 and Vol. 2).

Everything that maps a number to a name lives here, with a named fallback
(``unknown-0x..``) for codes the tables do not hold.  The closed set of anomaly
names of the package is here too.
"""
from __future__ import annotations

from typing import Final

PROTOCOL: Final = "enip"

# Vol. 2 section 2-3.2: encapsulation commands.
ENIP_COMMANDS: Final[dict[int, str]] = {
    0x0000: "NOP", 0x0001: "List Targets (legacy)", 0x0004: "List Services", 0x0063: "List Identity",
    0x0064: "List Interfaces", 0x0065: "Register Session", 0x0066: "Unregister Session",
    0x006F: "Send RR Data", 0x0070: "Send Unit Data", 0x0072: "Indicate Status", 0x0073: "Cancel",
}
NOP: Final = 0x0000
LIST_SERVICES: Final = 0x0004
LIST_IDENTITY: Final = 0x0063
LIST_INTERFACES: Final = 0x0064
REGISTER_SESSION: Final = 0x0065
UNREGISTER_SESSION: Final = 0x0066
SEND_RR_DATA: Final = 0x006F
SEND_UNIT_DATA: Final = 0x0070

# Vol. 2 section 2-3.3: encapsulation status codes.
ENIP_STATUSES: Final[dict[int, str]] = {
    0x0000: "Success", 0x0001: "Invalid/Unsupported Command", 0x0002: "Insufficient Memory Resources",
    0x0003: "Malformed or Incorrect Data", 0x0064: "Invalid Session Handle", 0x0065: "Invalid Length",
    0x0069: "Unsupported Protocol Version", 0x006A: "CIP Service Not Allowed",
}

# Vol. 2 section 2-6: Common Packet Format item type ids.
CPF_ITEMS: Final[dict[int, str]] = {
    0x0000: "Null Address", 0x000C: "CIP Identity", 0x0086: "CIP Security Information",
    0x0087: "EtherNet/IP Capability", 0x0088: "EtherNet/IP Usage", 0x00A1: "Connected Address",
    0x00B1: "Connected Data", 0x00B2: "Unconnected Data", 0x0100: "List Services Response",
    0x8000: "Sockaddr Info O->T", 0x8001: "Sockaddr Info T->O", 0x8002: "Sequenced Address",
    0x8003: "Unconnected Message over UDP",
}
CPF_NULL: Final = 0x0000
CPF_IDENTITY: Final = 0x000C
CPF_CONNECTED_ADDRESS: Final = 0x00A1
CPF_CONNECTED_DATA: Final = 0x00B1
CPF_UNCONNECTED_DATA: Final = 0x00B2
CPF_LIST_SERVICES: Final = 0x0100
CPF_SOCKADDR_OT: Final = 0x8000
CPF_SOCKADDR_TO: Final = 0x8001
CPF_SEQUENCED_ADDRESS: Final = 0x8002

# Vol. 1 Appendix A-4: common services (0x01-0x4A are not class specific).
CIP_SERVICES: Final[dict[int, str]] = {
    0x01: "Get Attributes All", 0x02: "Set Attributes All", 0x03: "Get Attribute List",
    0x04: "Set Attribute List", 0x05: "Reset", 0x06: "Start", 0x07: "Stop", 0x08: "Create", 0x09: "Delete",
    0x0A: "Multiple Service Packet", 0x0D: "Apply Attributes", 0x0E: "Get Attributes Single",
    0x10: "Set Attributes Single", 0x11: "Find Next Object Instance", 0x14: "Error Response",
    0x15: "Restore", 0x16: "Save", 0x17: "No Operation", 0x18: "Get Member", 0x19: "Set Member",
    0x1A: "Insert Member", 0x1B: "Remove Member", 0x1C: "Group Sync", 0x1D: "Get Connection Point Member List",
}
GET_ATTRIBUTES_ALL: Final = 0x01
SET_ATTRIBUTES_ALL: Final = 0x02
GET_ATTRIBUTE_LIST: Final = 0x03
SET_ATTRIBUTE_LIST: Final = 0x04
RESET: Final = 0x05
START: Final = 0x06
STOP: Final = 0x07
MULTIPLE_SERVICE_PACKET: Final = 0x0A
GET_ATTRIBUTE_SINGLE: Final = 0x0E
SET_ATTRIBUTE_SINGLE: Final = 0x10
SET_MEMBER: Final = 0x19

# Vol. 1 section 3-5.5: Connection Manager (class 0x06) specific services.
CM_SERVICES: Final[dict[int, str]] = {
    0x4E: "Forward Close", 0x52: "Unconnected Send", 0x54: "Forward Open", 0x56: "Get Connection Data",
    0x57: "Search Connection Data", 0x59: "Get Connection Owner", 0x5A: "Get Connection Owner",
    0x5B: "Large Forward Open",
}
FORWARD_CLOSE: Final = 0x4E
UNCONNECTED_SEND: Final = 0x52
FORWARD_OPEN: Final = 0x54
LARGE_FORWARD_OPEN: Final = 0x5B

# Rockwell Logix data-table services (1756-PM020): used on symbolic paths and Logix classes.
LOGIX_SERVICES: Final[dict[int, str]] = {
    0x4C: "Read Tag", 0x4D: "Write Tag", 0x4E: "Read Modify Write Tag",
    0x4F: "Read Other Tag", 0x52: "Read Tag Fragmented", 0x53: "Write Tag Fragmented",
    0x55: "Get Instance Attribute List", 0x5F: "Get Attribute List (Logix)",
}
READ_TAG: Final = 0x4C
WRITE_TAG: Final = 0x4D
READ_MODIFY_WRITE: Final = 0x4E
READ_FRAG: Final = 0x52
WRITE_FRAG: Final = 0x53
# Classes whose 0x4C.. services are the tag services (symbol and template instances); other Rockwell
# classes (0x8E controller, 0xAC, 0xB2) reuse those codes for undocumented services.
LOGIX_CLASSES: Final = frozenset({0x6B, 0x6C})
LOGIX_PROGRAM_CLASSES: Final = frozenset({0x68, 0x6A, 0x6C})   # program, routine, template: the logic itself
NVS_CLASS: Final = 0xA1                                          # Rockwell non-volatile storage: firmware updates

# Class-specific services of other objects; the class decides what 0x4B..0x7F mean.
CLASS_SERVICES: Final[dict[int, dict[int, str]]] = {
    0x06: CM_SERVICES,
    0x37: {0x4B: "Initiate Upload", 0x4C: "Initiate Download", 0x4D: "Initiate Partial Read",
           0x4E: "Initiate Partial Write", 0x4F: "Upload Transfer", 0x50: "Download Transfer", 0x51: "Clear File"},
    0x67: {0x4B: "Execute PCCC", 0x4C: "Execute DH+", 0x4D: "Execute Local PCCC"},
    0x6C: {0x4C: "Read Template"},
}

# Vol. 1 Appendix B: general status codes.
CIP_STATUSES: Final[dict[int, str]] = {
    0x00: "Success", 0x01: "Connection Failure", 0x02: "Resource Unavailable", 0x03: "Invalid Parameter Value",
    0x04: "Path Segment Error", 0x05: "Path Destination Unknown", 0x06: "Partial Transfer",
    0x07: "Connection Lost", 0x08: "Service Not Supported", 0x09: "Invalid Attribute Value",
    0x0A: "Attribute List Error", 0x0B: "Already In Requested Mode/State", 0x0C: "Object State Conflict",
    0x0D: "Object Already Exists", 0x0E: "Attribute Not Settable", 0x0F: "Privilege Violation",
    0x10: "Device State Conflict", 0x11: "Reply Data Too Large", 0x12: "Fragmentation Of A Primitive Value",
    0x13: "Not Enough Data", 0x14: "Attribute Not Supported", 0x15: "Too Much Data",
    0x16: "Object Does Not Exist", 0x17: "Service Fragmentation Sequence Not In Progress",
    0x18: "No Stored Attribute Data", 0x19: "Store Operation Failure",
    0x1A: "Routing Failure, Request Packet Too Large", 0x1B: "Routing Failure, Response Packet Too Large",
    0x1C: "Missing Attribute List Entry Data", 0x1D: "Invalid Attribute Value List",
    0x1E: "Embedded Service Error", 0x1F: "Vendor Specific Error", 0x20: "Invalid Parameter",
    0x21: "Write-Once Value Or Medium Already Written", 0x22: "Invalid Reply Received",
    0x23: "Buffer Overflow", 0x24: "Invalid Message Format", 0x25: "Key Failure In Path",
    0x26: "Path Size Invalid", 0x27: "Unexpected Attribute In List", 0x28: "Invalid Member ID",
    0x29: "Member Not Settable", 0x2A: "Group 2 Only Server General Failure", 0x2B: "Unknown Modbus Error",
    0x2C: "Attribute Not Gettable", 0xFF: "Still Processing",
}

# Vol. 1 Table 3-5.29: Connection Manager extended status codes (the general status 0x01 qualifies), worded as
# ICSNPP words them (its cip_extended_status)
CM_EXTENDED_STATUSES: Final[dict[int, str]] = {
    0x0100: "Connection in use or duplicate Forward Open",
    0x0103: "Transport class and trigger combination not supported", 0x0106: "Ownership conflict",
    0x0107: "Target connection not found", 0x0108: "Invalid network connection parameter",
    0x0109: "Invalid connection size", 0x0110: "Target for connection not configured", 0x0111: "RPI not supported",
    0x0112: "RPI value(s) not acceptable", 0x0113: "Out of connections", 0x0114: "Vendor ID or product code mismatch",
    0x0115: "Device type mismatch", 0x0116: "Revision mismatch",
    0x0117: "Invalid produced or consumed application path",
    0x0118: "Invalid or inconsistent configuration application path", 0x0119: "Non-listen only connection not opened",
    0x011A: "Target object out of connections", 0x011B: "RPI is smaller than the production inhibit time",
    0x011C: "Transport class not supported", 0x011D: "Production trigger not supported",
    0x011E: "Direction not supported", 0x011F: "Invalid O->T Fixed/Variable", 0x0120: "Invalid T->O Fixed/Variable",
    0x0121: "Invalid O->T Priority", 0x0122: "Invalid T->O Priority", 0x0123: "Invalid O->T connection type",
    0x0124: "Invalid T->O connection type", 0x0125: "Invalid O->T redundant owner",
    0x0126: "Invalid configuration size", 0x0127: "Invalid O->T size", 0x0128: "Invalid T->O size",
    0x0129: "Invalid configuration application path", 0x012A: "Invalid consuming application path",
    0x012B: "Invalid producing application path", 0x012C: "Configuration symbol does not exist",
    0x012D: "Consuming symbol does not exist", 0x012E: "Producing symbol does not exist",
    0x012F: "Inconsistent application path combination", 0x0130: "Inconsistent consume data format",
    0x0131: "Inconsistent produce data format", 0x0132: "NULL ForwardOpen not supported",
    0x0203: "Connection timed out", 0x0204: "Unconnected request timed out",
    0x0205: "Parameter error in unconnected request", 0x0206: "Message too large for UnconnectedSend",
    0x0207: "Unconnected acknowledged without reply", 0x0301: "No buffer memory available",
    0x0302: "Network bandwidth not available for data", 0x0303: "No consumed connection ID filter available",
    0x0304: "Not configured to send scheduled priority data", 0x0305: "Schedule signature mismatch",
    0x0306: "Schedule signature validation not possible", 0x0311: "Port not available",
    0x0312: "Link address not valid", 0x0315: "Invalid segment in connection path",
    0x0316: "ForwardClose connection path mismatch", 0x0317: "Scheduling not specified",
    0x0318: "Link address to self invalid", 0x0319: "Secondary resources unavailable",
    0x031A: "Rack connection already established", 0x031B: "Module connection already established",
    0x031C: "Miscellaneous", 0x031D: "Redundant connection mismatch",
    0x031E: "No more user configurable link consumer resources available in the producing module",
    0x031F: "No more user configurable link consumer resources configured in the producing module",
    0x0800: "Network link offline", 0x0801: "Incompatible Multicast RPI", 0x0802: "Invalid Safety Connection Size",
    0x0803: "Invalid Safety Connection Format", 0x0804: "Invalid Time Correction Connection Parameters",
    0x0805: "Invalid Ping Interval EPI Multiplier", 0x0806: "Time Coordination Msg Min Multiplier",
    0x0807: "Network Time Expectation Multiplier", 0x0808: "Timeout Multiplier",
    0x0809: "Invalid Max Consumer Number", 0x080A: "Invalid CPCRC", 0x080B: "Time Correction Connection ID Invalid",
    0x080C: "SCID Mismatch", 0x080D: "TUNID not set", 0x080E: "TUNID Mismatch",
    0x080F: "Configuration operation not allowed", 0x0810: "No target application data available",
    0x0811: "No originator application data available",
    0x0812: "Node address has changed since the network was scheduled",
    0x0813: "Not configured for off-subnet multicast", 0x0814: "Invalid produce/consume data format",
}

# Vol. 1 Appendix C-6: object class codes.
CIP_CLASSES: Final[dict[int, str]] = {
    0x01: "Identity", 0x02: "Message Router", 0x03: "DeviceNet", 0x04: "Assembly", 0x05: "Connection",
    0x06: "Connection Manager", 0x07: "Register", 0x08: "Discrete Input Point", 0x09: "Discrete Output Point",
    0x0A: "Analog Input Point", 0x0B: "Analog Output Point", 0x0E: "Presence Sensing", 0x0F: "Parameter",
    0x10: "Parameter Group", 0x12: "Group", 0x1D: "Discrete Input Group", 0x1E: "Discrete Output Group",
    0x1F: "Discrete Group", 0x20: "Analog Input Group", 0x21: "Analog Output Group", 0x22: "Analog Group",
    0x23: "Position Sensor", 0x24: "Position Controller Supervisor", 0x25: "Position Controller",
    0x26: "Block Sequencer", 0x27: "Command Block", 0x28: "Motor Data", 0x29: "Control Supervisor",
    0x2A: "AC/DC Drive", 0x2B: "Acknowledge Handler", 0x2C: "Overload", 0x2D: "Softstart", 0x2E: "Selection",
    0x30: "S-Device Supervisor", 0x31: "S-Analog Sensor", 0x32: "S-Analog Actuator",
    0x33: "S-Single Stage Controller", 0x34: "S-Gas Calibration", 0x35: "Trip Point", 0x37: "File",
    0x38: "S-Partial Pressure", 0x39: "Safety Supervisor", 0x3A: "Safety Validator",
    0x3B: "Safety Discrete Output Point", 0x3C: "Safety Discrete Output Group",
    0x3D: "Safety Discrete Input Point", 0x3E: "Safety Discrete Input Group",
    0x3F: "Safety Dual Channel Output", 0x40: "S-Sensor Calibration", 0x41: "Event Log",
    0x42: "Motion Device Axis", 0x43: "Time Sync", 0x44: "Modbus", 0x45: "Originator Connection List",
    0x46: "Modbus Serial Link", 0x47: "Device Level Ring (DLR)", 0x48: "QoS",
    0x49: "Safety Analog Input Point", 0x4A: "Safety Analog Input Group", 0x4B: "Safety Dual Channel Analog Input",
    0x4C: "SERCOS III Link",
    0x4D: "Target Connection List", 0x4E: "Base Energy", 0x4F: "Electrical Energy",
    0x50: "Non-Electrical Energy", 0x51: "Base Switch", 0x52: "SNMP", 0x53: "Power Management",
    0x58: "Safety Feedback", 0x59: "Safety Dual Channel Feedback", 0x5A: "Safety Stop Functions",
    0x5B: "Safety Limit Functions", 0x5C: "Power Curtailment",
    0x54: "RSTP Bridge", 0x55: "RSTP Port", 0x56: "PRP/HSR Protocol", 0x57: "PRP/HSR Nodes Table",
    0x5D: "CIP Security", 0x5E: "EtherNet/IP Security", 0x5F: "Certificate Management",
    0x64: "Logix Controller Program (Rockwell)", 0x67: "PCCC Class", 0x68: "Logix Program (Rockwell)",
    0x6A: "Logix Routine (Rockwell)", 0x6B: "Symbol (Rockwell)", 0x6C: "Template (Rockwell)",
    0x6E: "Logix Task (Rockwell)", 0x70: "Data Table (Rockwell)", 0x72: "Logix Controller (Rockwell)",
    0x73: "Logix Controller Memory (Rockwell)", 0x8B: "Logix Clock (Rockwell)", 0x8E: "Logix Control (Rockwell)",
    0xAC: "Logix Controller Attributes (Rockwell)", 0xF0: "ControlNet", 0xF1: "ControlNet Keeper",
    0xF2: "ControlNet Scheduling", 0xF3: "Connection Configuration", 0xF4: "Port", 0xF5: "TCP/IP Interface",
    0xF6: "Ethernet Link", 0xF7: "CompoNet", 0xF8: "CompoNet Repeater",
}
IDENTITY_CLASS: Final = 0x01
CONNECTION_MANAGER_CLASS: Final = 0x06
FILE_CLASS: Final = 0x37
PCCC_CLASS: Final = 0x67
EXECUTE_PCCC: Final = 0x4B

# Vol. 1 Appendix C-6.1 / Logix: elementary data type codes -> (name, struct format, size).
DATA_TYPES: Final[dict[int, tuple[str, str, int]]] = {
    0xC1: ("BOOL", "B", 1), 0xC2: ("SINT", "b", 1), 0xC3: ("INT", "h", 2), 0xC4: ("DINT", "i", 4),
    0xC5: ("LINT", "q", 8), 0xC6: ("USINT", "B", 1), 0xC7: ("UINT", "H", 2), 0xC8: ("UDINT", "I", 4),
    0xC9: ("ULINT", "Q", 8), 0xCA: ("REAL", "f", 4), 0xCB: ("LREAL", "d", 8), 0xD1: ("BYTE", "B", 1),
    0xD2: ("WORD", "H", 2), 0xD3: ("DWORD", "I", 4), 0xD4: ("LWORD", "Q", 8),
}
STRUCT_TYPE: Final = 0xA0   # followed by a 2-byte structure handle

# Vol. 2 section 3-7: identity object device states (attribute 8).
DEVICE_STATES: Final[dict[int, str]] = {
    0: "Nonexistent", 1: "Device Self Testing", 2: "Standby", 3: "Operational",
    4: "Major Recoverable Fault", 5: "Major Unrecoverable Fault", 255: "Default for Get Attributes All",
}

# The package's closed set of anomaly names (stable, public).
ANOMALIES: Final[dict[str, str]] = {
    "enip.bad_header": "encapsulation header not plausible (unknown command, absurd length, non-zero options)",
    "enip.truncated": "a datagram ends inside an encapsulation message",
    "enip.bad_cpf": "Common Packet Format malformed (item count, item lengths)",
    "enip.resync": "framing lost (or a stream joined mid-message); bytes skipped up to the next header",
    "enip.gap": "bytes missing from the stream; decoding resumed at the next plausible header",
    "enip.bad_identity": "ListIdentity / ListServices / ListInterfaces item malformed",
    "cip.truncated": "CIP message shorter than its header, path or service data needs",
    "cip.bad_path": "EPATH malformed (unknown segment, odd padding, too long)",
    "cip.path_too_long": "EPATH has more segments than the sensor's cap",
    "cip.bad_service_data": "service data of a known service shorter than, or inconsistent with, what it needs",
    "cip.msp_too_many": "Multiple Service Packet has more services than the sensor's cap",
    "cip.bad_msp": "Multiple Service Packet offsets inconsistent",
    "cip.too_many_pending": "too many unanswered requests on a flow; the oldest was emitted unanswered",
    "cip.unmatched_response": "a CIP response arrived with no outstanding request",
    "cip.bad_io": "implicit I/O datagram malformed",
}


def name_or_unknown(table: dict[int, str], code: int, width: int = 2) -> str:
    name = table.get(code)
    return name if name is not None else f"unknown-0x{code:0{width}x}"


# Formatted once: the codes most rows carry (service, status, class, instance) are bytes.
HEX2: Final = tuple(f"0x{i:02x}" for i in range(256))
CIP_STATUS_NAMES: Final = tuple(name_or_unknown(CIP_STATUSES, i) for i in range(256))


def hex2(value: int) -> str:
    """``0x`` and at least two hex digits."""
    return HEX2[value] if value < 256 else f"0x{value:02x}"


# 32-bit ids (connection ids, session handles, options) as rows show them, each formatted once: a flow
# repeats a few of them in every message, and formatting with a width is the dearest part of its row.
_HEX8: Final[dict[int, str]] = {}
MAX_HEX8: Final = 4096     # a memo, not a table: past this many ids it starts afresh


def hex8(value: int) -> str:
    """``0x`` and eight hex digits (more for a value past 32 bits, as ``f"0x{value:08x}"``)."""
    text = _HEX8.get(value)
    if text is None:
        if len(_HEX8) >= MAX_HEX8:
            _HEX8.clear()
        text = _HEX8[value] = f"0x{value:08x}"
    return text


def service_name(code: int, class_id: int | None, symbolic: bool) -> str:
    """Name of a request service code (without the response bit); class-specific codes need the class."""
    if code < 0x4B:
        return name_or_unknown(CIP_SERVICES, code)
    by_class = CLASS_SERVICES.get(class_id) if class_id is not None else None
    if by_class is not None:
        return name_or_unknown(by_class, code)
    if symbolic or class_id is None or class_id in LOGIX_CLASSES:
        return name_or_unknown(LOGIX_SERVICES, code)
    return f"unknown-0x{code:02x}"


def extended_status_name(general: int, extended: int | None) -> str | None:
    if extended is None:
        return None
    if general == 0x01:
        return name_or_unknown(CM_EXTENDED_STATUSES, extended, 4)
    return f"0x{extended:04x}"
