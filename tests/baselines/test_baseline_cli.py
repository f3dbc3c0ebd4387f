"""`baseline learn` and `zones suggest` never write a document from zero packets.

A baseline learned from nothing would make a later run call every asset new, and an empty
draft would replace a reviewed zones file: one error line, exit status 2, nothing written,
and a file already at the output path left as it was.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from scapy.all import wrpcap  # type: ignore

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"


def otsensor(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def unreadable(tmp_path: Path, kind: str) -> list[Path]:
    if kind == "missing":
        return [tmp_path / "no-such.pcap"]
    if kind == "not a capture":
        (tmp_path / "notes.pcap").write_text("operator notes, not a capture\n")
        return [tmp_path / "notes.pcap"]
    if kind == "no packets":
        wrpcap(str(tmp_path / "empty.pcap"), [])
        return [tmp_path / "empty.pcap"]
    (tmp_path / "notes.pcap").write_text("operator notes\n")
    return [tmp_path / "no-such.pcap", tmp_path / "notes.pcap"]


KINDS = ["missing", "not a capture", "no packets", "several"]
COMMANDS = {"baseline": ("baseline", "learn"), "zones": ("zones", "suggest")}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_nothing_is_written_from_zero_packets(tmp_path, command, kind):
    out = tmp_path / "out.doc"
    proc = otsensor(*COMMANDS[command], *unreadable(tmp_path, kind), "-o", out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("otsensor: error: no packets read"), lines
    assert str(out) in lines[0] and "not written" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_existing_document_is_left_untouched(tmp_path, command):
    out = tmp_path / "out.doc"
    assert otsensor(*COMMANDS[command], PCAPS / "modbus_hmi.pcap", "-o", out).returncode == 0
    before = (out.read_bytes(), out.stat().st_mtime_ns)
    proc = otsensor(*COMMANDS[command], *unreadable(tmp_path, "not a capture"), "-o", out)
    assert proc.returncode == 2
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before


def test_a_readable_capture_beside_an_unreadable_one_is_still_learned(tmp_path):
    out = tmp_path / "base.json"
    proc = otsensor("baseline", "learn", PCAPS / "modbus_hmi.pcap", tmp_path / "no-such.pcap", "-o", out)
    assert proc.returncode == 2 and proc.stderr.count("otsensor: error:") == 1 and "no-such.pcap" in proc.stderr
    assert out.exists() and '"127.10.1.10"' in out.read_text()
