"""Zeek's view of one connection, packet by packet: who it calls the originator, its TCP endpoint states,
the history letters, the sizes and times conn.log shows, and when Zeek would remove it.

A port of the parts of Zeek 7 that decide conn.log's columns (read from
``src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc``, ``TCP.cc``,
``src/analyzer/protocol/tcp/TCP_Endpoint.cc``, ``src/Conn.cc`` and
``src/session/Session.cc``): the role flips (``^``) of WantConnection and of
the SYN/SYN-ACK and SYN-ACK-then-ACK cases, each endpoint's state machine and
sequence bookkeeping (the byte counts are sequence distances, not payload
sums), the once-per-kind history letters with the scaled repeats of ``T``
(retransmissions), ``last_time`` frozen once both sides closed, and the
timers that remove a connection (close and reset delays, the connection
attempt delay, inactivity timeouts).  Not modelled: zero windows (``W``),
checksums (``C``: Zeek's btests run with ``-C``) and content gaps (``G``;
missed_bytes comes from our reassembly).
"""
from __future__ import annotations

from typing import Final

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
TCP, UDP = 6, 17

# endpoint states (Zeek's TCP_ENDPOINT_*), numbered as the script layer's TCP_INACTIVE ...
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
HANDSHAKE: Final = frozenset({INACTIVE, SYN_SENT, SYN_ACK_SENT})
# history kinds (TCP_Endpoint.h HIST_*); a responder's are shifted 16 bits up
HIST_SYN, HIST_FIN, HIST_RST, HIST_FIN_RST, HIST_DATA, HIST_ACK, HIST_MULTI = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40

# timers (init-bare.zeek)
TCP_ATTEMPT_DELAY: Final = 5.0
TCP_CLOSE_DELAY: Final = 5.0
TCP_RESET_DELAY: Final = 5.0
TCP_INACTIVITY: Final = 300.0
UDP_INACTIVITY: Final = 60.0
ICMP_INACTIVITY: Final = 60.0
TOO_LARGE_SEQ_DELTA: Final = 1 << 20
MASK32: Final = 0xFFFFFFFF


def seq_delta(a: int, b: int) -> int:
    """a - b in 32-bit sequence space, as a signed 32-bit number."""
    d = (a - b) & MASK32
    return d - (1 << 32) if d & 0x80000000 else d


class Endpoint:
    """One side's TCP state, as TCP_Endpoint keeps it."""

    __slots__ = (
        "ack_seq",
        "ack_wraps",
        "did_close",
        "fin_cnt",
        "hist_last_fin",
        "hist_last_rst",
        "hist_last_syn",
        "is_orig",
        "last_seq",
        "peer",
        "prev_state",
        "rxmt_cnt",
        "rxmt_thresh",
        "seq_wraps",
        "start_seq",
        "state",
    )

    def __init__(self, is_orig: bool) -> None:
        self.is_orig = is_orig
        self.state = self.prev_state = INACTIVE
        self.start_seq = self.last_seq = self.ack_seq = 0
        self.seq_wraps = self.ack_wraps = 0
        self.fin_cnt = 0
        self.did_close = False
        self.hist_last_syn = self.hist_last_fin = self.hist_last_rst = 0
        self.rxmt_cnt, self.rxmt_thresh = 0, 1
        self.peer: Endpoint = self

    def set_state(self, conn: ConnModel, new: int) -> None:
        if new != self.state:
            if new not in HANDSHAKE and self.state in HANDSHAKE and self.peer.state in HANDSHAKE:
                conn.inactivity = TCP_INACTIVITY
            self.prev_state, self.state = self.state, new

    def update_last_seq(self, seq: int) -> None:
        if seq < self.last_seq:
            self.seq_wraps += 1
        self.last_seq = seq

    def update_ack_seq(self, seq: int) -> None:
        if seq < self.ack_seq:
            self.ack_wraps += 1
        self.ack_seq = seq

    def no_data_acked(self) -> bool:
        ack = (self.ack_wraps << 32) + self.ack_seq
        return ack in (self.start_seq, self.start_seq + 1)

    def size(self) -> int:
        """TCP_Endpoint::Size: the sequence space the side used, less the SYN and FIN."""
        if self.prev_state == SYN_SENT and self.state == RESET and self.peer.state == INACTIVE \
                and not self.no_data_acked():
            return 0
        last = (self.seq_wraps << 32) + self.last_seq
        ack = (self.ack_wraps << 32) + self.ack_seq
        size = (max(ack, last)) - self.start_seq
        if size:
            size -= 1
        if self.fin_cnt and size:
            size -= 1
        return max(size, 0)

    def relative(self, seq: int, last: int, wraps: int) -> int:
        delta = seq_delta(seq, last)
        if delta < 0 and wraps and seq > last:
            wraps -= 1
        elif delta > 0 and seq < last:
            wraps += 1
        if wraps == 0:
            return seq_delta(seq, self.start_seq & MASK32)
        return (wraps << 32) + seq - self.start_seq


