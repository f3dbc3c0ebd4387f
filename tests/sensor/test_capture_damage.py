"""Damaged captures: cut or corrupt gzip, odd pcap versions, impossible clocks. The run goes on, and says where."""
from __future__ import annotations

import gzip
import json
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from otsensor.sensor.capture import CaptureError, open_capture
from tests.sensor.test_capture import pcap_bytes, pcapng_bytes

REPO = Path(__file__).resolve().parents[2]
TS0 = 1_700_000_000


def random_frames(n: int = 400, seed: int = 7) -> list[bytes]:
    """Frames of random bytes: they do not compress away, so a cut can fall anywhere in the gzip stream."""
    rng = random.Random(seed)
    return [bytes(rng.getrandbits(8) for _ in range(rng.randint(60, 300))) for _ in range(n)]


def whole_records_within(frames: list[bytes], size: int) -> int:
    """How many pcap records (after the 24-byte header) lie entirely within the first ``size`` bytes."""
    end, n = 24, 0
    for frame in frames:
        end += 16 + len(frame)
        if end > size:
            break
        n += 1
    return n


def read(path: Path):
    with open_capture(str(path)) as reader:
        got = list(reader)
    return got, reader


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, -8, -3])
def test_a_cut_gzip_keeps_every_packet_before_the_cut_and_says_where(tmp_path, keep):
    frames = random_frames()
    data = gzip.compress(pcap_bytes(1, frames))
    cut = data[:int(len(data) * keep)] if keep > 0 else data[:keep]   # negative: the trailer is (partly) missing
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(cut)
    readable = zlib.decompressobj(31).decompress(cut)   # what zlib itself recovers from the cut stream
    got, reader = read(path)
    assert [f for _, _, f in got] == frames[:whole_records_within(frames, len(readable))]
    assert reader.truncated and str(path) in reader.truncated and "truncated at byte" in reader.truncated
    assert "cut short" in reader.truncated and f"after {len(got)} packets" in reader.truncated


def test_corrupt_deflate_data_keeps_what_came_before_it(tmp_path):
    frames = random_frames()
    data = bytearray(gzip.compress(pcap_bytes(1, frames)))
    damage = len(data) // 2
    data[damage:damage + 64] = bytes(64)   # a run of zeros inside the deflate stream
    path = tmp_path / "corrupt.pcap.gz"
    path.write_bytes(bytes(data))
    intact = zlib.decompressobj(31).decompress(bytes(data[:damage]))
    got, reader = read(path)
    before = whole_records_within(frames, len(intact))
    assert before > 100 and [f for _, _, f in got[:before]] == frames[:before]
    assert reader.truncated and str(path) in reader.truncated and "truncated at byte" in reader.truncated


def test_a_bad_crc_in_the_gzip_trailer_keeps_every_packet_and_warns(tmp_path):
    frames = random_frames(50)
    data = bytearray(gzip.compress(pcap_bytes(1, frames)))
    data[-8] ^= 0x01   # the CRC-32 of the trailer
    path = tmp_path / "crc.pcap.gz"
    path.write_bytes(bytes(data))
    got, reader = read(path)
    assert [f for _, _, f in got] == frames
    assert reader.truncated and "CRC" in reader.truncated and str(path) in reader.truncated


