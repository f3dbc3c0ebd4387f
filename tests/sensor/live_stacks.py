"""Real protocol stacks for the live-capture tests, one role per process (run inside a namespace).

    python tests/sensor/live_stacks.py modbus-server ADDR
    python tests/sensor/live_stacks.py modbus-client SERVER_ADDR
    python tests/sensor/live_stacks.py s7-server ADDR
    python tests/sensor/live_stacks.py s7-client SERVER_ADDR

A server prints ``ready`` once it accepts connections and serves until killed;
a client runs a short session and exits 0.
"""
from __future__ import annotations

import asyncio
import sys
import time


def wait_until_listening(port: int, seconds: float = 20.0) -> None:
    """Until a socket listens on ``port``, read from /proc (a probe connection would be captured too)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open("/proc/net/tcp", encoding="ascii") as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A" and int(local.split(":")[1], 16) == port:
                    return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def modbus_server(addr: str) -> None:
    import threading

    from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
    from pymodbus.pdu.device import ModbusDeviceIdentification
    from pymodbus.server import StartAsyncTcpServer

    device = ModbusDeviceContext(hr=ModbusSequentialDataBlock(1, [100 + i for i in range(100)]),
                                 co=ModbusSequentialDataBlock(1, [False] * 100))
    identity = ModbusDeviceIdentification(info_name={"VendorName": "otsensor live test", "ProductCode": "LIVE-1",
                                                     "MajorMinorRevision": "1.0"})
    serve = threading.Thread(target=lambda: asyncio.run(StartAsyncTcpServer(
        context=ModbusServerContext(devices=device), identity=identity, address=(addr, 502))), daemon=True)
    serve.start()
    wait_until_listening(502)
    print("ready", flush=True)
    serve.join()


def modbus_client(server: str) -> None:
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(server, port=502, timeout=3, retries=0)
    if not client.connect():
        raise SystemExit(f"cannot connect to {server}:502")
    client.read_device_information(read_code=1, object_id=0)
    for cycle in range(20):
        client.read_holding_registers(1 + cycle, count=5)
        client.read_coils(1, count=16)
        if cycle % 5 == 4:
            client.write_register(10, 500 + cycle)
    client.read_holding_registers(500, count=2)   # past the table: an exception response
    client.close()


def s7_server(addr: str) -> None:
    import snap7.server
    from snap7.type import SrvArea

    server = snap7.server.Server(log=False)
    db1 = bytearray(64)
    server.register_area(SrvArea.DB, 1, db1)
    server.start_to(addr, 102)
    wait_until_listening(102)
    print("ready", flush=True)
    while True:
        time.sleep(1)


def s7_client(server: str) -> None:
    import snap7.client

    client = snap7.client.Client()
    client.connect(server, 0, 2, 102)
    for i in range(10):
        client.db_read(1, 0, 8)
        if i % 3 == 0:
            client.db_write(1, 0, bytearray([i] * 4))
    client.disconnect()


ROLES = {"modbus-server": modbus_server, "modbus-client": modbus_client,
         "s7-server": s7_server, "s7-client": s7_client}

if __name__ == "__main__":
    ROLES[sys.argv[1]](sys.argv[2])
