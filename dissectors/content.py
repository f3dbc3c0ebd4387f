"""What a connection that no dissector follows carries, guessed from one payload: TLS, SSH, SMB, HTTP, ...

Sans-I/O: bytes in, a name out.  The sensor offers the first payloads of a
flow that no industrial dissector claimed (by port or by content) to
:func:`guess_content`; the detector names the guess when such a flow enters
or moves inside a control zone.  Each signature is the first bytes the
protocol's own specification fixes, checked strictly enough that an
industrial protocol's payload does not match by accident.  Without a match,
:func:`guess_by_port` names the service the port is registered for.
"""
from __future__ import annotations

from typing import Callable

HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"CONNECT ", b"PATCH ", b"TRACE ")
SMB_MAGICS = (b"\xffSMB", b"\xfeSMB", b"\xfdSMB")   # SMB1, SMB2/3, SMB3 transform header (MS-SMB2 2.2.41)
TLS_CONTENT_TYPES = (0x14, 0x15, 0x16, 0x17)        # change cipher spec, alert, handshake, application data


def _tls(p: bytes) -> bool:
    # RFC 8446 5.1: content type, legacy version 3.x, a length no larger than 2^14 + 2048
    return len(p) >= 5 and p[0] in TLS_CONTENT_TYPES and p[1] == 3 and p[2] <= 4 and \
        (p[3] << 8 | p[4]) <= 18432


def _smb(p: bytes) -> bool:
    # RFC 1002 session message (type 0) then the SMB header's protocol id
    return len(p) >= 8 and p[0] == 0 and p[4:8] in SMB_MAGICS


def _rdp(p: bytes) -> bool:
    # MS-RDPBCGR 2.2.1.1: TPKT, X.224 connection request, then a routing cookie or an RDP negotiation request
    if len(p) < 11 or p[0] != 3 or p[1] != 0 or p[5] != 0xE0:
        return False
    return b"Cookie: mstshash=" in p or (len(p) >= 19 and p[-8] == 0x01 and p[-6:-4] == b"\x08\x00")


def _telnet(p: bytes) -> bool:
    return len(p) >= 3 and p[0] == 0xFF and 0xFB <= p[1] <= 0xFE   # IAC WILL/WONT/DO/DONT (RFC 854)


SIGNATURES: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("ssh", lambda p: p.startswith(b"SSH-")),                 # RFC 4253 4.2 identification string
    ("tls", _tls),
    ("smb", _smb),
    ("http", lambda p: p.startswith(HTTP_METHODS) or p.startswith(b"HTTP/1.")),
    ("rdp", _rdp),
    ("vnc", lambda p: p.startswith(b"RFB ")),                 # RFC 6143 7.1.1 protocol version
    ("telnet", _telnet),
)
# IANA service names of the ports an attacker moves through, for flows whose payload said nothing
PORT_SERVICES = {21: "ftp", 22: "ssh", 23: "telnet", 80: "http", 135: "msrpc", 139: "smb", 443: "tls", 445: "smb",
                 3389: "rdp", 5900: "vnc", 5985: "winrm", 5986: "winrm", 8080: "http"}


def guess_content(payload: bytes) -> str | None:
    """The protocol a payload's first bytes show, or None."""
    for name, matches in SIGNATURES:
        if matches(payload):
            return name
    return None


def guess_by_port(port: int) -> str | None:
    return PORT_SERVICES.get(port)
