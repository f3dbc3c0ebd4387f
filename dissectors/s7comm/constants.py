"""Code -> name tables for TPKT/COTP, S7comm (0x32) and S7comm-plus (0x72).

Names follow Wireshark's S7comm dissector (packet-s7comm.c, packet-s7comm_szl_ids.c)
so that records read like a tshark decode; the tables are our own.  Lookups go
through :func:`name_of`, which gives ``unknown-0x..`` for codes not listed.
"""
from __future__ import annotations

from typing import Final


def name_of(table: dict[int, str], code: int, width: int = 2) -> str:
    """The table's name for ``code``, or a named fallback such as ``unknown-0x1f``."""
    return table.get(code) or f"unknown-0x{code:0{width}x}"


def hexcode(code: int, width: int = 2) -> str:
    if width == 2 and 0 <= code < 256:
        return HEX_BYTES[code]          # (asked several times per record: the text made once)
    return f"0x{code:0{width}x}"


HEX_BYTES: Final = tuple(f"0x{code:02x}" for code in range(256))


def names_by_byte(table: dict[int, str]) -> tuple[str, ...]:
    """Every byte value's name, as :func:`name_of` gives it: for the look-ups made per item and per record."""
    return tuple(name_of(table, code) for code in range(256))


# --- ISO 8073 COTP (RFC 905 section 13) --------------------------------------------------
COTP_PDU_TYPES: Final = {
    0x10: "ED Expedited Data",
    0x20: "EA Expedited Data Acknowledgement",
    0x50: "RJ Reject",
    0x60: "AK Data Acknowledgement",
    0x70: "ER TPDU Error",
    0x80: "DR Disconnect Request",
    0xC0: "DC Disconnect Confirm",
    0xD0: "CC Connect Confirm",
    0xE0: "CR Connect Request",
    0xF0: "DT Data",
}
COTP_PARAM_CALLING_TSAP: Final = 0xC1
COTP_PARAM_CALLED_TSAP: Final = 0xC2
COTP_PARAM_TPDU_SIZE: Final = 0xC0
COTP_DISCONNECT_REASONS: Final = {
    0x00: "Reason not specified",
    0x01: "Congestion at TSAP",
    0x02: "Session entity not attached to TSAP",
    0x03: "Address unknown",
    0x80: "Normal disconnect initiated by session entity",
    0x81: "Remote transport entity congestion",
    0x82: "Connection negotiation failed",
    0x83: "Duplicate source reference",
    0x84: "Mismatched references",
    0x85: "Protocol error",
    0x87: "Reference overflow",
    0x88: "Connection request refused",
    0x8A: "Header or parameter length invalid",
}
# TSAP high byte = connection type (S7 convention used by STEP 7 / libnodave / snap7)
TSAP_CONNECTION_TYPES: Final = {0x01: "PG", 0x02: "OP", 0x03: "S7 basic", 0x10: "S7 basic"}

# --- S7comm header ----------------------------------------------------------------------
ROSCTR: Final = {0x01: "Job", 0x02: "Ack", 0x03: "Ack_Data", 0x07: "Userdata"}
ROSCTR_JOB: Final = 0x01
ROSCTR_ACK: Final = 0x02
ROSCTR_ACK_DATA: Final = 0x03
ROSCTR_USERDATA: Final = 0x07
ROSCTR_NAMES: Final = names_by_byte(ROSCTR)

ERROR_CLASSES: Final = {
    0x00: "No error",
    0x81: "Application relationship",
    0x82: "Object definition",
    0x83: "No resources available",
    0x84: "Error on service processing",
    0x85: "Error on supplies",
    0x87: "Access error",
}

# A user-data parameter's error is one 16-bit code without a class: named as ICSNPP names it, by success or not
USERDATA_ERROR_CLASSES: Final = ("No error", "Parameter Error")

