"""`otsensor run`'s settings: every command-line option is also a key of the configuration file.

``[capture]`` holds the source (interfaces or a stream, filter, ring), ``[run]`` the process and its
outputs, ``[detection] learn`` the learning period of ``--learn``; the key is the option's long name
with ``_`` for ``-`` (``--ring-block-size`` is ``[capture] ring_block_size``, ``-i`` is
``[capture] interfaces``).  The command line overrides the file,
the file overrides the built-in defaults.  Sizes may carry a binary suffix (``"20G"``: 20 GiB), durations a
unit (``"90s"``, ``"15m"``, ``"1h"``, ``"7d"``).  Both sections are declared for the one schema validator
(baselines/schema.py), so a typo is one error line with a did-you-mean, like every other section.
"""
from __future__ import annotations

import argparse
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable

from otsensor.baselines.schema import (
    BOOLEAN, INTEGER, NUMBER, STRING, Check, Key, Section, Type, at_least, either, list_of, parses,
)
from otsensor.sensor.cli import positive

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", re.IGNORECASE)
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SECONDS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_size(value: int | str) -> int:
    """Bytes from ``20G``, ``512M``, ``64KiB`` or a whole number (binary units: 1K = 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(value)
        return value
    m = _SIZE.fullmatch(str(value))
    if m is None:
        raise ValueError(value)
    return int(float(m[1]) * _UNITS[m[2].lower()])


def parse_duration(value: float | int | str) -> float:
    """Seconds from a number of seconds or ``90s``, ``15m``, ``1h``, ``7d``, ``250ms``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(value)
        return float(value)
    m = _DURATION.fullmatch(str(value))
    if m is None:
        raise ValueError(value)
    return float(m[1]) * _SECONDS[m[2]]


def parse_endpoint(value: str) -> tuple[str, int]:
    """``HOST:PORT`` on a loopback address (``127.0.0.1:9108``, ``[::1]:9108``, ``localhost:9108``)."""
    host, sep, port = str(value).rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(value)
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(value)
    return host, int(port)


size_arg = positive(parse_size, "a size (bytes, or with K, M, G or T)")
duration_arg = positive(parse_duration, "a duration (seconds, or with s, m, h or d)")


def endpoint_arg(text: str) -> tuple[str, int]:
    try:
        return parse_endpoint(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a loopback HOST:PORT such as 127.0.0.1:9108, not {text!r}") \
            from None


def _above_zero(parse: Callable[[Any], float], expected: str) -> Check:
    def check(value: Any) -> str | None:
        try:
            ok = parse(value) > 0
        except ValueError:
            ok = False
        return None if ok else f"expected {expected}, not {value!r}"
    return check


SIZE = Key(either(INTEGER, STRING), _above_zero(parse_size, 'a size such as 1048576 or "20G"'))
DURATION = Key(either(NUMBER, STRING), _above_zero(parse_duration, 'a duration such as 60 or "1h"'))
COUNT = Key(INTEGER, at_least(1))
PATH = Key(STRING)
FLAG = Key(BOOLEAN)
NAMES: Type = list_of(STRING)


@dataclass(frozen=True)
class Setting:
    """One option of `otsensor run` as a key of the configuration file."""
    dest: str                                   # the argparse destination
    section: str                                # "capture" or "run"
    key: str                                    # its name in the section
    declared: Key                               # what the validator checks
    convert: Callable[[Any], Any] = lambda v: v   # a valid file value -> what the option would hold


SETTINGS = (
    Setting("interface", "capture", "interfaces", Key(NAMES)),
    Setting("read", "capture", "read", PATH),
    Setting("bpf", "capture", "bpf", Key(STRING)),
    Setting("promiscuous", "capture", "promiscuous", FLAG),
    Setting("ring_block_size", "capture", "ring_block_size", SIZE, parse_size),
    Setting("ring_blocks", "capture", "ring_blocks", COUNT),
    Setting("ring_frame_size", "capture", "ring_frame_size", SIZE, parse_size),
    Setting("ring_block_timeout", "capture", "ring_block_timeout", COUNT),
    Setting("output", "run", "output", PATH),
    Setting("force", "run", "force", FLAG),
    Setting("user", "run", "user", Key(STRING)),
    Setting("quiet", "run", "quiet", FLAG),
    Setting("stats_interval", "run", "stats_interval", DURATION, parse_duration),
    Setting("documents_interval", "run", "documents_interval", DURATION, parse_duration),
    Setting("rotate_interval", "run", "rotate_interval", DURATION, parse_duration),
    Setting("rotate_size", "run", "rotate_size", SIZE, parse_size),
    Setting("max_disk", "run", "max_disk", SIZE, parse_size),
    Setting("write_buffer", "run", "write_buffer", SIZE, parse_size),
    Setting("metrics", "run", "metrics", Key(STRING, parses(parse_endpoint, "a loopback HOST:PORT")),
            parse_endpoint),
    Setting("graphml", "run", "graphml", FLAG),
    Setting("zones", "run", "zones", PATH),
    Setting("baseline", "run", "baseline", PATH),
    Setting("max_flows", "run", "max_flows", COUNT),
    Setting("flow_memory", "run", "flow_memory", SIZE, parse_size),
    Setting("stream_buffer", "run", "stream_buffer", SIZE, parse_size),
    Setting("tcp_timeout", "run", "tcp_timeout", DURATION, parse_duration),
    Setting("udp_timeout", "run", "udp_timeout", DURATION, parse_duration),
    Setting("workers", "run", "workers", COUNT),
    Setting("learn", "detection", "learn", DURATION, parse_duration),
)
CAPTURE = Section(keys={s.key: s.declared for s in SETTINGS if s.section == "capture"})
RUN = Section(keys={s.key: s.declared for s in SETTINGS if s.section == "run"})
# keys of [detection] only `otsensor run` reads (the rest of the section is baselines/policy.py's)
LIVE_DETECTION = {s.key: s.declared for s in SETTINGS if s.section == "detection"}


def settable_from_file(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Make every option of ``parser`` that has a file key default to None (so that an option given on the
    command line can be told from one left out); returns the built-in defaults, which help still shows."""
    dests = {s.dest for s in SETTINGS}
    defaults = {}
    for action in parser._actions:
        if action.dest not in dests:
            continue
        default = action.default
        defaults[action.dest] = default
        if default is not None and not isinstance(default, bool) and "default" not in (action.help or ""):
            action.help = f"{action.help} (default {default})"
        action.default = None
    return defaults


def resolve(args: argparse.Namespace, file: dict[str, Any], defaults: dict[str, Any]) -> str | None:
    """Fill every option left out of the command line from the file, then from ``defaults``.

    The source is one setting: ``-i`` or ``-r`` on the command line replaces both file keys.  Returns why
    the result cannot run (no source, two sources in the file), or None.
    """
    capture = file.get("capture", {})
    if args.interface is None and args.read is None:
        if "interfaces" in capture and "read" in capture:
            return "[capture]: interfaces and read both given; a run has one source"
        args.interface = capture.get("interfaces") or None
        args.read = capture.get("read")
        if args.interface is None and args.read is None:
            return "nothing to capture: give -i IFACE, -r FILE or [capture] interfaces in --config"
    for s in SETTINGS:
        if s.dest in ("interface", "read") or getattr(args, s.dest, None) is not None:
            continue
        table = file.get(s.section, {})
        setattr(args, s.dest, s.convert(table[s.key]) if s.key in table else defaults.get(s.dest))
    if args.output is None:
        return "no output directory: give -o DIR or [run] output in --config"
    return None
