"""What a correct sensor logs for a capture: records per log, from the PDUs the generator wrote.

This is otsensor's documented logging contract (README "What otsensor analyze
writes") applied to the PDU keys of each traffic module; the tests hold
``otsensor analyze`` to it, and bench/run.py checks every timed run against it.
"""
from __future__ import annotations

from collections import Counter

from .dnp3 import FIR, UNSOLICITED
from .enip import GET_ATTRIBUTES_ALL, LIST_IDENTITY, MSP
from .s7 import G_CPU, JOB, USERDATA
from .schedule import Summary

NO_POINTS_GROUPS = frozenset({60})        # class data headers carry no values
CONTROL_GROUPS = frozenset({12, 41})      # CROB and analog output blocks go to dnp3_control


def expected_records(summary: Summary) -> dict[str, int]:
    logs: Counter = Counter(conn=sum(summary.flows.values()), dnp3_stations=2 * summary.flows.get("dnp3", 0))
    for key, n in summary.pdus.items():
        for log, count in _PER_KIND[key[0]](key).items():
            logs[log] += count * n
    # a Modbus request never answered (the one-packet capture's) is logged and flagged unanswered
    logs["anomalies"] += sum(n if key[1] == "req" else -n for key, n in summary.pdus.items() if key[0] == "modbus")
    return {log: count for log, count in sorted(logs.items()) if count}


def expected_anomalies(summary: Summary) -> dict[str, int]:
    unanswered = expected_records(summary).get("anomalies", 0)
    return {"modbus.unanswered_request": unanswered} if unanswered else {}


def _modbus(key: tuple) -> dict[str, int]:
    _kind, side, _fc, _exception = key
    return {"modbus": 1} if side == "req" else {}


def _cotp(key: tuple) -> dict[str, int]:
    return {"cotp": 1}


def _s7comm(key: tuple) -> dict[str, int]:
    """One record per request/response pair; an SZL answer adds its s7comm_read_szl record."""
    _kind, d, rosctr, function, sub = key
    if d == 0:
        return {"s7comm": 1} if rosctr in (JOB, USERDATA) else {}
    return {"s7comm_read_szl": 1} if rosctr == USERDATA and function == G_CPU and sub == 0x01 else {}


def _dnp3(key: tuple) -> dict[str, int]:
    """Every object header is a dnp3_objects row; values go to dnp3_points (one row per header) or, for
    control blocks, one dnp3_control row each; a transaction row per master fragment, and per response
    fragment that answers no request (unsolicited, or a later fragment of a multi-fragment response)."""
    _kind, d, function, control, headers = key
    out = Counter(dnp3_objects=len(headers))
    for group, _variation, _qualifier, count in headers:
        if group in CONTROL_GROUPS:
            out["dnp3_control"] += count
        elif count and group not in NO_POINTS_GROUPS:
            out["dnp3_points"] += 1
    if d == 0 or function == UNSOLICITED or not control & FIR:
        out["dnp3"] += 1
    return out


def _enip(key: tuple) -> dict[str, int]:
    """An enip row per encapsulation message; a cip row per request (and per service of a Multiple
    Service Packet); a cip_identity row per ListIdentity reply and identity Get Attributes All reply."""
    _kind, d, command, services = key
    out = Counter(enip=1)
    if d == 0 and services:
        out["cip"] += len(services) if services[0] == MSP else 1
    if d == 1 and (command == LIST_IDENTITY or services == (GET_ATTRIBUTES_ALL | 0x80,)):
        out["cip_identity"] += 1
    return out


def _cip_io(key: tuple) -> dict[str, int]:
    return {"cip_io": 1}


_PER_KIND = {"modbus": _modbus, "cotp": _cotp, "s7comm": _s7comm, "dnp3": _dnp3, "enip": _enip, "cip_io": _cip_io}
