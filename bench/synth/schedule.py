"""The schedule every benchmark capture follows: handshakes, session openings, polling rounds, teardown.

A *traffic* is one protocol's population of flows (see :class:`Traffic`).
A capture mixes traffics with target shares of the packets.  Each round
gives every flow of a traffic an exchange with the traffic's probability
(the densest traffic polls every flow every round); a round's exchanges are
shuffled and written six at a time, their packets interleaved as concurrent
exchanges are on a real network (one flow never has two exchanges in
flight).  The flows do not depend on the packet count: a larger capture has
the same flows with more rounds, which is what the memory check needs.
"""
from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

from .pcap import ACK, FIN, SYN, TCP, Conn, PcapWriter

Packet = tuple[Conn, int, int, bytes]     # connection, direction (0: client to server), TCP flags, payload
CYCLE_US = 250_000                        # one polling round every 250 ms of capture time
GROUP = 6                                 # exchanges in flight at once


@dataclass(slots=True)
class Exchange:
    """The packets of one request/response (or one unsolicited message and its confirmation), and the
    protocol data units they carry as summary keys (counted only once the exchange is written)."""

    packets: list[Packet]
    pdus: list[tuple] = field(default_factory=list)


class Traffic:
    """One protocol's population of flows; subclasses set the flows and write their exchanges."""

    kind: str
    flows: list[Conn]
    round_packets: float      # expected packets when every flow has one exchange
    closing_packets = 0       # packets of one flow's closing exchange (before the FINs)

    def opening(self, c: Conn, rng: random.Random) -> Exchange | None:
        """What a flow does once, after its handshake (session setup); nothing by default."""
        return None

    def exchange(self, c: Conn, rng: random.Random) -> Exchange:
        raise NotImplementedError

    def closing(self, c: Conn, rng: random.Random) -> Exchange | None:
        """What a flow does once before its FINs; nothing by default."""
        return None


@dataclass
class Summary:
    """What a capture holds: packets per flow kind, flows (that sent a packet) per kind, and every PDU
    written, by key."""

    packets: int = 0
    flows: Counter = field(default_factory=Counter)
    kind_packets: Counter = field(default_factory=Counter)
    pdus: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"packets": self.packets, "flows": dict(self.flows), "kind_packets": dict(self.kind_packets),
                "pdu_kinds": len(self.pdus), "pdus": sum(self.pdus.values()), "seconds": self.seconds}


def interleave(exchanges: Iterable[Exchange]) -> Iterator[Packet]:
    """The packets of concurrent exchanges, step by step (each one's first packet, then each one's second...)."""
    for step in zip_longest(*(ex.packets for ex in exchanges)):
        for item in step:
            if item is not None:
                yield item


def probabilities(mix: list[tuple[Traffic, float]]) -> list[float]:
    """Per traffic, the chance that a flow has an exchange in a round, so that packet shares follow the weights."""
    rates = [weight / t.round_packets if t.round_packets else 0.0 for t, weight in mix]
    top = max(rates)
    return [rate / top for rate in rates]


class _Emitter:
    def __init__(self, writer: PcapWriter, summary: Summary) -> None:
        self.writer, self.summary = writer, summary

    def emit(self, exchanges: list[Exchange]) -> None:
        send, kinds = self.writer.send, self.summary.kind_packets
        for c, d, flags, payload in interleave(exchanges):
            send(c, d, flags, payload)
            kinds[c.kind] += 1
            if not c.sent:
                c.sent = True
                self.summary.flows[c.kind] += 1
        for ex in exchanges:
            self.summary.pdus.update(ex.pdus)

    def emit_all(self, exchanges: list[Exchange], rng: random.Random, shuffle: bool = True) -> None:
        if shuffle:
            rng.shuffle(exchanges)
        for i in range(0, len(exchanges), GROUP):
            self.emit(exchanges[i:i + GROUP])


def write_capture(out: str | Path, mix: list[tuple[Traffic, float]], packets: int, rng: random.Random) -> Summary:
    """Write about ``packets`` packets of the traffics in ``mix`` (traffic, share of packets) to ``out``."""
    started = time.perf_counter()
    chances = probabilities(mix)
    flows = [(t, c) for t, _w in mix for c in t.flows]
    tcp = [c for _t, c in flows if c.proto == TCP]
    summary = Summary()
    per_round = sum(p * t.round_packets for p, (t, _w) in zip(chances, mix))
    teardown = 3 * len(tcp) + sum(t.closing_packets for t, _c in flows)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh:
        writer = PcapWriter(fh, rng, max(1, int(CYCLE_US / max(per_round, 1.0))))
        emitter = _Emitter(writer, summary)
        emitter.emit_all([Exchange([(c, 0, SYN, b""), (c, 1, SYN | ACK, b""), (c, 0, ACK, b"")]) for c in tcp], rng)
        emitter.emit_all([ex for t, c in flows if (ex := t.opening(c, rng)) is not None], rng)
        while writer.count + teardown < packets:
            exchanges = [t.exchange(c, rng) for p, (t, _w) in zip(chances, mix) for c in t.flows
                         if p >= 1.0 or rng.random() < p]
            rng.shuffle(exchanges)
            for i in range(0, len(exchanges), GROUP):
                if writer.count + teardown >= packets:
                    break
                emitter.emit(exchanges[i:i + GROUP])
        emitter.emit_all([ex for t, c in flows if (ex := t.closing(c, rng)) is not None], rng)
        emitter.emit_all([Exchange([(c, 0, FIN | ACK, b""), (c, 1, FIN | ACK, b""), (c, 0, ACK, b"")])
                          for c in tcp], rng)
        writer.flush()
    summary.packets = writer.count
    summary.seconds = round(time.perf_counter() - started, 2)
    return summary