# Error codes in header/parameter (class<<8|code); the common subset of Wireshark's list.
ERROR_CODES: Final = {
    0x0000: "No error",
    0x0110: "Invalid block number",
    0x0111: "Invalid request length",
    0x0112: "Invalid parameter",
    0x0113: "Invalid block type",
    0x0114: "Block not found",
    0x0115: "Block already exists",
    0x0116: "Block is write-protected",
    0x0117: "The block/operating system update is too large",
    0x0119: "Incorrect password entered",
    0x011C: "Protocol error",
    0x011D: "Too many blocks (module-related restriction)",
    0x0140: "Insufficient memory available",
    0x8001: "The requested service cannot be performed while the block is in the current status",
    0x8003: "S7 protocol error: Error occurred while transferring the block",
    0x8100: "Application, general error: Service unknown to remote module",
    0x8104: "This service is not implemented on the module or a frame error was reported",
    0x8204: "The type specification for the object is inconsistent",
    0x8205: "A copied block already exists and is not linked",
    0x8301: "Insufficient memory space or work memory on the module",
    0x8302: "Too few resources available or the processor resources are not available",
    0x8304: "No further parallel upload possible",
    0x8305: "Function not available",
    0x8401: "S7 protocol error: Invalid service sequence",
    0x8402: "Service cannot execute owing to status of the addressed object",
    0x8404: "S7 protocol: The function cannot be performed",
    0x8500: "S7 protocol error: Wrong frames",
    0x8503: "Alarm from the module: Service canceled prematurely",
    0x8701: "Error addressing the object on the communications partner",
    0x8702: "The requested service is not supported by the module",
    0x8703: "Access to object refused",
    0x8704: "Access error: Object damaged",
    0xD001: "Protocol error: Illegal job number",
    0xD041: "Data error: Illegal status list ID",
    0xD081: "Function not permitted in current mode",
    0xD0A1: "Function not permitted in current protection level",
    0xD0AD: "Operating mode already set",
    0xD209: "(At least) one of the given blocks not found on the module",
    0xD602: "Incorrect password entered",
    0xD604: "Illegal password",
    0xDC01: "Invalid date and time",
}

# --- Job / Ack_Data functions (parameter byte 0) ------------------------------------------
FUNCTIONS: Final = {
    0x00: "CPU services",
    0x01: "Mode transition",
    0x04: "Read Var",
    0x05: "Write Var",
    0x1A: "Request download",
    0x1B: "Download block",
    0x1C: "Download ended",
    0x1D: "Start upload",
    0x1E: "Upload",
    0x1F: "End upload",
    0x28: "PI-Service",
    0x29: "PLC Stop",
    0xF0: "Setup communication",
}
FUNCTION_NAMES: Final = names_by_byte(FUNCTIONS)
F_READ_VAR: Final = 0x04
F_WRITE_VAR: Final = 0x05
F_SETUP: Final = 0xF0
F_REQ_DOWNLOAD: Final = 0x1A
F_DOWNLOAD_BLOCK: Final = 0x1B
F_DOWNLOAD_ENDED: Final = 0x1C
F_START_UPLOAD: Final = 0x1D
F_UPLOAD: Final = 0x1E
F_END_UPLOAD: Final = 0x1F
F_PI_SERVICE: Final = 0x28
F_PLC_STOP: Final = 0x29
BLOCK_TRANSFER_FUNCTIONS: Final = frozenset({0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F})

