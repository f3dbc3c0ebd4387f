"""Which worker a frame goes to: a classic BPF program the kernel runs for a PACKET_FANOUT group.

The kernel's own hash mode (PACKET_FANOUT_HASH) hashes each flow by its addresses and ports, so the
UDP 2222 I/O of an EtherNet/IP connection could reach another worker than the TCP 44818 session whose
Forward Open set it up, and that worker would log the I/O without the connection's parameters.  This
program hashes the two IP addresses only (symmetric: XOR), so every conversation between two hosts,
whatever its ports, reaches one worker, as Suricata's IP-pair load balancing does.  The group keeps the
defrag flag: the kernel reassembles IP fragments before the program runs, so fragments follow their flow.

The program reads relative to the network header (SKF_NET_OFF), which holds wherever the kernel has put
the frame's start, and learns the ethertype from the kernel (SKF_AD_PROTOCOL): a VLAN tag the kernel
stripped is not in the way, and a second (QinQ) tag still in the frame is stepped over.  What is not IPv4
or IPv6 (ARP, LLDP, PROFINET DCP) goes to the first worker.  The kernel takes the result modulo the
number of workers.
"""
from __future__ import annotations

import socket

from otsensor.sensor.capture.bpf import Program, set_program

SOL_PACKET = 263
PACKET_FANOUT_DATA = 22
PACKET_FANOUT_CBPF = 6

SKF_AD_OFF = -0x1000
SKF_AD_PROTOCOL = 0
SKF_NET_OFF = -0x100000

# classic BPF opcodes (linux/filter.h)
_LD_W_ABS, _LD_H_ABS = 0x20, 0x28
_LDX_MEM, _ST = 0x61, 0x02
_XOR_X, _MUL_K, _RSH_K = 0xAC, 0x24, 0x74
_JEQ_K, _RET_A, _RET_K = 0x15, 0x16, 0x06

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8)
MIX = 0x9E3779B1          # Knuth's multiplicative hash: the XOR of two addresses of one subnet differs in few bits
SCRATCH = 0               # the scratch memory word that holds the XOR so far

_IPV4_ADDRESS_WORDS = (12, 16)                          # source, destination
_IPV6_ADDRESS_WORDS = tuple(range(8, 40, 4))            # 4 words of the source, 4 of the destination


def _xor_of_words(base: int, offsets: tuple[int, ...]) -> Program:
    """A = XOR of the 32-bit words at network header + base + each offset, mixed and shifted; return A."""
    first, *rest = offsets
    program: Program = [(_LD_W_ABS, 0, 0, (SKF_NET_OFF + base + first) & 0xFFFFFFFF)]
    for offset in rest:
        program += [(_ST, 0, 0, SCRATCH),
                    (_LD_W_ABS, 0, 0, (SKF_NET_OFF + base + offset) & 0xFFFFFFFF),
                    (_LDX_MEM, 0, 0, SCRATCH),
                    (_XOR_X, 0, 0, 0)]
    return program + [(_MUL_K, 0, 0, MIX), (_RSH_K, 0, 0, 16), (_RET_A, 0, 0, 0)]


def _by_ethertype(base: int, rest: Program) -> Program:
    """Dispatch on the ethertype in A: IPv4 and IPv6 headers at network header + base; else ``rest``."""
    ipv4 = _xor_of_words(base, _IPV4_ADDRESS_WORDS)
    ipv6 = _xor_of_words(base, _IPV6_ADDRESS_WORDS)
    # jt/jf count the instructions skipped after the jump itself
    return ([(_JEQ_K, 1 + len(rest), 0, ETH_IPV4),
             (_JEQ_K, 1 + len(rest) + len(ipv4) - 1, 0, ETH_IPV6)]
            + rest + ipv4 + ipv6)


def address_pair_program() -> Program:
    """The fanout program: the worker of a frame from its two IP addresses, either order."""
    other = [(_RET_K, 0, 0, 0)]
    inner_tag = [(_LD_H_ABS, 0, 0, (SKF_NET_OFF + 2) & 0xFFFFFFFF)] + _by_ethertype(4, other)
    after_tag = [(_JEQ_K, len(other) + 1, 0, VLAN_TPIDS[0]),
                 (_JEQ_K, len(other), 0, VLAN_TPIDS[1])] + other + inner_tag
    return [(_LD_W_ABS, 0, 0, (SKF_AD_OFF + SKF_AD_PROTOCOL) & 0xFFFFFFFF)] + _by_ethertype(0, after_tag)


def set_fanout_program(sock: socket.socket, program: Program) -> None:
    """Give the fanout group of ``sock`` (joined in PACKET_FANOUT_CBPF mode) its program.  Before the
    socket's own filter is locked: the kernel refuses the group's program from a locked socket."""
    set_program(sock, SOL_PACKET, PACKET_FANOUT_DATA, program)
