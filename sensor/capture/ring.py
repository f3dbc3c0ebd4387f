"""One AF_PACKET socket with a TPACKET_V3 receive ring, with only Python's socket, mmap and struct.

The kernel copies each frame into a block of a memory-mapped ring and hands
the block over when it is full or when its retire timeout passes; the sensor
walks the frames of every handed-over block and gives the block back.  That
is one poll per block, not one syscall per packet (the design of libpcap's
and Suricata's AF_PACKET sources; layouts from linux/if_packet.h).

Receive only: nothing here ever calls send on the socket.  Promiscuous mode is
asked for through a socket membership (PACKET_ADD_MEMBERSHIP), which the
kernel undoes when the socket closes, never by changing the interface's flags.
"""
from __future__ import annotations

import mmap
import socket
import struct
from dataclasses import dataclass
from typing import Iterator

from otsensor.sensor.capture import linktypes as lt
from otsensor.sensor.capture.bpf import Program, attach_filter, lock_filter
from otsensor.sensor.capture.fanout import PACKET_FANOUT_CBPF, address_pair_program, set_fanout_program
from otsensor.sensor.capture.files import CaptureError

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_IGNORE_OUTGOING = 23
TPACKET_V3 = 2
PACKET_MR_PROMISC = 1
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
PACKET_FANOUT_FLAG_UNIQUEID = 0x2000
FANOUT_NEW = -1           # fanout_group: a new group, its id chosen by the kernel (read back as ring.fanout_group)
ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ETH_P_8021Q = 0x8100

ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ARPHRD_NONE = 65534       # tun devices: raw IP
LINKTYPE_OF_ARPHRD = {ARPHRD_ETHER: lt.ETHERNET, ARPHRD_LOOPBACK: lt.ETHERNET, ARPHRD_NONE: lt.RAW}

# struct tpacket_req3: block size, block count, frame size, frame count, retire timeout (ms), private size, features
_REQ3 = struct.Struct("=7I")
# struct tpacket_block_desc, from its hdr.bh1: block_status, num_pkts, offset_to_first_pkt (at byte 8)
_BLOCK = struct.Struct("=III")
_STATUS = struct.Struct("=I")         # a u32: a block's status, the fanout argument
# struct tpacket3_hdr: next offset, sec, nsec, snaplen, len, status, mac, net, rxhash, vlan tci, vlan tpid
_HDR = struct.Struct("=IIIIIIHHIIH")
_VLAN = struct.Struct("!HH")
_STATS_V3 = struct.Struct("=III")     # tp_packets (drops included), tp_drops, tp_freeze_q_cnt
_MREQ = struct.Struct("=iHH8s")       # struct packet_mreq


@dataclass
class RingConfig:
    """The receive ring of one interface (``tpacket_req3``); memory is ``block_size * block_count``."""
    block_size: int = 1 << 20        # a frame larger than a block is truncated to it
    block_count: int = 32
    frame_size: int = 2048           # only sizes the kernel's frame accounting in TPACKET_V3
    block_timeout_ms: int = 100      # a block is handed over when full or after this long

    def check(self) -> str | None:
        """Why the kernel would refuse this ring, in one line; None when it is acceptable."""
        page = mmap.PAGESIZE
        if self.block_size < page or self.block_size % page or self.block_size & (self.block_size - 1):
            return f"ring block size must be a power of two of at least {page} bytes, not {self.block_size}"
        if self.frame_size < 128 or self.frame_size % 16 or self.block_size % self.frame_size:
            return (f"ring frame size must be a multiple of 16 of at least 128 that divides the block size, "
                    f"not {self.frame_size}")
        if self.block_count < 2:
            return f"the ring needs at least 2 blocks, not {self.block_count}"
        if self.block_timeout_ms < 1:
            return f"ring block timeout must be at least 1 ms, not {self.block_timeout_ms}"
        return None