# --- Variable specification --------------------------------------------------------------
SYNTAX_IDS: Final = {
    0x10: "S7ANY", 0x11: "ParameterShort", 0x12: "ParameterExtended", 0x13: "PBC-R_ID",
    0x15: "ALARM_LOCKFREE", 0x16: "ALARM_IND", 0x19: "ALARM_ACK", 0x1A: "ALARM_QUERYREQ",
    0x1C: "NOTIFY_IND", 0x82: "NCK", 0x83: "NCK_M", 0x84: "NCK_I", 0xA2: "DRIVEESANY",
    0xB0: "DBREAD", 0xB2: "1200SYM",
}
SYNTAX_S7ANY: Final = 0x10
SYNTAX_NAMES: Final = names_by_byte(SYNTAX_IDS)
AREAS: Final = {
    0x01: "RECORD", 0x03: "SI200", 0x05: "SF200", 0x06: "AI200", 0x07: "AO", 0x80: "P",
    0x81: "I", 0x82: "Q", 0x83: "M", 0x84: "DB", 0x85: "DI", 0x86: "L", 0x87: "V",
    0x1C: "C", 0x1D: "T", 0x1E: "C200", 0x1F: "T200",
}
AREA_NAMES: Final = names_by_byte(AREAS)
AREA_DB: Final = 0x84
AREA_DI: Final = 0x85
NUMBERED_AREAS: Final = frozenset({0x1C, 0x1D, 0x1E, 0x1F})   # C, T, IEC C, IEC T: addressed by number
TRANSPORT_SIZES: Final = {
    0x01: "BIT", 0x02: "BYTE", 0x03: "CHAR", 0x04: "WORD", 0x05: "INT", 0x06: "DWORD",
    0x07: "DINT", 0x08: "REAL", 0x09: "DATE", 0x0A: "TOD", 0x0B: "TIME", 0x0C: "S5TIME",
    0x0F: "DATE_AND_TIME", 0x1C: "COUNTER", 0x1D: "TIMER", 0x1E: "IEC TIMER",
    0x1F: "IEC COUNTER", 0x20: "HS COUNTER",
}
TRANSPORT_SIZE_NAMES: Final = names_by_byte(TRANSPORT_SIZES)
# Bytes per element of a request transport size (Wireshark's item length computation)
TRANSPORT_SIZE_BYTES: Final = {
    0x01: 1, 0x02: 1, 0x03: 1, 0x04: 2, 0x05: 2, 0x06: 4, 0x07: 4, 0x08: 4, 0x09: 2,
    0x0A: 4, 0x0B: 4, 0x0C: 2, 0x0F: 8, 0x1C: 2, 0x1D: 2, 0x1E: 4, 0x1F: 4, 0x20: 4,
}
DATA_TRANSPORT_SIZES: Final = {
    0x00: "NULL", 0x03: "BIT", 0x04: "BYTE/WORD/DWORD", 0x05: "INTEGER", 0x06: "DINTEGER",
    0x07: "REAL", 0x09: "OCTET STRING", 0x11: "NCK ADDRESS1", 0x12: "NCK ADDRESS2",
}
DATA_TRANSPORT_SIZE_NAMES: Final = names_by_byte(DATA_TRANSPORT_SIZES)
# Data transport sizes whose length field counts bits, not bytes (S7 data item header)
LENGTH_IN_BITS: Final = frozenset({0x03, 0x04, 0x05})
RETURN_CODES: Final = {
    0x00: "Reserved", 0x01: "Hardware error", 0x03: "Accessing the object not allowed",
    0x05: "Invalid address", 0x06: "Data type not supported", 0x07: "Data type inconsistent",
    0x0A: "Object does not exist", 0xFF: "Success",
}
RETURN_SUCCESS: Final = 0xFF
RETURN_NAMES: Final = names_by_byte(RETURN_CODES)

# --- Blocks -------------------------------------------------------------------------------
BLOCK_TYPES: Final = {  # as the two ASCII hex digits carried in file names / block info
    0x08: "OB", 0x09: "CMod", 0x0A: "DB", 0x0B: "SDB", 0x0C: "FC", 0x0D: "SFC",
    0x0E: "FB", 0x0F: "SFB",
}
FILESYSTEMS: Final = {"P": "Passive (copied, but not chained) module", "A": "Active embedded module",
               "B": "Active as well as passive module"}

# --- PI services (function 0x28) ----------------------------------------------------------
PI_SERVICES: Final = {
    "_INSE": "PI-Service _INSE (Activates a PLC module)",
    "_DELE": "PI-Service _DELE (Removes module from the PLC's passive file system)",
    "P_PROGRAM": "PI-Service P_PROGRAM (PLC Start / Stop)",
    "_MODU": "PI-Service _MODU (PLC Copy Ram to Rom)",
    "_GARB": "PI-Service _GARB (Compress PLC memory)",
    "_N_LOGIN_": "PI-Service _N_LOGIN_ (Login)",
    "_N_LOGOUT": "PI-Service _N_LOGOUT (Logout)",
    "_N_CANCEL": "PI-Service _N_CANCEL (Cancels NC alarm)",
    "_N_DASAVE": "PI-Service _N_DASAVE (PI-Service for copying data from SRAM to FLASH)",
    "_N_DIGIOF": "PI-Service _N_DIGIOF (Turns off digitizing)",
    "_N_DIGION": "PI-Service _N_DIGION (Turns on digitizing)",
    "_N_F_DELE": "PI-Service _N_F_DELE (Deletes file)",
    "_N_F_OPER": "PI-Service _N_F_OPER (Opens a file read-only)",
    "_N_SELECT": "PI-Service _N_SELECT (Selects program for execution)",
    "_N_F_COPY": "PI-Service _N_F_COPY (Copies file within the NCK)",
    "_N_F_PROT": "PI-Service _N_F_PROT (Assigns a protection level to a file)",
    "_N_F_RENA": "PI-Service _N_F_RENA (Renames file)",
    "_N_STRTLK": "PI-Service _N_STRTLK (The global start disable is set)",
    "_N_STRTUL": "PI-Service _N_STRTUL (The global start disable is reset)",
}

