"""ICSNPP-s7comm's names (its scripts/consts.zeek), where they differ from ours (constants.py, Wireshark's).

The Zeek logs must read exactly as ICSNPP writes them, spelling mistakes
included; our JSONL keeps our names.  Tables are derived from ours where
ICSNPP only renames a few entries.  A code missing from a table gets the
fallback ICSNPP's ``&default`` gives (:func:`icsnpp_name`).
"""
from __future__ import annotations

from typing import Final

from otsensor.dissectors.s7comm import constants as C

UNKNOWN: Final = "unknown"

# cotp_pdu_types: by the PDU type's high nibble; "Connection" where we say "Connect"
COTP_PDUS: Final = {**{code >> 4: name for code, name in C.COTP_PDU_TYPES.items()},
                    0xD: "CC Connection Confirm", 0xE: "CR Connection Request"}
ROSCTR: Final = {0x01: "Job-Request", 0x02: "ACK", 0x03: "ACK-Data", 0x07: "User-Data"}
ERROR_CLASSES: Final = {**C.ERROR_CLASSES, 0x81: "Application relationship error", 0x82: "Object definition error",
                        0x83: "No ressources available error"}   # ICSNPP's spelling
FUNCTIONS: Final = {0x00: "CPU Services", 0x04: "Read Variable", 0x05: "Write Variable", 0x1A: "Request Download",
                    0x1B: "Download Block", 0x1C: "Download Ended", 0x1D: "Start Upload", 0x1E: "Upload",
                    0x1F: "End Upload", 0x28: "PLC Control", 0x29: "PLC Stop", 0xF0: "Setup Communication"}
USERDATA_GROUPS: Final = {0x0: "Mode-Transition", 0x1: "Programmer Controls", 0x2: "Cyclic Services",
                          0x3: "Block Functions", 0x4: "CPU Functions", 0x5: "Security", 0x6: "PBC BSEND-BRECV",
                          0x7: "Time Functions", 0xF: "NC Programming"}
USERDATA_TYPES: Final = {0x40: "Request: ", 0x80: "Response: ", 0x00: "Push: "}   # by the high nibble

# user-data sub-functions, by the function group (ICSNPP names those of groups 0-5 and 7 only)
SUBFUNCTIONS: Final[dict[int, dict[int, str]]] = {
    0x0: {0x00: "Stop", 0x01: "Warm Restart", 0x02: "Run", 0x03: "Hot Restart", 0x04: "Hold", 0x06: "Cold Restart",
          0x09: "Run_R", 0x0B: "Link-Up", 0x0C: "Update"},
    0x1: {0x01: "Block Status", 0x02: "Variable Status", 0x03: "Output ISTACK", 0x04: "Output BSTACK",
          0x05: "Output LSTACK", 0x06: "Time Measurement", 0x07: "Force Selection", 0x08: "Modify Variable",
          0x09: "Force", 0x0A: "Breakpoint", 0x0B: "Exit HOLD", 0x0C: "Memory Reset", 0x0D: "Disable Job",
          0x0E: "Enable Job", 0x0F: "Delete Job", 0x10: "Read Job List", 0x11: "Read Job", 0x12: "Replace Job",
          0x13: "Block Status v2", 0x16: "Flash LED"},
    0x2: {0x01: "Cyclic Transfer", 0x04: "Unsubscribe", 0x05: "Change Driven Transfer",
          0x07: "Change Driven Transfer Modify", 0x08: "RDREC"},
    0x3: {0x01: "List Blocks", 0x02: "List Blocks of Type", 0x03: "Get Block Info"},
    0x4: {0x01: "Read SZL", 0x02: "Message Service", 0x03: "Diagnostic Message", 0x04: "ALARM_8 Indication",
          0x05: "NOTIFY Indication", 0x06: "ALARM_8 Lock", 0x07: "ALARM_8 Unlock", 0x08: "SCAN Indication",
          0x0B: "ALARM_S Indication", 0x0C: "ALARM_SQ Indication", 0x0D: "ALARM Query", 0x0E: "ALARM ACK",
          0x11: "ALARM ACK Indication", 0x12: "ALARM Lock Indication", 0x13: "ALARM Unlock Indication",
          0x16: "NOTIFY_8 Indication"},
    0x5: {0x01: "PLC Password"},
    0x7: {0x01: "Read Clock", 0x02: "Set Clock", 0x03: "Read Clock (Following)", 0x04: "Set Clock (2)"},
}
USERDATA_METHODS: Final = {0x11: "Request", 0x12: "Response"}
RETURN_CODES: Final = {**C.RETURN_CODES, 0x03: "Accessing the bbject not allowed"}   # ICSNPP's typo
SZL_LISTS: Final = {**{n: name for n, name in C.SZL_LISTS.items() if n != 0x90},
                    0x37: "Ethernet - Details of a Module", 0xB1: "Module diagnostic information (data record 0)",
                    0xB2: "Module diagnostic information (data record 1), geographical address",
                    0xB3: "Module diagnostic information (data record 1), logical address"}
