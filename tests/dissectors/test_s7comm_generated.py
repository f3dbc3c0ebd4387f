"""The generated captures contain what the generator (pcaps/generator/s7.py) asked the stacks to do.

Expectations are the generator's script, written down independently of the dissector: each
client call and the operation it must show up as (op category, address space, tags).
"""
from __future__ import annotations

import socket
from collections import Counter

from otsensor.dissectors.base import Category, Tag
from otsensor.dissectors.s7comm.records import S7commRecord
from tests.dissectors.s7comm_support import PCAPS, run_capture


def _ops(name: str) -> list:
    return [(socket.inet_ntoa(c[0]), r.op()) for c, r in run_capture(PCAPS / name) if isinstance(r, S7commRecord)]


def test_hmi_reads_and_writes_every_area() -> None:
    ops = _ops("s7_hmi.pcap")
    assert {ip for ip, _ in ops} == {"127.10.1.20"}
    reads = Counter(op.space for _, op in ops if op.category == Category.READ and op.function == "Read Var")
    writes = Counter(op.space for _, op in ops if op.category == Category.WRITE)
    # db_read DB1, mb_read, eb_read, ab_read, tm_read, ct_read, the 5-item read (first item I after the
    # optimizer's ordering), and the read of unregistered DB9
    assert {"DB1", "M", "I", "Q", "T", "C", "DB9"} <= set(reads)
    # db_write, mb_write, ab_write, tm_write, ct_write, then write_multi_vars: DB1, M, Q one by one
    assert writes == Counter({"DB1": 2, "M": 2, "Q": 2, "T": 1, "C": 1})
    multi = [r for _, r in run_capture(PCAPS / "s7_hmi.pcap") if isinstance(r, S7commRecord) and (r.item_count or 0) > 1]
    assert len(multi) == 1 and multi[0].item_count == 5 and multi[0].matched
    failed = [op for _, op in ops if op.ok is False]
    assert [op.space for op in failed] == ["DB9"]             # unregistered DB: item return code 0x0a


def test_engineering_session_operations() -> None:
    ops = [op for ip, op in _ops("s7_engineering.pcap")]
    tags = Counter(tag for op in ops for tag in op.tags)
    assert tags[Tag.PLC_STOP] == 2 and tags[Tag.PLC_START] == 2           # stop, hot start, stop, cold start
    assert tags[Tag.PROGRAM_UPLOAD] == 3 and tags[Tag.PROGRAM_DOWNLOAD] == 3
    assert tags[Tag.PROGRAM_DELETE] == 1 and tags[Tag.CLOCK_SET] == 1
    assert tags[Tag.IDENTITY_READ] == 5           # SZL 0x0011, 0x001C, order code, CPU info, CPU state (0x0424)
    downloads = {(op.space, op.start) for op in ops if Tag.PROGRAM_DOWNLOAD in op.tags}
    assert downloads == {("DB", 2)}
    uploads = [op for op in ops if op.function == "Start upload"]
    assert [(op.space, op.start) for op in uploads] == [("DB", 1)]
    starts = [r.to_dict().get("start_type") for _, r in run_capture(PCAPS / "s7_engineering.pcap")
              if isinstance(r, S7commRecord) and r.to_dict().get("pi_service") == "P_PROGRAM"
              and r.function_code == "0x28"]
    assert starts == ["hot", "cold"]
