"""Capture filters in tcpdump syntax, compiled without privileges and attached to a capture socket.

libpcap compiles the expression for a link type with no interface open
(``pcap_open_dead`` + ``pcap_compile``, through ctypes; libpcap ships with
tcpdump); without the library, ``tcpdump -ddd`` compiles it against an empty
capture file.  The kernel then runs the program on every frame before it is
copied into the ring (SO_ATTACH_FILTER), and the filter is locked so nothing
can swap it later (SO_LOCK_FILTER).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import socket
import struct
import subprocess
import tempfile

from otsensor.sensor.capture import linktypes as lt

SO_ATTACH_FILTER = 26
SO_LOCK_FILTER = 44
SNAPLEN = 262144                  # what an accepting program returns: keep the whole frame (tcpdump's default)
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
DLT_OF_LINKTYPE = {lt.ETHERNET: 1, lt.RAW: 12}   # pcap_open_dead takes DLT_ values (LINKTYPE_RAW is DLT_RAW 12)

Program = list[tuple[int, int, int, int]]    # struct sock_filter: code, jt, jf, k
_INSN = struct.Struct("=HBBI")


class FilterError(Exception):
    """The expression does not compile; the message is the compiler's."""


class _Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _Program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Insn))]


def compile_filter(expression: str, linktype: int = lt.ETHERNET) -> Program:
    """The classic BPF program of a tcpdump expression for frames of ``linktype``."""
    if linktype not in DLT_OF_LINKTYPE:
        raise FilterError(f"cannot filter link type {linktype}")
    lib = _libpcap()
    if lib is not None:
        return _compile_libpcap(lib, expression, DLT_OF_LINKTYPE[linktype])
    return _compile_tcpdump(expression, linktype)


def _libpcap() -> ctypes.CDLL | None:
    for name in (ctypes.util.find_library("pcap"), "libpcap.so.1", "libpcap.so.0.8"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Program), ctypes.c_char_p, ctypes.c_int,
                                     ctypes.c_uint32]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        return lib
    return None


def _compile_libpcap(lib: ctypes.CDLL, expression: str, dlt: int) -> Program:
    handle = lib.pcap_open_dead(dlt, SNAPLEN)
    if not handle:
        raise FilterError("libpcap could not start a compiler")
    program = _Program()
    try:
        if lib.pcap_compile(handle, ctypes.byref(program), expression.encode(), 1, PCAP_NETMASK_UNKNOWN) != 0:
            raise FilterError(lib.pcap_geterr(handle).decode(errors="replace"))
        insns = [(i.code, i.jt, i.jf, i.k) for i in program.bf_insns[:program.bf_len]]
        lib.pcap_freecode(ctypes.byref(program))
        return insns
    finally:
        lib.pcap_close(handle)


def _compile_tcpdump(expression: str, linktype: int) -> Program:
    """``tcpdump -ddd``, reading an empty capture file of the link type (needs no interface, no privilege)."""
    with tempfile.NamedTemporaryFile(suffix=".pcap") as empty:
        empty.write(struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype))
        empty.flush()
        try:
            done = subprocess.run(["tcpdump", "-ddd", "-r", empty.name, expression], capture_output=True,
                                  text=True, timeout=30)
        except FileNotFoundError:
            raise FilterError("neither libpcap nor tcpdump is installed to compile it") from None
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise FilterError(lines[-1].removeprefix("tcpdump: ") if lines else "tcpdump refused it")
    rows = done.stdout.split("\n")
    count = int(rows[0])
    return [tuple(int(v) for v in row.split()) for row in rows[1:1 + count]]  # type: ignore[misc]


def set_program(sock: socket.socket, level: int, option: int, program: Program) -> None:
    """Hand ``program`` to the kernel through a socket option that takes a struct sock_fprog."""
    code = ctypes.create_string_buffer(b"".join(_INSN.pack(*insn) for insn in program))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }, native alignment
    sock.setsockopt(level, option, struct.pack("HP", len(program), ctypes.addressof(code)))
    del code  # the kernel copied the program; the buffer only had to live through the call


def attach_filter(sock: socket.socket, program: Program) -> None:
    """Attach ``program`` to ``sock`` (lock it with :func:`lock_filter` once the socket is set up)."""
    set_program(sock, socket.SOL_SOCKET, SO_ATTACH_FILTER, program)


def lock_filter(sock: socket.socket) -> None:
    """Lock the socket's filter: nothing can detach or swap it from now on."""
    sock.setsockopt(socket.SOL_SOCKET, SO_LOCK_FILTER, 1)