# --- User-data (ROSCTR 7) -----------------------------------------------------------------
UD_TYPES: Final = {0x0: "Indication", 0x4: "Request", 0x8: "Response"}
UD_TYPE_PUSH: Final = 0x0
UD_TYPE_REQUEST: Final = 0x4
UD_TYPE_RESPONSE: Final = 0x8
UD_GROUPS: Final = {
    0x0: "Mode-transition", 0x1: "Programmer commands", 0x2: "Cyclic services",
    0x3: "Block functions", 0x4: "CPU functions", 0x5: "Security", 0x6: "PBC BSEND",
    0x7: "Time functions", 0xF: "NC programming",
}
G_MODE: Final = 0x0
G_TIS: Final = 0x1
G_CYCLIC: Final = 0x2
G_BLOCK: Final = 0x3
G_CPU: Final = 0x4
G_SEC: Final = 0x5
G_TIME: Final = 0x7
UD_SUBFUNCTIONS: Final[dict[int, dict[int, str]]] = {
    G_MODE: {0x00: "STOP", 0x01: "Warm Restart", 0x02: "RUN", 0x03: "Hot Restart",
             0x04: "HOLD", 0x06: "Cold Restart", 0x09: "RUN_R (H-System redundant)",
             0x0B: "LINK-UP", 0x0C: "UPDATE"},
    G_TIS: {0x01: "Block status", 0x02: "Variable status", 0x03: "Output ISTACK",
            0x04: "Output BSTACK", 0x05: "Output LSTACK", 0x06: "Time measurement from to",
            0x07: "Force selection", 0x08: "Modify variable", 0x09: "Force",
            0x0A: "Breakpoint", 0x0B: "Exit HOLD", 0x0C: "Memory reset", 0x0D: "Disable job",
            0x0E: "Enable job", 0x0F: "Delete job", 0x10: "Read job list", 0x11: "Read job",
            0x12: "Replace job", 0x13: "Block status v2", 0x16: "Flash LED"},
    G_CYCLIC: {0x01: "Cyclic transfer", 0x04: "Unsubscribe", 0x05: "Change driven transfer",
               0x07: "Change driven transfer modify", 0x08: "RDREC"},
    G_BLOCK: {0x01: "List blocks", 0x02: "List blocks of type", 0x03: "Get block info"},
    G_CPU: {0x01: "Read SZL", 0x02: "Message service", 0x03: "Diagnostic message",
            0x05: "ALARM_8 indication", 0x06: "NOTIFY indication", 0x07: "ALARM_8 lock",
            0x08: "ALARM_8 unlock", 0x09: "SCAN indication", 0x0B: "ALARM ack",
            0x0C: "ALARM ack indication", 0x0D: "ALARM lock indication",
            0x0E: "ALARM unlock indication", 0x10: "AR_SEND indication",
            0x11: "ALARM_SQ indication", 0x12: "ALARM_S indication", 0x13: "ALARM query",
            0x16: "NOTIFY_8 indication"},
    G_SEC: {0x01: "PLC password", 0x02: "Clear PLC password"},
    G_TIME: {0x01: "Read clock", 0x02: "Set clock", 0x03: "Read clock (following)",
             0x04: "Set clock"},
}
SUB_READ_SZL: Final = 0x01
TIS_FORCE_SUBFUNCTIONS: Final = frozenset({0x07, 0x08, 0x09})   # force selection, modify variable, force
TIME_SET_SUBFUNCTIONS: Final = frozenset({0x02, 0x04})
MODE_STOP_SUBFUNCTIONS: Final = frozenset({0x00, 0x04})
MODE_START_SUBFUNCTIONS: Final = frozenset({0x01, 0x02, 0x03, 0x06, 0x09})

