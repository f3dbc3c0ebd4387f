"""The plant's routine: what the HMI, the historian and the engineering workstation do in every capture.

Loaded by ``scenarios.py`` as ``scenario_routine``, after ``scenario_plant``.
"""
from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from collections.abc import Callable

from scenario_plant import (  # type: ignore[import-not-found]
    CIP_PLC, CIP_POLL, ENIP_PORT, EWS, HISTORIAN, HISTORIAN_PERIOD, HMI, HMI_LINK, PERIOD, SETPOINT_REGISTER,
    RECIPE_REGISTER, S7_BIT, attempt, dnp3_master, every, modbus_client, s7_client, s7_write_items,
)

def hmi_modbus(stop: threading.Event, setpoint: Callable[[int], int | None]) -> None:
    client = modbus_client(HMI)
    for cycle in every(PERIOD, stop):
        attempt("hmi fc3", client.read_holding_registers, 1, count=10)
        attempt("hmi fc1", client.read_coils, 1, count=16)
        value = setpoint(cycle)
        if value is not None:
            attempt("hmi fc6", client.write_register, SETPOINT_REGISTER, value)
        if cycle % 5 == 1:
            attempt("hmi fc16 recipe", client.write_registers, RECIPE_REGISTER, recipe(cycle))
    client.close()


def hmi_s7(stop: threading.Event) -> None:
    client = s7_client()
    for cycle in every(PERIOD, stop):
        attempt("hmi db_read", client.db_read, 1, 0, 16)
        if cycle % 5 == 2:
            attempt("hmi bits", s7_write_items, client, hmi_bits(cycle))
    client.disconnect()


def recipe(cycle: int) -> list[int]:
    """The recipe block the HMI writes: a mode that takes 1, 2 and 3 in turn, then three constants."""
    return [1 + (cycle // 5) % 3, 1, 50, 0]


def hmi_bits(cycle: int) -> list[tuple[int, int, int, bytes]]:
    """Two bits of DB1 byte 4 the HMI sets in turn, as one Write Var of two BIT items (bit addresses 32, 33)."""
    on = (cycle // 5) % 2 == 0
    return [(S7_BIT, 1, 32, bytes([on])), (S7_BIT, 1, 33, bytes([not on]))]


def hmi_dnp3(stop: threading.Event) -> None:
    asyncio.run(_hmi_dnp3(stop))


async def _hmi_dnp3(stop: threading.Event) -> None:
    from dnp3.core.enums import ControlCode
    from dnp3.master import CommandBuilder

    runner = dnp3_master(HMI_LINK)
    await runner.open()
    start, cycle = time.monotonic(), 0
    try:
        while not stop.is_set():
            await asyncio.sleep(max(0.0, start + cycle * PERIOD - time.monotonic()))
            if stop.is_set():
                break
            poll = runner.integrity_poll() if cycle % 10 == 0 else runner.class_poll(class_2=False, class_3=False)
            await _dnp3_attempt("hmi poll", poll)
            if cycle % 12 == 6:  # select-before-operate, as this site always does
                code = ControlCode.LATCH_ON if cycle % 24 == 6 else ControlCode.LATCH_OFF
                crob = CommandBuilder().add_crob(0, code)
                await _dnp3_attempt("hmi select", runner.request(runner.master.build_select(crob.build_select())))
                await _dnp3_attempt("hmi operate", runner.request(runner.master.build_operate(crob.build_operate())))
            cycle += 1
    finally:
        await runner.close()


async def _dnp3_attempt(label: str, coro) -> None:
    try:
        await coro
    except Exception as exc:  # noqa: BLE001
        print(f"  {label}: {type(exc).__name__}: {exc}"[:200], file=sys.stderr)


def hmi_cip(stop: threading.Event) -> None:
    from cpppo.server.enip import client

    with client.connector(host=CIP_PLC, port=ENIP_PORT, timeout=3, source_address=HMI) as conn:
        for _cycle in every(PERIOD, stop):
            attempt("hmi cip read", lambda: list(conn.synchronous(operations=client.parse_operations(CIP_POLL))))


def historian(stop: threading.Event) -> None:
    client = modbus_client(HISTORIAN)
    for _cycle in every(HISTORIAN_PERIOD, stop):
        attempt("historian fc3", client.read_holding_registers, 1, count=10)
    client.close()


def engineering_work() -> None:
    """The engineering workstation's usual visit: S7 diagnostics and a block upload, Modbus identification."""
    from snap7.type import Block

    s7 = s7_client(0, 1)
    attempt("ews szl 0x0011", s7.read_szl, 0x0011, 0)
    attempt("ews szl 0x001c", s7.read_szl, 0x001C, 0)
    attempt("ews list_blocks", s7.list_blocks)
    attempt("ews block info", s7.get_block_info, Block.DB, 1)
    attempt("ews upload DB1", s7.upload, 1)
    s7.disconnect()
    mb = modbus_client(EWS)
    attempt("ews fc43/14", mb.read_device_information, read_code=1, object_id=0)
    mb.close()



def learn_setpoints(rng: random.Random) -> Callable[[int], int | None]:
    """Every 7th cycle a setpoint in 100..200; the first two are the range's ends."""
    ends = {3: 100, 10: 200}
    return lambda cycle: ends.get(cycle, rng.randint(100, 200)) if cycle % 7 == 3 else None


def second_setpoints(rng: random.Random) -> Callable[[int], int | None]:
    return lambda cycle: rng.randint(105, 195) if cycle % 7 == 3 else None


def out_of_range_setpoints(rng: random.Random) -> Callable[[int], int | None]:
    normal = second_setpoints(rng)
    return lambda cycle: 9999 if cycle == int(ATTACK_AT) else normal(cycle)

