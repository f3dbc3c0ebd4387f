"""The graph's address ranges have a budget: a client reading scattered addresses of many data blocks (a scan,
or hostile traffic) cannot make an edge hold 256 spaces x 256 intervals, and what is kept stays true."""
from __future__ import annotations

import json

from bench.synth.s7 import JOB, READ_VAR, SETUP, SETUP_PARAM, ack_data, data_items, job, var_param
from otsensor.baselines.graph import MAX_EDGE_INTERVALS, CommGraph
from otsensor.baselines.ranges import covers
from otsensor.dissectors.base import Category, Op, Record
from tests.baselines.replay import Segment, analyze_capture, session, write

BYTE = 0x02          # transport size BYTE; its answer's data transport size is BYTE/WORD/DWORD (0x04)
DB_AREA = 0x84
BLOCKS, ADDRESSES_PER_BLOCK, ITEMS_PER_JOB = 64, 80, 16   # 5,120 intervals apart, past the 4,096 of an edge
COTP_CR = b"\x03\x00\x00\x16\x11\xe0\x00\x00\x00\x01\x00\xc1\x02\x01\x00\xc2\x02\x01\x02\xc0\x01\x0a"
COTP_CC = b"\x03\x00\x00\x16\x11\xd0\x00\x01\x40\x01\x00\xc0\x01\x0a\xc1\x02\x01\x00\xc2\x02\x01\x02"


def scattered_reads() -> list[tuple[int, int]]:
    """(DB, byte address): every tenth byte of each block, so that no two reads touch."""
    return [(db, 10 * k) for db in range(1, BLOCKS + 1) for k in range(ADDRESSES_PER_BLOCK)]


def s7_session_reading(reads: list[tuple[int, int]]) -> list[Segment]:
    setup = SETUP_PARAM.pack(SETUP, 0, 1, 1, 480)
    segments = [Segment(1.0, True, COTP_CR), Segment(1.001, False, COTP_CC),
                Segment(1.002, True, job(1, setup)), Segment(1.003, False, ack_data(1, setup))]
    for n, first in enumerate(range(0, len(reads), ITEMS_PER_JOB)):
        items = [(DB_AREA, BYTE, 1, db, address << 3) for db, address in reads[first:first + ITEMS_PER_JOB]]
        ref, ts = n + 2, 1.01 + n * 0.01
        segments.append(Segment(ts, True, job(ref, var_param(READ_VAR, items))))
        answer = data_items([(0xFF, 0x04, bytes((k,))) for k in range(len(items))])
        segments.append(Segment(ts + 0.002, False, ack_data(ref, bytes((READ_VAR, len(items))), answer)))
    return segments


def test_an_edge_keeps_at_most_its_budget_of_intervals_and_they_stay_true(tmp_path):
    reads = scattered_reads()
    pcap = write(tmp_path / "scan.pcap", session(s7_session_reading(reads), ("10.0.0.9", 40000), ("10.0.0.1", 102)))
    result = analyze_capture(pcap, tmp_path / "out")
    stats = result["result"].stats
    assert stats["records"]["s7comm"] == len(reads) // ITEMS_PER_JOB + 1 and not stats["anomalies"]
    graph = json.loads((tmp_path / "out" / "graph.json").read_text())
    (edge,) = [e for e in graph["edges"] if e["protocol"] == "s7comm"]
    spaces = edge["ranges_read"]
    assert sum(len(intervals) for intervals in spaces.values()) == MAX_EDGE_INTERVALS
    # the blocks met before the budget ran out are kept; none is opened after it
    assert len(spaces) < BLOCKS and all(f"DB{db}" in spaces for db in range(1, len(spaces) + 1))
    # past the budget an address widens an interval rather than being dropped: every read of a kept block
    # is covered
    assert all(covers(spaces[f"DB{db}"], address) for db, address in reads if f"DB{db}" in spaces)
    # up to the budget each read is an interval of its own, as precise as before
    assert spaces["DB1"] == [[address, address] for _db, address in reads[:ADDRESSES_PER_BLOCK]]


class Conn:
    """What the graph reads of a connection."""

    def __init__(self, uid: str, orig_h: str, resp_h: str) -> None:
        self.uid, self.orig_h, self.resp_h, self.service = uid, orig_h, resp_h, "enip"


def test_an_op_repeated_on_a_connection_counts_as_equal_copies_of_it_do():
    """The graph keeps each connection's edge and last Op: the same Op object again only counts. Fed the same
    objects again, or equal copies (which it cannot take for repeats), it must end the same, past the
    interval budget too (there add_within widens intervals and lowers a set's cap, even for a held range)."""
    def copy(op: Op) -> Op:
        return Op(op.protocol, op.function, op.category, op.space, op.start, op.count, op.values, op.ok, op.tags)

    conns = [Conn("C1", "10.0.0.9", "10.0.0.1"), Conn("C2", "10.0.0.9", "10.0.0.1")]   # two, on one edge
    ops = [Op("cip", "Read Tag", Category.READ, f"Tag{space}", 3 * n, 1, ok=n % 5 != 0)
           for space in range(24) for n in range(256)]   # 6,144 intervals apart on one edge: past 4,096
    graphs = (CommGraph(), CommGraph())
    for i, op in enumerate(ops):
        for repeat in range(3):
            for graph, same in zip(graphs, (True, False)):
                graph.observe_record(conns[i % 2], Record(1.0 + i + repeat / 4), op if same else copy(op), None)
    same_objects, copies = ({key: e.to_attrs() for key, e in graph.edges.items()} for graph in graphs)
    assert same_objects == copies
    edge = graphs[0].edges[("10.0.0.9", "10.0.0.1", "enip")]
    assert sum(map(len, edge.read.values())) <= MAX_EDGE_INTERVALS and len(edge.read) < 24   # the budget was met
    assert edge.functions == {"Read Tag": 3 * len(ops)}
    assert edge.exceptions == 3 * sum(1 for op in ops if op.ok is False)
