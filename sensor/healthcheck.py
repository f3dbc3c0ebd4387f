"""`otsensor health [DIR]`: is the `otsensor run` writing DIR alive?  For a container HEALTHCHECK or a monitor.

Healthy means: ``DIR/stats.json`` says ``running`` and was updated less than three of its rewrite periods
ago (the sensor rewrites it every ``min(10, stats_interval)`` seconds, through the same writer as the logs:
a capture loop that hangs and a disk that stopped taking writes both make it stale).  Exit status 0 when
healthy, 1 otherwise, with one line saying why.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from typing import Any

from otsensor.sensor.live_stats import STATS_FILE_EVERY as FILE_EVERY

MISSED = 3              # rewrites a healthy sensor may miss (a loaded machine, a slow disk for a moment)


def add_command(sub: Any) -> None:
    p = sub.add_parser("health", help="exit 0 if the otsensor run writing DIR is alive (for a HEALTHCHECK)")
    p.add_argument("directory", nargs="?", metavar="DIR", default=os.environ.get("OTSENSOR_OUTPUT"),
                   help="output directory of 'otsensor run' (default: $OTSENSOR_OUTPUT)")
    p.set_defaults(func=cmd_health)


def verdict(directory: str, now: float | None = None) -> str | None:
    """Why the sensor writing ``directory`` is not healthy, or None when it is."""
    path = os.path.join(directory, "stats.json")
    try:
        with open(path, "rb") as fh:
            stats = json.loads(fh.read())
        updated = datetime.fromisoformat(str(stats["updated"]).replace("Z", "+00:00")).timestamp()
        period = min(FILE_EVERY, float(stats.get("stats_interval_s") or FILE_EVERY))
    except FileNotFoundError:
        return f"{path}: missing (the sensor has not started)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{path}: unreadable: {exc}"
    if stats.get("state") != "running":
        return f"{path}: the sensor is {stats.get('state')!r}, not running"
    age = (time.time() if now is None else now) - updated
    if age > MISSED * period:
        return f"{path}: last updated {age:.0f}s ago (more than {MISSED} x {period:g}s): the sensor is stuck"
    return None


def cmd_health(args: argparse.Namespace) -> int:
    if not args.directory:
        sys.stderr.write("otsensor: error: name the output directory (or set OTSENSOR_OUTPUT)\n")
        return 2
    why = verdict(args.directory)
    if why is not None:
        sys.stderr.write(f"otsensor: unhealthy: {why}\n")
        return 1
    print("otsensor: healthy")
    return 0
