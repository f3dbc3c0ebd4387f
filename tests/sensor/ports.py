"""Free loopback ports for the real servers the tests start (rsyslog, clickhouse-server)."""
from __future__ import annotations

import socket


def free_ports(*kinds: int) -> list[int]:
    """One free 127.0.0.1 port per socket kind given, no two alike for a kind.  The sockets stay bound until
    every port is picked: picked one at a time, the kernel can hand the port it just got back out again, and
    a server given one port for two inputs listens on only one of them (an rsyslog's TLS input then answered
    on the port of its certificate-checking one)."""
    sockets = [socket.socket(socket.AF_INET, kind) for kind in kinds]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    return free_ports(kind)[0]