class ConnModel:
    """Zeek's connection for one of our flows.

    ``same`` says whether Zeek's originator is ours; ``packet`` takes each
    packet with its direction in our terms.
    """

    __slots__ = (
        "attempt_at",
        "first",
        "hist_seen",
        "history",
        "inactivity",
        "last",
        "orig",
        "removal",
        "resp",
        "same",
        "start",
        "transport",
        "udp_len",
    )

    def __init__(self, transport: int) -> None:
        self.transport = transport
        self.same = True
        self.history: list[str] = []
        self.hist_seen = 0
        self.start = self.last = 0.0
        self.inactivity = UDP_INACTIVITY if transport in (TCP, UDP) else ICMP_INACTIVITY
        self.orig, self.resp = Endpoint(True), Endpoint(False)
        self.orig.peer, self.resp.peer = self.resp, self.orig
        self.removal: float | None = None      # when a close or reset timer removes the connection
        self.attempt_at = 0.0                  # when the connection attempt timer fires
        self.udp_len = [-1, -1]                # Zeek's UDP request_len/reply_len (-1: nothing seen)
        self.first = True

    # -- history -----------------------------------------------------------------------------------------

    def add_history(self, code: str) -> None:
        self.history.append(code)

    def check_history(self, mask: int, code: str) -> bool:
        """Session::CheckHistory: the letter once per kind; True when the kind was seen before."""
        if self.hist_seen & mask == 0:
            self.hist_seen |= mask
            self.add_history(code)
            return False
        return True

    def endpoint_history(self, ep: Endpoint, mask: int, code: str) -> bool:
        """TCP_Endpoint::CheckHistory, with the SYN-ACK-seen-first flip."""
        if code in "AD" and self.history == ["H"]:
            self.flip()
            self.history = list("^h")
        if not ep.is_orig:
            mask <<= 16
            code = code.lower()
        return self.check_history(mask, code)

    def flip(self) -> None:
        """Connection::FlipRoles: the other side becomes the originator, and history says so with ``^``."""
        self.same = not self.same
        self.orig, self.resp = self.resp, self.orig
        self.orig.is_orig, self.resp.is_orig = True, False
        self.udp_len.reverse()
        self.add_history("^")

    # -- packets -----------------------------------------------------------------------------------------

    def packet(self, ours_orig: bool, flags: int, seq: int, ack: int, length: int, udp_len: int, ts: float,
               likely_server: LikelyServer, sport: int, dport: int) -> None:
        if self.first:   # Zeek's originator is the first packet's sender, unless WantConnection flips it
            self.first = False
            self.start = self.last = ts
            self.same = ours_orig
            if likely_server.flip(self.transport, flags, sport, dport):
                self.same = not ours_orig
                self.add_history("^")
        is_orig = ours_orig == self.same
        if self.transport == TCP:
            self._tcp(is_orig, flags, seq, ack, length, ts)
        else:
            self.last = ts
            if self.transport == UDP:
                self._udp(is_orig, udp_len)

    def _udp(self, is_orig: bool, udp_len: int) -> None:
        self.check_history(0x1 if is_orig else 0x2, "D" if is_orig else "d")
        i = 0 if is_orig else 1
        self.udp_len[i] = udp_len if self.udp_len[i] < 0 else self.udp_len[i] + udp_len

    def _tcp(self, is_orig: bool, flags: int, seq: int, ack: int, length: int, ts: float) -> None:
        ep = self.orig if is_orig else self.resp
        peer = ep.peer
        seg_len = length + (1 if flags & SYN else 0) + (1 if flags & FIN else 0) - (length if flags & RST else 0)
        past = (seq + seg_len) & MASK32
        self._init_endpoint(ep, flags, seq, past)
        rel_seq = ep.relative(seq, ep.last_seq, ep.seq_wraps)
        self._history(ep, flags, rel_seq, length)
        if not (self.orig.did_close and self.resp.did_close):
            self.last = ts
        if flags & FIN:
            ep.fin_cnt += 1
        if flags & ACK:
            if peer.state == INACTIVE:
                peer.start_seq = (ack - 1) & MASK32
                peer.ack_seq = peer.last_seq = (ack - 1) & MASK32
            elif not flags & RST and peer.relative(ack, peer.ack_seq, peer.ack_wraps) >= 0:
                delta = seq_delta(ack, peer.ack_seq)
                if not (ack == 0 and delta > TOO_LARGE_SEQ_DELTA) and delta > 0:
                    peer.update_ack_seq(ack)
        delta_last = self._update_last_seq(ep, past, flags, length)
        do_close = self._state_machine(ep, peer, flags, seq, ack, length, delta_last, is_orig, ts)
        if do_close:
            self._closed(ep, peer)

    @staticmethod
    def _init_endpoint(ep: Endpoint, flags: int, seq: int, past: int) -> None:
        """init_endpoint: sequence numbering starts at a side's first packet, and restarts on a new SYN."""
        if ep.state == INACTIVE:
            if flags & SYN:
                ep.ack_seq = ep.start_seq = seq
            else:   # picked up mid-stream: numbered as though a SYN came just before
                ep.ack_seq = ep.start_seq = (seq - 1) & MASK32
                past = seq
            ep.last_seq = past
            return
        if not flags & SYN:
            return
        if (ep.state in (SYN_SENT, SYN_ACK_SENT) and seq != ep.start_seq & MASK32) \
                or ep.state in (ESTABLISHED, PARTIAL) or (ep.state == RESET and ep.prev_state == INACTIVE):
            ep.start_seq = ep.ack_seq = seq
            ep.last_seq = past

    def _history(self, ep: Endpoint, flags: int, rel_seq: int, length: int) -> None:
        bits = bool(flags & SYN) + bool(flags & FIN) + bool(flags & RST)
        if bits > 1:
            if flags & FIN and flags & RST:
                self.endpoint_history(ep, HIST_FIN_RST, "I")
            else:
                self.endpoint_history(ep, HIST_MULTI, "Q")
        elif bits == 1:
            if flags & SYN:
                code = "H" if flags & ACK else "S"
                if self.endpoint_history(ep, HIST_SYN, code) and rel_seq != ep.hist_last_syn:
                    self.add_history(code if ep.is_orig else code.lower())
                ep.hist_last_syn = rel_seq
            if flags & FIN:
                if self.endpoint_history(ep, HIST_FIN, "F") and rel_seq + length != ep.hist_last_fin:
                    self.add_history("F" if ep.is_orig else "f")
                ep.hist_last_fin = rel_seq + length
            if flags & RST:
                if self.endpoint_history(ep, HIST_RST, "R") and rel_seq != ep.hist_last_rst:
                    self.add_history("R" if ep.is_orig else "r")
                ep.hist_last_rst = rel_seq
        elif length:
            self.endpoint_history(ep, HIST_DATA, "D")
        elif flags & ACK:
            self.endpoint_history(ep, HIST_ACK, "A")

    def _update_last_seq(self, ep: Endpoint, past: int, flags: int, length: int) -> int:
        delta = seq_delta(past, ep.last_seq)
        if flags & (SYN | RST) and not -TOO_LARGE_SEQ_DELTA <= delta <= TOO_LARGE_SEQ_DELTA:
            pass
        elif flags & FIN and ep.last_seq == (ep.start_seq + 1) & MASK32:
            ep.update_last_seq(past)
        elif ep.state == RESET:
            pass
        elif delta > 0:
            ep.update_last_seq(past)
        elif delta <= 0 and length > 0:
            self._retransmit(ep)
        return delta

    def _retransmit(self, ep: Endpoint) -> None:
        """Session::ScaledHistoryEntry: ``T`` at the 1st, 10th, 100th ... retransmission."""
        ep.rxmt_cnt += 1
        if ep.rxmt_cnt == ep.rxmt_thresh:
            self.add_history("T" if ep.is_orig else "t")
            ep.rxmt_thresh *= 10

    def _state_machine(self, ep: Endpoint, peer: Endpoint, flags: int, seq: int, ack: int, length: int,
                       delta_last: int, is_orig: bool, ts: float) -> bool:
        """TCPSessionAdapter::UpdateStateMachine; returns whether the side closed."""
        state = ep.state
        if state == INACTIVE:
            return self._from_inactive(ep, peer, flags, seq, length, is_orig, ts)
        if state in (SYN_SENT, SYN_ACK_SENT):
            return self._fin_or_rst(ep, flags)
        if state in (ESTABLISHED, PARTIAL):
            if flags & SYN and state == PARTIAL and peer.state == INACTIVE and not flags & ACK:
                ep.set_state(self, SYN_SENT)
            if flags & FIN and not flags & RST and peer.state == RESET and peer.prev_state == CLOSED:
                peer.set_state(self, CLOSED)   # a FIN after the peer's FIN and RST: a normal close after all
            return self._fin_or_rst(ep, flags)
        if state == CLOSED and flags & RST and peer.state != CLOSED:
            ep.set_state(self, RESET)
            self.removal = ts + TCP_RESET_DELAY
            return not ep.did_close
        return False

    def _fin_or_rst(self, ep: Endpoint, flags: int) -> bool:
        """A FIN closes the side, a RST resets it (the RST wins); either closes it for Zeek."""
        if flags & FIN and not (flags & RST and ep.state in (ESTABLISHED, PARTIAL)):
            ep.set_state(self, CLOSED)
        if flags & RST:
            ep.set_state(self, RESET)
        return bool(flags & (FIN | RST))

    def _from_inactive(self, ep: Endpoint, peer: Endpoint, flags: int, seq: int, length: int, is_orig: bool,
                       ts: float) -> bool:
        """UpdateInactiveState: a side's first packet."""
        if flags & SYN:
            if is_orig:
                ep.set_state(self, SYN_ACK_SENT if flags & ACK else SYN_SENT)
                self.attempt_at = ts + TCP_ATTEMPT_DELAY
            else:
                if not flags & ACK and peer.state == SYN_ACK_SENT and seq == ep.start_seq & MASK32:
                    self.flip()   # a SYN/SYN-ACK reversal: this SYN's sender is the originator after all
                    peer.set_state(self, ESTABLISHED)
                if peer.state == SYN_SENT:
                    peer.set_state(self, ESTABLISHED)
                ep.set_state(self, ESTABLISHED)
        close = self._fin_or_rst(ep, flags)
        if ep.state == INACTIVE:
            if not is_orig and length == 0 and self.orig.state == SYN_SENT:
                pass   # an ACK of the SYN before the SYN-ACK: not a partial connection
            elif flags & ACK and peer.state == ESTABLISHED:
                ep.set_state(self, ESTABLISHED)
            else:
                ep.set_state(self, PARTIAL)
        return close

    def _closed(self, ep: Endpoint, peer: Endpoint) -> None:
        """TCPSessionAdapter::ConnectionClosed (without the reassembler's pending-data deferral)."""
        if ep.did_close:
            return
        ep.did_close = True
        if ep.state == RESET or peer.did_close or peer.state == INACTIVE:
            self.removal = self.last + TCP_CLOSE_DELAY

    # -- what conn.log shows ------------------------------------------------------------------------------

    def removal_time(self) -> float:
        """When Zeek's timers would remove the connection, had the capture gone on."""
        if self.removal is not None:
            return self.removal
        if self.transport == TCP and self.orig.state in (SYN_SENT, SYN_ACK_SENT) and self.resp.state == INACTIVE:
            return self.attempt_at
        return self.last + self.inactivity

    def state_names(self) -> tuple[int, int]:
        return self.orig.state, self.resp.state


class LikelyServer:
    """Zeek's likely_server_ports and the role flips of each transport's WantConnection."""

    __slots__ = ("tcp", "udp")

    def __init__(self, tcp: frozenset[int], udp: frozenset[int]) -> None:
        self.tcp, self.udp = tcp, udp

    def flip(self, transport: int, flags: int, sport: int, dport: int) -> bool:
        if transport == TCP:
            if flags & SYN and not flags & ACK:
                return False
            if sport in self.tcp:
                return (not flags & SYN and sport < dport) if dport in self.tcp else True
            return False
        if transport == UDP:
            return sport in self.udp and dport not in self.udp
        return False
