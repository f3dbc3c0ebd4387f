"""Modbus/TCP (MODBUS Application Protocol V1.1b3, MODBUS Messaging on TCP/IP V1.0b)."""
from otsensor.dissectors.modbus.dissector import ModbusDissector, ModbusTransaction, probe, sender
from otsensor.dissectors.registry import Registration

REGISTRATIONS = (
    Registration("modbus", lambda shared: ModbusDissector(), probe, tcp_ports=frozenset({502}),
                 sender=sender),
)

__all__ = ["ModbusDissector", "ModbusTransaction", "REGISTRATIONS"]
