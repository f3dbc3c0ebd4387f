"""Network namespaces, veth pairs and processes for the live-capture tests (real kernel, iproute2).

Every name is unique to this test process (several engineers share the
machine), every address is in 127.0.0.0/8 (route_localnet lets it cross a
veth inside namespaces the test made), and :meth:`Lab.close` removes every
namespace, and with it every link and process address in it, even when the
test failed.  A test that cannot have namespaces skips with the reason.
"""
from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_serial = itertools.count()


def require_namespaces() -> None:
    """Skip unless this process may create network namespaces."""
    if os.geteuid() != 0:
        pytest.skip("live capture tests need root (network namespaces, AF_PACKET)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    probe = f"otsprobe{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"ip netns is unavailable: {done.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done


class Lab:
    """The namespaces and processes of one test."""

    def __init__(self) -> None:
        self.serial = next(_serial)
        self.prefix = f"ots{os.getpid()}x{self.serial}"
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []

    def namespace(self, role: str) -> str:
        """A fresh namespace that sends nothing by itself: no IPv6 (no router solicitations, no DAD)."""
        name = f"{self.prefix}-{role}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
           "net.ipv6.conf.default.disable_ipv6=1", "net.ipv4.conf.all.route_localnet=1",
           "net.ipv4.conf.default.route_localnet=1")
        return name

    def veth(self, ns_a: str, name_a: str, ns_b: str, name_b: str, mtu: int = 1500) -> None:
        """A veth pair from ``name_a`` in ``ns_a`` to ``name_b`` in ``ns_b``, both up."""
        sh("ip", "link", "add", name_a, "netns", ns_a, "mtu", str(mtu), "type", "veth", "peer", "name", name_b,
           "netns", ns_b, "mtu", str(mtu))
        for ns, name in ((ns_a, name_a), (ns_b, name_b)):
            sh("ip", "-n", ns, "link", "set", name, "up")

    def address(self, ns: str, ifname: str, cidr: str) -> None:
        sh("ip", "-n", ns, "addr", "add", cidr, "dev", ifname)

    def hub(self, ns: str, ports: list[str]) -> None:
        """A bridge that learns nothing (ageing 0), so it floods every frame to every port: a mirror port."""
        # no multicast snooping: its IGMP queries would be traffic of the lab itself, at random times
        sh("ip", "-n", ns, "link", "add", "hub0", "type", "bridge", "ageing_time", "0", "mcast_snooping", "0")
        for port in ports:
            sh("ip", "-n", ns, "link", "set", port, "master", "hub0")
        sh("ip", "-n", ns, "link", "set", "hub0", "up")

    def spawn(self, ns: str, *cmd: str, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], **kwargs)
        self.processes.append(proc)
        return proc

    def run(self, ns: str, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout)

    def link_stats(self, ns: str, ifname: str) -> dict:
        """The interface's counters (``rx``/``tx`` packets and bytes) and its promiscuity count and flags."""
        info = json.loads(sh("ip", "-n", ns, "-s", "-d", "-j", "link", "show", ifname).stdout)[0]
        return {"rx": info["stats64"]["rx"], "tx": info["stats64"]["tx"], "promiscuity": info.get("promiscuity"),
                "flags": info.get("flags", [])}

    def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def lab():
    require_namespaces()
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


def frames_in(pcap: Path) -> int:
    """How many frames a capture holds (by the sensor's own reader): tests send and count them."""
    from otsensor.sensor.capture import open_capture
    with open_capture(str(pcap)) as reader:
        return sum(1 for _ in reader)


def sensor_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "otsensor.sensor.cli", "run", *args]


def start_sensor(lab: Lab, ns: str, outdir: Path, *args: str) -> subprocess.Popen:
    """``otsensor run ARGS -o OUTDIR`` in ``ns``; returns once its capture is open (stats.json written)."""
    proc = lab.spawn(ns, *sensor_command(*args, "-o", str(outdir), "-q"), stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (outdir / "stats.json").exists() or proc.poll() is not None, 30, "the sensor to start")
    if proc.poll() is not None:
        raise AssertionError(f"otsensor run exited {proc.returncode}: {proc.stderr.read()}")
    return proc


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str, str, float]:
    """Signal ``proc`` and wait; returns (exit status, stdout, stderr, seconds it took to exit)."""
    started = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out or "", err or "", time.monotonic() - started


