"""Originator choice when a flow's first packet carries odd TCP flags (seen in Zeek's fuzzed Modbus traces)."""
from otsensor.sensor.flows.table import ACK, FIN, RST, SYN, choose_originator

TCP = 6


def modbus_port(_transport: int, port: int) -> bool:
    return port == 502


def test_plain_syn_decides_the_originator() -> None:
    assert choose_originator(TCP, SYN, 502, 2582, modbus_port) is True
    assert choose_originator(TCP, SYN | ACK, 502, 2582, modbus_port) is False


def test_syn_with_fin_or_rst_is_not_a_handshake_so_the_server_port_decides() -> None:
    # iti-ics-tools/pcaps/bro/modbus/fuzz-72.pcap opens with SYN+FIN+PSH+URG+ECE+CWR sent from port 502;
    # taking it as a handshake made the server the originator and no Modbus was decoded at all.
    assert choose_originator(TCP, SYN | FIN, 502, 2582, modbus_port) is False
    assert choose_originator(TCP, SYN | RST, 502, 2582, modbus_port) is False
    assert choose_originator(TCP, SYN | FIN, 2582, 502, modbus_port) is True
