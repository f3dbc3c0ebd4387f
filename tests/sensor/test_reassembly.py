"""TCP stream reassembly, alone and under the Modbus dissector."""
from __future__ import annotations

import itertools

import pytest

from otsensor.dissectors.base import Direction
from otsensor.dissectors.modbus import ModbusDissector
from otsensor.sensor.flows.reassembly import SEQ_MOD, StreamReassembler

# Two Modbus ADUs: read holding registers request, and a write single register request.
ADU_1 = bytes.fromhex(
    "0001 0000 0006"   # tid 1, protocol 0, length 6
    "01 03 0010 0002"  # unit 1, FC 3, address 16, quantity 2
)
ADU_2 = bytes.fromhex(
    "0002 0000 0006"   # tid 2
    "01 06 0020 00ff"  # unit 1, FC 6, address 32, value 255
)


def deliver(r: StreamReassembler, segments: list[tuple[int, bytes]]) -> list:
    out: list = []
    for seq, data in segments:
        out.extend(r.push(seq, data))
    out.extend(r.flush())
    return out


def joined(items: list) -> bytes:
    return b"".join(i for i in items if isinstance(i, bytes))


def test_in_order_passes_through():
    r = StreamReassembler()
    r.syn(999)
    assert deliver(r, [(1000, b"abc"), (1003, b"def")]) == [b"abc", b"def"]


def test_out_of_order_is_held_until_the_hole_fills():
    r = StreamReassembler()
    r.syn(99)
    assert r.push(103, b"def") == []
    assert r.push(100, b"abc") == [b"abc", b"def"]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_any_arrival_order_gives_the_stream(order):
    chunks = [(100 + 3 * i, bytes([65 + i]) * 3) for i in range(4)]
    r = StreamReassembler()
    r.syn(99)
    assert joined(deliver(r, [chunks[i] for i in order])) == b"AAABBBCCCDDD"


def test_retransmission_is_delivered_once():
    r = StreamReassembler()
    r.syn(0)
    assert joined(deliver(r, [(1, b"hello"), (1, b"hello"), (6, b"world"), (6, b"world")])) == b"helloworld"
    assert r.dup_bytes == 10


def test_overlapping_segment_keeps_first_copy_and_adds_only_new_bytes():
    r = StreamReassembler()
    r.syn(0)
    assert joined(deliver(r, [(1, b"abcd"), (3, b"XXef")])) == b"abcdef"


def test_sequence_wraparound():
    r = StreamReassembler()
    r.syn(SEQ_MOD - 3)
    assert joined(deliver(r, [(SEQ_MOD - 2, b"ab"), (0, b"cd")])) == b"abcd"


def test_lost_segment_becomes_a_gap_at_flush():
    r = StreamReassembler()
    r.syn(0)
    out = deliver(r, [(1, b"aaaa"), (9, b"cccc")])
    assert out == [b"aaaa", 4, b"cccc"]
    assert r.gaps == 1 and r.gap_bytes == 4


def test_buffer_cap_forces_a_gap_and_bounds_memory():
    r = StreamReassembler(max_bytes=10, max_segments=100)
    r.syn(0)
    r.push(1, b"a")
    out = []
    for i in range(5):  # the segment at 2 never arrives
        out.extend(r.push(3 + 4 * i, b"bbbb"))
    assert 1 in out  # the one-byte hole was given up
    assert r.pending_bytes <= 10


def test_mid_stream_pickup_starts_at_first_segment():
    r = StreamReassembler()
    assert r.push(5000, b"xyz") == [b"xyz"]
    assert r.push(5003, b"!") == [b"!"]


def feed_segments(segments: list[tuple[int, bytes]]) -> list[dict]:
    r = StreamReassembler()
    r.syn(0)
    d = ModbusDissector()
    records = []
    for item in deliver(r, segments):
        if isinstance(item, int):
            records += d.gap(Direction.ORIG, item, 1.0)
        else:
            records += d.feed(item, Direction.ORIG, 1.0)
    records += d.close(2.0)
    return [rec.to_dict() for rec in records if rec.LOG == "modbus"]


@pytest.mark.parametrize("cut", range(1, len(ADU_1)))
def test_adu_split_at_every_byte(cut):
    got = feed_segments([(1, ADU_1[:cut]), (1 + cut, ADU_1[cut:])])
    assert [(g["tid"], g["func"], g["address"], g["quantity"]) for g in got] == [(1, "READ_HOLDING_REGISTERS", 16, 2)]