def start_tcpdump(lab: Lab, ns: str, ifname: str, path: Path, *filter_: str, count: int | None = None
                  ) -> subprocess.Popen:
    """tcpdump on the same interface, nanosecond timestamps, returning once it is listening.

    With ``count`` it exits by itself once it has written that many frames (see :func:`wait_for_tcpdump`):
    stopped by a signal instead, it would lose the frames it had not read from its ring yet."""
    tcpdump = require_tool("tcpdump")
    proc = lab.spawn(ns, tcpdump, "-i", ifname, *tcpdump_options(count), "--time-stamp-precision=nano",
                     "-w", str(path), *filter_, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if "listening" not in line:
        raise AssertionError(f"tcpdump did not start: {line}{proc.stderr.read() if proc.poll() is not None else ''}")
    return proc


def tcpdump_options(count: int | None) -> list[str]:
    """Not promiscuous (the sensor asks for that), packet-buffered output, a 32 MiB ring.

    Without ``count`` (stopped by a signal): immediate mode, so that each frame is read as it comes.
    libpcap then uses a TPACKET_V2 ring of fixed-size slots as large as the snap length, a few dozen frames
    for all its megabytes, which a tcpdump that gets no CPU for some milliseconds overruns.  With
    ``count`` (``-c``: it exits by itself): the default TPACKET_V3 ring, where frames are packed one after
    another, so a descheduled tcpdump loses nothing; blocks then reach it when full or after its timeout.
    """
    if count is None:
        return ["-p", "-U", "-B", "32768", "--immediate-mode"]
    return ["-p", "-U", "-B", "32768", "-c", str(count)]


def wait_for_tcpdump(proc: subprocess.Popen, count: int, timeout: float = 60) -> None:
    """Wait for ``tcpdump -c COUNT`` to exit on its own: every frame sent has then passed the interface's
    capture taps (every capture socket on it has its copy).  Skips when the kernel dropped frames for it."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"tcpdump saw fewer than {count} frames in {timeout}s: {err!r}") from None
    text = err.decode(errors="replace") if isinstance(err, bytes) else err
    skip_on_kernel_drops("tcpdump", int(m[1]) if (m := re.search(r"(\d+) packets? dropped by kernel", text)) else 0)


def skip_on_kernel_drops(who: str, dropped: int) -> None:
    """A comparison of two captures means nothing when one of them lost frames: the kernel dropping frames
    for a socket whose process got no CPU in time (a heavily loaded host) is not the sensor's fault."""
    if dropped:
        pytest.skip(f"the kernel dropped {dropped} frame(s) for {who} (host too loaded to compare captures)")


def wait_for_stats(outdir: Path, ready, seconds: float, what: str) -> dict:
    """Wait until the sensor's stats.json satisfies ``ready`` (start it with a short --stats-interval)."""
    found: dict = {}

    def check() -> bool:
        nonlocal found
        try:
            found = json.loads((outdir / "stats.json").read_text())
        except (OSError, ValueError):
            return False
        return ready(found)
    wait_for(check, seconds, what)
    return found


def wait_for(ready, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        time.sleep(0.05)


def analyze_offline(pcap: Path, outdir: Path) -> None:
    """`otsensor analyze PCAP -o OUTDIR`, which must succeed."""
    done = subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "analyze", str(pcap), "-o", str(outdir), "-q"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def jsonl_logs(outdir: Path) -> dict[str, list[str]]:
    """Every JSONL log of an output directory, as lists of lines: a log that `otsensor run` rotated (a test
    that crossed the hour) is its rotated files, oldest first, then its plain file."""
    logs: dict[str, list[str]] = {}
    for p in sorted(outdir.glob("*.jsonl.gz")):
        logs.setdefault(p.name.split(".")[0] + ".jsonl", []).extend(gzip.decompress(p.read_bytes()).decode().splitlines())
    for p in sorted(outdir.glob("*.jsonl")):
        logs.setdefault(p.name, []).extend(p.read_text().splitlines())
    return logs


REPLAY_TIMES = frozenset({"ts", "response_ts", "first_ts", "last_ts", "duration", "rtt", "first_seen", "last_seen"})


def assert_same_outputs(live_dir: Path, offline_dir: Path, tolerance: float = 0.0,
                        skip: frozenset[str] = frozenset()) -> None:
    """Every JSONL log, the inventory and the graph of two runs are the same, line for line.

    With a ``tolerance``, numbers may differ by that much (timestamps taken by two capture sockets); fields
    named in ``skip`` are not compared (REPLAY_TIMES: a replay has its own clock).  With either, connection
    uids and alert ids (derived from timestamps) may differ, consistently, one for one.
    """
    live, offline = jsonl_logs(live_dir), jsonl_logs(offline_dir)
    assert sorted(live) == sorted(offline)
    same = _Same(tolerance, skip)
    for name in live:
        assert len(live[name]) == len(offline[name]), name
        for a, b in zip(live[name], offline[name]):
            same(json.loads(a), json.loads(b), name)
    for name in ("assets.json", "graph.json"):
        same(json.loads((live_dir / name).read_text()), json.loads((offline_dir / name).read_text()), name)


class _Same:
    def __init__(self, tolerance: float, skip: frozenset[str]) -> None:
        self.tolerance = tolerance
        self.skip = skip
        self.loose = bool(tolerance or skip)
        self.ids: dict[str, str] = {}

    def __call__(self, a, b, where: str) -> None:
        key = where.rsplit(".", 1)[-1]
        if key in self.skip:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            assert list(a) == list(b), where
            for k in a:
                self(a[k], b[k], f"{where}.{k}")
        elif isinstance(a, list) and isinstance(b, list):
            assert len(a) == len(b), where
            for x, y in zip(a, b):
                self(x, y, where)
        elif self.loose and key in ("uid", "id"):   # a connection's uid, an alert's id
            assert self.ids.setdefault(a, b) == b, f"{where}: {a} is already {self.ids[a]}, not {b}"
        elif self.tolerance and isinstance(a, float | int) and isinstance(b, float | int):
            assert abs(a - b) <= self.tolerance, f"{where}: {a} != {b}"
        else:
            assert a == b, f"{where}: {a!r} != {b!r}"