# --- SZL (system status list) ids, by the id's list number (low 8 bits) -------------------
SZL_LISTS: Final = {
    0x00: "List of all the SZL-IDs of a module",
    0x11: "Module identification",
    0x12: "CPU characteristics",
    0x13: "User memory areas",
    0x14: "System areas",
    0x15: "Block types",
    0x16: "Priority classes",
    0x17: "List of the permitted SDBs with a number < 1000",
    0x18: "Maximum S7-300 I/O configuration",
    0x19: "Status of the module LEDs",
    0x1C: "Component Identification",
    0x21: "Interrupt / error assignment",
    0x22: "Interrupt status",
    0x23: "Priority classes",
    0x24: "Modes",
    0x25: "Assignment between process image partitions and OBs",
    0x31: "Communication capability parameters",
    0x32: "Communication status data",
    0x33: "Diagnostics: device logon list",
    0x37: "Ethernet - Details of a module",
    0x71: "H CPU group information",
    0x74: "Status of the module LEDs",
    0x75: "Switched DP slaves in the H-system",
    0x81: "Start information list",
    0x82: "Start event list",
    0x90: "DP Master system information",
    0x91: "Module status information",
    0x92: "Rack / station status information",
    0x94: "Rack / station status information",
    0x95: "Extended DP master system information",
    0x96: "Module status information, PROFINET IO and PROFIBUS DP",
    0xA0: "Diagnostic buffer of the CPU",
    0xB1: "Module diagnostic information (record 0)",
    0xB2: "Module diagnostic information (record 1) via physical address",
    0xB3: "Module diagnostic information (record 1) via logical base address",
    0xB4: "Diagnostic data of a DP slave",
}
SZL_MODULE_ID, SZL_COMPONENT_ID = 0x0011, 0x001C
SZL_CPU_STATE_IDS: Final = frozenset({0x0424, 0x0524, 0x0124, 0x0224, 0x0174, 0x0019, 0x0074})
# 0x0011 record index -> what the record identifies
SZL_0011_INDEXES: Final = {0x0001: "module", 0x0006: "basic_hardware", 0x0007: "basic_firmware"}
# 0x001C record index -> identity key (component identification, SZL-ID W#16#001C)
SZL_001C_FIELDS: Final = {
    0x0001: "station_name",      # name of the automation system
    0x0002: "module_name",
    0x0003: "plant_id",          # plant designation
    0x0004: "copyright",
    0x0005: "serial_number",
    0x0007: "module_type",       # module type name
    0x0008: "memory_card_serial",
    0x0009: "manufacturer_profile",
    0x000A: "oem_id",
    0x000B: "location",
}
# CPU operating states in SZL 0x0424 records (byte 3 "actual mode")
CPU_MODES: Final = {0x00: "Unknown", 0x01: "STOP (update)", 0x02: "STOP (memory reset)",
             0x03: "STOP (self initialization)", 0x04: "STOP (internal)", 0x05: "Startup (complete restart)",
             0x06: "Startup (restart)", 0x07: "Startup (hot restart)", 0x08: "RUN", 0x09: "RUN (redundant)",
             0x0A: "HOLD", 0x0B: "Link-up", 0x0C: "Update", 0x0D: "Defective", 0x0E: "Self test"}

# --- S7comm-plus (protocol id 0x72) -------------------------------------------------------
PLUS_OPCODES: Final = {0x31: "Request", 0x32: "Response", 0x33: "Notification", 0x02: "Response2"}
PLUS_OP_REQUEST, PLUS_OP_RESPONSE, PLUS_OP_NOTIFICATION, PLUS_OP_RESPONSE2 = 0x31, 0x32, 0x33, 0x02
PLUS_FUNCTIONS: Final = {
    0x04B1: "Error", 0x04BB: "Explore", 0x04CA: "CreateObject", 0x04D4: "DeleteObject",
    0x04F2: "SetVariable", 0x04FC: "GetVariable", 0x0506: "AddLink", 0x051A: "RemoveLink",
    0x0524: "GetLink", 0x0542: "SetMultiVariables", 0x054C: "GetMultiVariables",
    0x0556: "BeginSequence", 0x0560: "EndSequence", 0x056B: "Invoke",
    0x057C: "SetVarSubStreamed", 0x0586: "GetVarSubStreamed", 0x0590: "GetVariablesAddress",
    0x059A: "Abort", 0x05A9: "Error2", 0x05B3: "InitSsl",
}
PLUS_F_CREATE_OBJECT, PLUS_F_DELETE_OBJECT, PLUS_F_SET_VARIABLE = 0x04CA, 0x04D4, 0x04F2
PLUS_F_SET_MULTI, PLUS_F_INVOKE, PLUS_F_EXPLORE = 0x0542, 0x056B, 0x04BB
PLUS_F_BEGIN_SEQUENCE, PLUS_F_END_SEQUENCE = 0x0556, 0x0560
PLUS_READ_FUNCTIONS: Final = frozenset({0x04FC, 0x0524, 0x054C, 0x0586, 0x0590})
PLUS_WRITE_FUNCTIONS: Final = frozenset({0x04F2, 0x0542, 0x057C})
# Object/attribute ids (Siemens' unprotected "relation ids") recognised in SetVariable /
# SetMultiVariables: the CPU operating-state request used by TIA Portal's start/stop
# (NativeObjects.theCPUexecUnit_Rid = 52, attribute CPUexecUnit.operatingStateREQ = 2167).
PLUS_RID_CPU_EXEC_UNIT: Final = 52
PLUS_AID_OPERATING_STATE_REQ: Final = 2167
PLUS_OPERATING_STATE_VALUES: Final = {1: "STOP", 3: "RUN"}