# block types by the two characters a file name carries
BLOCK_TYPES: Final = {"08": "Organization Block", "0A": "Data Block", "0B": "System Data Block", "0C": "Function",
                      "0D": "System Function", "0E": "Function Block", "0F": "System Function Block"}
FILESYSTEMS: Final = {"P": "Passive", "A": "Active"}
PLUS_OPCODES: Final = {0x31: "Request", 0x32: "Response", 0x33: "Notification"}
PLUS_FUNCTIONS: Final = {0x04BB: "Explore", 0x04CA: "Create Object", 0x04D4: "Delete Object",
                         0x04F2: "Set Variable", 0x0524: "Get Link", 0x0542: "Set Multi Variables",
                         0x054C: "Get Multi Variables", 0x0556: "Begin Sequence", 0x0560: "End Sequence",
                         0x056B: "Invoke", 0x0586: "Get Variable Sub Streamed"}

# PLC Control (PI) services: ours give "PI-Service NAME (what it does)"; ICSNPP names what it does, and more
_OURS: Final = {service: text[text.index("(") + 1:-1] for service, text in C.PI_SERVICES.items()}
PLC_CONTROL_SERVICES: Final = {
    **_OURS, "_INS2": "Activates a PLC module",
    "_N_DZERO_": "Set all D numbers invalid for function", "_N_OST_OF": "Overstore OFF",
    "_N_OST_ON": "Overstore ON", "_N_SCALE_": "Unit of measurement setting (metric<->INCH)",
    "_N_SETUFR": "Activates user frame", "_N_TMRASS": "Resets the Active status",
    "_N_EXTERN": "Selects external program for execution", "_N_EXTMOD": "Selects external program for execution",
    "_N_F_DELR": "Delete file even without access rights", "_N_F_XFER": "Selects file for uploading",
    "_N_LOCKE_": "Locks the active file for editing", "_N_SRTEXT": "A file is being marked in _N_EXT_DIR",
    "_N_F_CLOS": "Closes file", "_N_F_OPEN": "Opens file", "_N_F_SEEK": "Position the file search pointer",
    "_N_ASUP__": "Assigns interrupt", "_N_CHEKDM": "Start uniqueness check on D numbers",
    "_N_CHKDNO": "Check whether the tools have unique D numbers", "_N_CONFIG": "Reconfigures machine data",
    "_N_CRCEDN": "Creates a cutting edge by specifying an edge number", "_N_DELECE": "Deletes a cutting edge",
    "_N_CREACE": "Creates a cutting edge", "_N_CREATO": "Creates a tool", "_N_DELETO": "Deletes tool",
    "_N_CRTOCE": "Generate tool with specified edge number", "_N_DELVAR": "Delete data block",
    "_N_F_DMDA": "Deletes MDA memory", "_N_FINDBL": "Activates search", "_N_IBN_SS": "Sets the set-up switch",
    "_N_MMCSEM": "MMC-Semaphore", "_N_NCKMOD": "The mode in which the NCK will work is being set",
    "_N_NEWPWD": "New password", "_N_SEL_BL": "Selects a new block",
    "_N_SETTST": "Activate tools for replacement tool group",
    "_N_TMAWCO": "Set the active wear group in one magazine", "_N_TMCRTC": "Create tool with specified edge number",
    "_N_TMCRTO": "Creates tool in the tool management", "_N_TMFDPL": "Searches an empty place for loading",
    "_N_TMFPBP": "Searches for empty location", "_N_TMGETT": "Determines T-number for specific toolID with Duplono",
    "_N_TMMVTL": "Loads or unloads a tool", "_N_TMPCIT": "Sets increment value of the piece counter",
    "_N_TMPOSM": "Positions a magazine or tool", "_N_TRESMO": "Reset monitoring values",
    "_N_TSEARC": "Complex search via search screenforms",
}


def icsnpp_name(table: dict, code: object, default: str = UNKNOWN) -> str:
    """A table's name for ``code``, or the ``&default`` ICSNPP's table gives."""
    name = table.get(code)
    return default if name is None else name