class PacketRing:
    """A receive-only capture socket on one interface and its mapped ring.

    The socket is created with protocol 0 so it receives nothing while it is
    set up; it is bound to ETH_P_ALL only once the ring and the filter are in
    place, so no frame that the filter rejects ever enters the ring.
    """

    def __init__(self, ifname: str, config: RingConfig, program_for=None, promiscuous: bool = True,
                 fanout_group: int | None = None) -> None:
        self.name = ifname
        self.config = config
        self.frames = 0
        self.truncated = 0
        self.kernel_received = self.kernel_dropped = self.freezes = 0
        self.fanout_group: int | None = None
        self._block = 0
        try:
            self.ifindex = socket.if_nametoindex(ifname)
        except OSError:
            raise CaptureError(f"{ifname}: no such network interface") from None
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self.linktype = self._setup(program_for, promiscuous, fanout_group)
        except BaseException:
            self.close()
            raise

    def _setup(self, program_for, promiscuous: bool, fanout_group: int | None) -> int:
        sock, cfg = self.sock, self.config
        try:
            sock.bind((self.name, 0))   # protocol 0: tied to the interface, still receiving nothing
            linktype = LINKTYPE_OF_ARPHRD.get(sock.getsockname()[3])
            if linktype is None:
                raise CaptureError(f"{self.name}: unsupported link type (ARPHRD {sock.getsockname()[3]})")
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            frames = cfg.block_size // cfg.frame_size * cfg.block_count
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, _REQ3.pack(
                cfg.block_size, cfg.block_count, cfg.frame_size, frames, cfg.block_timeout_ms, 0, 0))
            self.map = mmap.mmap(sock.fileno(), cfg.block_size * cfg.block_count, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
            program: Program | None = program_for(linktype) if program_for else None
            if program is not None:
                attach_filter(sock, program)
            if promiscuous:
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, _MREQ.pack(self.ifindex, PACKET_MR_PROMISC, 0, b""))
            if sock.getsockname()[3] == ARPHRD_LOOPBACK:
                # every frame on lo is seen leaving and arriving: keep one copy (libpcap drops the outgoing one)
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            # stamp frames once as they enter the stack, so every capture of the interface (tcpdump beside the
            # sensor) reads the same time, rather than each socket reading the clock when its copy is made
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.bind((self.name, ETH_P_ALL))
            if fanout_group is not None:
                self.fanout_group = self._join_fanout(fanout_group)
            if program is not None:
                lock_filter(sock)   # last: a locked socket cannot give its fanout group a program
        except OSError as exc:
            raise CaptureError(f"{self.name}: cannot open for capture: {exc.strerror or exc}") from None
        return linktype

    def _join_fanout(self, group: int) -> int:
        """Join fanout group ``group`` (FANOUT_NEW: a new one with an id no other socket of this network
        namespace uses, which the kernel picks); returns the group's id."""
        # workers sharing a group each get whole conversations (a program of ours hashes the two IP
        # addresses: fanout.py says why not the kernel's flow hash); fragments are reassembled first
        flags = PACKET_FANOUT_CBPF | PACKET_FANOUT_FLAG_DEFRAG
        if group == FANOUT_NEW:
            group, flags = 0, flags | PACKET_FANOUT_FLAG_UNIQUEID   # (the kernel drops the flag once joined)
        self.sock.setsockopt(SOL_PACKET, PACKET_FANOUT, _STATUS.pack((group & 0xFFFF) | flags << 16))
        set_fanout_program(self.sock, address_pair_program())
        (joined,) = _STATUS.unpack(self.sock.getsockopt(SOL_PACKET, PACKET_FANOUT, _STATUS.size))
        return joined & 0xFFFF

    def fileno(self) -> int:
        return self.sock.fileno()

    def frames_ready(self) -> Iterator[tuple[float, int, bytes]]:
        """The frames of the blocks the kernel has handed over, each block given back once walked.

        At most one turn of the ring per call, so a saturated interface still lets the caller serve its
        other rings and its clock.  A VLAN tag the kernel stripped (it reports it in the frame header) is put back into the frame,
        so the decoder sees the frame as it was on the wire.
        """
        cfg = self.config
        ring = self.map
        linktype = self.linktype
        unpack = _HDR.unpack_from
        for _ in range(cfg.block_count):
            base = self._block * cfg.block_size
            status, count, offset = _BLOCK.unpack_from(ring, base + 8)
            if not status & TP_STATUS_USER:
                return
            offset += base
            self.frames += count
            for _ in range(count):
                step, sec, nsec, snaplen, length, tp_status, mac, _net, _hash, tci, tpid = unpack(ring, offset)
                frame = ring[offset + mac:offset + mac + snaplen]
                if tp_status & TP_STATUS_VLAN_VALID:
                    tag = _VLAN.pack(tpid if tp_status & TP_STATUS_VLAN_TPID_VALID else ETH_P_8021Q, tci & 0xFFFF)
                    frame = frame[:12] + tag + frame[12:]
                if snaplen < length:
                    self.truncated += 1
                yield sec + nsec * 1e-9, linktype, frame   # 32-bit seconds: no clock check needed (files.MAX_TS)
                offset += step
            _STATUS.pack_into(ring, base + 8, TP_STATUS_KERNEL)
            self._block = (self._block + 1) % cfg.block_count

    def read_statistics(self) -> None:
        """Add the kernel's counters since the last read (reading them resets them in the kernel)."""
        received, dropped, freezes = _STATS_V3.unpack(self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS,
                                                                           _STATS_V3.size))
        self.kernel_received += received
        self.kernel_dropped += dropped
        self.freezes += freezes

    def statistics(self) -> dict[str, int | str]:
        return {"name": self.name, "kernel_received": self.kernel_received, "kernel_dropped": self.kernel_dropped,
                "freeze_count": self.freezes, "frames": self.frames, "frames_truncated": self.truncated}

    def close(self) -> None:
        ring = getattr(self, "map", None)
        if ring is not None:
            ring.close()
            self.map = None
        self.sock.close()
