"""Shared capture helper for the pcap generators: tcpdump on ``lo`` while a block runs.

Usage::

    from capture import capture   # the generators run as scripts from pcaps/generator/

    with capture("pcaps/x.pcap", ["127.10.1.10", "127.10.1.20"], ports=[502]) as cap:
        ...  # talk between those loopback addresses
    print(cap.summary())       # "x.pcap: 42 packets captured, 0 dropped by kernel, ..."

What it guarantees, and why:

* It starts ``tcpdump -i lo --immediate-mode -U -s 0 -w FILE <filter>`` and
  returns only once tcpdump says ``listening on lo`` (printed after the capture
  socket is open and the filter attached), so the first packets are not lost.  A fixed sleep is either too short on a loaded machine or wasteful.
* ``--immediate-mode`` matters: without it Linux hands packets to tcpdump a
  ring-buffer block at a time (up to a 1 s timeout), and packets still in the
  block when SIGINT arrives are counted "received by filter" but never written.
* On exit it waits until the pcap stops growing (``-U`` writes each packet as
  it arrives, so a quiet file means tcpdump has caught up with the traffic),
  then stops tcpdump with SIGINT, which makes it flush and close the file, and
  waits for it to exit.  The pcap is therefore complete; tcpdump's own
  "captured / dropped by kernel" counts are parsed and kept on the object.
* If tcpdump fails to start (not root, bad filter), :class:`CaptureFailed` says
  so with tcpdump's message instead of the session running uncaptured.

Needs root (or CAP_NET_RAW) for tcpdump.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


class CaptureFailed(RuntimeError):
    """tcpdump did not start, or did not stop cleanly."""


def bpf_filter(addresses: Iterable[str], ports: Iterable[int] = ()) -> str:
    """``(host A or host B) and (port P or port Q)``; only traffic of the listed addresses (and ports)."""
    hosts = " or ".join(f"host {a}" for a in addresses)
    if not hosts:
        raise ValueError("capture needs at least one address")
    expr = f"({hosts})"
    port_expr = " or ".join(f"port {int(p)}" for p in ports)
    return f"{expr} and ({port_expr})" if port_expr else expr


@dataclass
class Capture:
    """A running (then finished) tcpdump; counts are filled in when it stops."""

    path: Path
    bpf: str
    packets_captured: int | None = None
    packets_dropped: int | None = None
    stderr_lines: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.path.name}: {self.packets_captured} packets captured, "
                f"{self.packets_dropped} dropped by kernel, {self.path.stat().st_size} bytes")


def _read_stderr(proc: subprocess.Popen, lines: list[str], ready: threading.Event) -> None:
    assert proc.stderr is not None
    for raw in proc.stderr:
        line = raw.decode(errors="replace").rstrip()
        lines.append(line)
        if "listening on" in line:
            ready.set()
    ready.set()  # tcpdump exited: wake the waiter, which then sees the exit status


def _wait_until_quiet(path: Path, quiet_s: float, max_s: float) -> None:
    """Return once the file has not grown for ``quiet_s`` seconds (or ``max_s`` passed)."""
    deadline = time.monotonic() + max_s
    last = -1
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else 0
        if size != last:
            last, stable_since = size, time.monotonic()
        elif time.monotonic() - stable_since >= quiet_s:
            return
        time.sleep(0.05)


def _count(lines: list[str], what: str) -> int | None:
    for line in lines:
        match = re.match(rf"(\d+) packets? {what}", line)
        if match:
            return int(match.group(1))
    return None


@contextlib.contextmanager
def capture(path: str | os.PathLike, addresses: Iterable[str], ports: Iterable[int] = (),
            interface: str = "lo", ready_timeout: float = 10.0, quiet_s: float = 0.5) -> Iterator[Capture]:
    """Capture the traffic of ``addresses`` (optionally only ``ports``) into ``path`` while the block runs."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    cap = Capture(out, bpf_filter(addresses, ports))
    command = ["tcpdump", "-i", interface, "--immediate-mode", "-U", "-s", "0", "-n", "-w", str(out), cap.bpf]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ready = threading.Event()
    reader = threading.Thread(target=_read_stderr, args=(proc, cap.stderr_lines, ready), daemon=True)
    reader.start()
    if not ready.wait(ready_timeout) or proc.poll() is not None:
        _stop(proc)
        reader.join(timeout=5)
        raise CaptureFailed(f"tcpdump did not start: {' / '.join(cap.stderr_lines) or 'no output'}")
    try:
        yield cap
    finally:
        _wait_until_quiet(out, quiet_s, max_s=10.0)
        code = _stop(proc)
        reader.join(timeout=5)
        cap.packets_captured = _count(cap.stderr_lines, "captured")
        cap.packets_dropped = _count(cap.stderr_lines, "dropped by kernel")
        if code not in (0, -signal.SIGINT):
            raise CaptureFailed(f"tcpdump exited with {code}: {' / '.join(cap.stderr_lines)}")


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGINT (tcpdump flushes and closes the file), then wait; kill only if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise CaptureFailed("tcpdump did not stop on SIGINT; killed it (the pcap may be incomplete)") from None
    return proc.returncode