def test_a_cut_gzipped_pcapng_keeps_what_came_before(tmp_path):
    frames = random_frames(200)
    data = gzip.compress(pcapng_bytes([(1, None)], [(0, TS0 * 10**6 + i, f) for i, f in enumerate(frames)]))
    path = tmp_path / "cut.pcapng.gz"
    path.write_bytes(data[:len(data) // 2])
    got, reader = read(path)
    assert 0 < len(got) < len(frames) and [f for _, _, f in got] == frames[:len(got)]
    assert reader.truncated and "truncated at byte" in reader.truncated


def test_concatenated_gzip_members_and_zero_padding_read_as_one_capture(tmp_path):
    frames = random_frames(40)
    whole = pcap_bytes(1, frames)
    path = tmp_path / "members.pcap.gz"
    path.write_bytes(gzip.compress(whole[:1000]) + gzip.compress(whole[1000:]) + bytes(512))
    got, reader = read(path)
    assert [f for _, _, f in got] == frames and reader.truncated is None


@pytest.mark.parametrize("keep", [5, 12, 20])
def test_a_gzip_cut_before_any_capture_header_is_one_clear_error(tmp_path, keep):
    path = tmp_path / "stub.pcap.gz"
    path.write_bytes(gzip.compress(pcap_bytes(1, random_frames(5)))[:keep])
    with pytest.raises(CaptureError) as info:
        read(path)
    assert str(path) in str(info.value) and "gzip" in str(info.value)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300, check=False)


def jsonl(out: Path, log: str) -> list[dict]:
    path = out / f"{log}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("damage", ["cut gzip", "corrupt gzip", "cut pcap"])
def test_a_damaged_middle_file_does_not_stop_the_files_after_it(tmp_path, damage):
    first, third = str(REPO / "pcaps" / "modbus_hmi.pcap"), str(REPO / "pcaps" / "s7_engineering.pcap")
    raw = (REPO / "pcaps" / "dnp3_scada.pcap").read_bytes()
    if damage == "cut pcap":
        middle, content = tmp_path / "middle.pcap", raw[:len(raw) // 2]
    else:
        middle, packed = tmp_path / "middle.pcap.gz", bytearray(gzip.compress(raw))
        if damage == "corrupt gzip":
            packed[len(packed) // 2:len(packed) // 2 + 32] = bytes(32)
        content = bytes(packed if damage == "corrupt gzip" else packed[:len(packed) // 2])
    middle.write_bytes(content)
    proc = cli("analyze", first, str(middle), third, "-o", str(tmp_path / "out"), "-q")
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("otsensor: warning: ") and str(middle) in line and "truncated at byte" in line
    alone = cli("analyze", third, "-o", str(tmp_path / "alone"), "-q")
    assert alone.returncode == 0
    s7 = jsonl(tmp_path / "out", "s7comm")
    assert s7 and len(s7) == len(jsonl(tmp_path / "alone", "s7comm"))   # the third file was read in full
    assert jsonl(tmp_path / "out", "dnp3")                              # and the middle one up to its damage


def pcap_with_version(major: int, minor: int, frames: list[bytes], snaplen_cut: int = 0) -> bytes:
    """A classic pcap with the given version; before 2.3 (and in DG/UX's 543.0) caplen and len are swapped."""
    swapped = (major == 2 and minor < 3) or (major, minor) == (543, 0)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, major, minor, 0, 0, 65535, 1)]
    for i, frame in enumerate(frames):
        orig, frame = len(frame), frame[:len(frame) - snaplen_cut]
        lengths = (orig, len(frame)) if swapped else (len(frame), orig)
        out.append(struct.pack("<IIII", TS0 + i, 0, *lengths) + frame)
    return b"".join(out)


@pytest.mark.parametrize("major,minor", [(2, 4), (2, 3), (2, 7), (3, 0), (0, 0), (2, 2), (543, 0)])
def test_a_pcap_version_other_than_2_4_is_read_with_one_warning(tmp_path, major, minor):
    frames = random_frames(6)
    path = tmp_path / "v.pcap"
    path.write_bytes(pcap_with_version(major, minor, frames, snaplen_cut=10))
    got, reader = read(path)
    assert [f for _, _, f in got] == [f[:-10] for f in frames]
    if (major, minor) == (2, 4):
        assert reader.warnings == []
    else:
        [warning] = reader.warnings
        assert str(path) in warning and f"version {major}.{minor}" in warning


def test_the_version_warning_reaches_the_terminal_once(tmp_path):
    path = tmp_path / "v.pcap"
    raw = bytearray((REPO / "pcaps" / "modbus_hmi.pcap").read_bytes())
    raw[4:8] = struct.pack("<HH", 2, 9)
    path.write_bytes(bytes(raw))
    proc = cli("analyze", str(path), "-o", str(tmp_path / "out"), "-q")
    assert proc.returncode == 0
    [line] = proc.stderr.splitlines()
    assert line.startswith("otsensor: warning: ") and str(path) in line and "version 2.9" in line
    assert jsonl(tmp_path / "out", "modbus")


BAD_TICKS = [(2**64 - 1, 0), (2**64 - 1, None), (300_000_000_000, 0)]   # 2^64-1 s, 2^64-1 us, year 11,476


@pytest.mark.parametrize("ticks,tsresol", BAD_TICKS)
def test_an_impossible_pcapng_clock_keeps_the_packet_with_the_last_good_time(tmp_path, ticks, tsresol):
    frames = random_frames(3)
    scale = 1 if tsresol == 0 else 10**6
    good = [(0, TS0 * scale, frames[0]), (0, ticks, frames[1]), (0, (TS0 + 2) * scale, frames[2])]
    path = tmp_path / "clock.pcapng"
    path.write_bytes(pcapng_bytes([(1, tsresol)], good))
    got, reader = read(path)
    assert [f for _, _, f in got] == frames
    assert [ts for ts, _, _ in got] == [TS0, TS0, TS0 + 2]
    assert reader.bad_timestamps == 1


def test_a_year_9999_clock_is_still_a_clock(tmp_path):
    late = 253_402_300_000   # 9999-12-31: far, but a date every formatter can still write
    path = tmp_path / "late.pcapng"
    path.write_bytes(pcapng_bytes([(1, 0)], [(0, late, random_frames(1)[0])]))
    got, reader = read(path)
    assert got[0][0] == late and reader.bad_timestamps == 0



def test_otsensor_run_on_a_stream_reports_what_the_reader_mended(tmp_path):
    """The same reader serves `otsensor run -r -`: its warnings and its capture anomalies reach the run's output."""
    from tests.sensor.netlab import sensor_command
    raw = bytearray((REPO / "pcaps" / "modbus_hmi.pcap").read_bytes())
    raw[4:8] = struct.pack("<HH", 2, 9)
    packed = gzip.compress(bytes(raw))
    done = subprocess.run(sensor_command("-r", "-", "-o", str(tmp_path / "a"), "-q"),
                          input=packed[:len(packed) * 2 // 3], capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.decode().splitlines() if line.startswith("otsensor: warning:")]
    assert len(warnings) == 2 and "version 2.9" in warnings[0] and "cut short" in warnings[1]
    frames = random_frames(3)
    clocks = pcapng_bytes([(1, 0)], [(0, TS0, frames[0]), (0, 2**64 - 1, frames[1]), (0, TS0 + 1, frames[2])])
    done = subprocess.run(sensor_command("-r", "-", "-o", str(tmp_path / "b"), "-q"), input=clocks,
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["anomalies"] == {"capture.bad_timestamp": 1}
