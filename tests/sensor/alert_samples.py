"""Alerts for the sink tests, built with the real Alert model and ATT&CK table, with hostile text in them."""
from __future__ import annotations

from otsensor.baselines.alerts import SEVERITIES, Alert, technique

# Text a SIEM format must carry unchanged: its own delimiters, escapes, line breaks and non-ASCII.
TRICKY = [
    "plain words",
    "pipe | in | text",
    "equals a=b and key=value",
    "back\\slash and \\n literal and trailing \\",
    "new\nline, cr\rreturn and crlf\r\n",
    "tab\there",
    'quote " and ] bracket [x@1 a="b"]',
    "non-ASCII: é ü ß 中文 ✓ Привет",
    "all | = \\ \n \r \t \" ] é at once",
]


def make_alert(i: int, message: str = "controller stopped", severity: str = "high", app: str = "t",
               title: str | None = None) -> Alert:
    techs = (technique("T0881"), technique("T0858")) if i % 2 else (technique("T0836"),)
    return Alert(rule="plc_stop" if i % 2 else "modbus_write", title=title or f"PLC stop | #{i} ({app})",
                 severity=severity, category="control", techniques=techs,
                 first_seen=1_764_000_000.25 + i, last_seen=1_764_000_005.5 + i, message=message,
                 identifier=f"{app}:{i}", src=f"10.1.{i % 250}.5", dst="10.1.0.10",
                 src_port=40000 + i, dst_port=102, transport="tcp", protocol="s7comm", function="plc_stop",
                 uid=f"C{i}", evidence=[{"fc": i}], count=1 + i % 3)


def tricky_alerts(app: str = "t") -> list[Alert]:
    out = []
    for i, text in enumerate(TRICKY):
        out.append(make_alert(i, message=text, severity=SEVERITIES[i % len(SEVERITIES)], app=app,
                              title=f"title {text}"))
    return out
