"""Content guesses for connections no dissector follows, on bytes from real stacks.

SSH (asyncssh) and SMB2 (impacket) payloads come from the scenario capture; a TLS ClientHello
from Python's ssl module; the industrial payloads of the committed captures must match nothing.
"""
from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from otsensor.dissectors.content import guess_by_port, guess_content
from tests.baselines.replay import conversation

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"
IT = PCAPS / "scenarios" / "attack_hmi_ssh_smb.pcap"


def first_payloads(pcap: Path, port: int, client: str | None = None) -> list[bytes]:
    if not pcap.exists():
        pytest.skip(f"{pcap.name} is missing")
    return [s.payload for s in conversation(pcap, port, client)[:4]]


@pytest.mark.parametrize("port,name", [(22, "ssh"), (445, "smb")])
def test_real_ssh_and_smb_sessions_are_recognised(port: int, name: str) -> None:
    payloads = first_payloads(IT, port)
    assert payloads and all(guess_content(p) == name for p in payloads[:2]), [p[:12] for p in payloads]


def test_a_real_tls_client_hello_is_recognised() -> None:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="plc.example")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    assert guess_content(outgoing.read()) == "tls"


@pytest.mark.parametrize("capture,port", [("modbus_hmi.pcap", 502), ("s7_hmi.pcap", 102), ("enip_hmi.pcap", 44818),
                                          ("dnp3_scada.pcap", 20000)])
def test_industrial_payloads_are_not_mistaken(capture: str, port: int) -> None:
    payloads = [s.payload for s in conversation(PCAPS / capture, port)] if (PCAPS / capture).exists() else []
    if not payloads:
        pytest.skip(f"{capture} is missing")
    assert {guess_content(p) for p in payloads} == {None}


def test_ports_name_the_service_when_the_payload_says_nothing() -> None:
    assert (guess_by_port(3389), guess_by_port(445), guess_by_port(40000)) == ("rdp", "smb", None)