def test_two_adus_in_one_segment():
    got = feed_segments([(1, ADU_1 + ADU_2)])
    assert [(g["tid"], g["func"]) for g in got] == [(1, "READ_HOLDING_REGISTERS"), (2, "WRITE_SINGLE_REGISTER")]


def test_out_of_order_retransmitted_and_overlapping_adus():
    stream = ADU_1 + ADU_2
    segments = [(1 + 12, stream[12:]), (1, stream[:8]), (1, stream[:8]), (1 + 5, stream[5:14])]
    got = feed_segments(segments)
    assert [(g["tid"], g["func"]) for g in got] == [(1, "READ_HOLDING_REGISTERS"), (2, "WRITE_SINGLE_REGISTER")]


def test_lost_segment_then_resynchronisation_on_next_header():
    third = bytes.fromhex("0003 0000 0006 01 01 0000 0008")
    stream = ADU_1 + ADU_2 + third
    # the middle of ADU_2 is lost: bytes [14, 18) never arrive
    got = feed_segments([(1, stream[:14]), (1 + 18, stream[18:])])
    tids = [g["tid"] for g in got]
    assert tids[0] == 1 and tids[-1] == 3
    assert 2 not in tids


def test_peer_ack_past_a_hole_declares_the_gap_at_once():
    r = StreamReassembler()
    r.syn(0)
    assert r.push(1, b"aaaa") == [b"aaaa"]
    assert r.push(9, b"cccc") == []          # bytes 5..8 missed by the mirror port
    assert r.acked(5) == []                   # the peer has only what we have: wait
    assert r.acked(13) == [4, b"cccc"]        # the peer has everything: the hole will never fill
    assert r.pending == {} and r.gaps == 1


def test_ack_inside_the_hole_skips_only_what_was_acknowledged():
    r = StreamReassembler()
    r.syn(0)
    r.push(1, b"a")
    r.push(10, b"z")
    assert r.acked(5) == [3]                  # bytes 2..4 acknowledged, never seen
    assert r.next_seq == 5 and 10 in r.pending


def test_requests_stay_before_their_responses_when_a_request_segment_is_lost(tmp_path):
    from tests.sensor.test_flows import rows, run
    from scapy.all import IP, TCP, Ether, Raw  # type: ignore
    req = [bytes.fromhex(f"{tid:04x} 0000 0006 01 03 0000 0001") for tid in range(1, 6)]
    resp = [bytes.fromhex(f"{tid:04x} 0000 0005 01 03 02 00{tid:02x}") for tid in range(1, 6)]
    c, s = dict(src="10.0.0.1", dst="10.0.0.2"), dict(src="10.0.0.2", dst="10.0.0.1")
    pkts, cseq, sseq = [], 1, 1
    for i in range(5):
        if i != 1:  # the mirror port missed the second request, but the server got it and answered
            pkts.append(IP(**c) / TCP(sport=40000, dport=502, flags="PA", seq=cseq, ack=sseq) / Raw(req[i]))
        cseq += 12
        pkts.append(IP(**s) / TCP(sport=502, dport=40000, flags="PA", seq=sseq, ack=cseq) / Raw(resp[i]))
        sseq += 11
    frames = []
    for i, p in enumerate(pkts):
        f = Ether() / p
        f.time = 100.0 + i * 0.1
        frames.append(f)
    _, out = run(tmp_path, frames)
    recs = rows(out, "modbus")
    assert sorted((r["tid"], r["matched"]) for r in recs) == [(1, True), (2, False), (3, True), (4, True), (5, True)]


def test_shared_budget_bounds_what_all_streams_hold_together():
    from otsensor.sensor.flows.reassembly import Budget
    budget = Budget(limit=1000)
    streams = [StreamReassembler(max_bytes=10_000, budget=budget) for _ in range(20)]
    for r in streams:
        r.syn(0)
        r.push(1, b"a")
        for i in range(10):  # the byte at 2 never arrives: every stream holds data behind a hole
            r.push(3 + 100 * i, b"b" * 100)
    assert budget.used <= 1000 + 100 and budget.exceeded > 0
    for r in streams:
        r.flush()
    assert budget.used == 0
