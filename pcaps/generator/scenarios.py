"""Record the baseline-and-detection scenario captures: one small plant, benign days and attacks.

Usage::

    python pcaps/generator/scenarios.py --out pcaps/scenarios/             # every scenario
    python pcaps/generator/scenarios.py --out pcaps/scenarios/ --only benign_learn --only attack_s7_stop_download
    python pcaps/generator/scenarios.py --list

Needs root (ports 102 and 502, tcpdump).  Every device is a real stack on its
own loopback address; ``pcaps/scenarios/zones.toml`` describes the zones:

* cell (127.10.1.0/24, Purdue level 1, OT): Modbus/TCP PLC 127.10.1.10:502
  (pymodbus 3.16; 127.10.1.11-14 too, in the sweep scenario only), S7 PLC
  127.10.1.30:102 (python-snap7 3.3 server), DNP3 outstation 127.10.1.40:20000
  (dnp3py 0.6, link address 10; the outstation of ``dnp3.py``, which accepts
  controls and restarts), ENIP/CIP controller 127.10.1.50:44818 (cpppo
  5.2.5 Logix simulator, tags Speed=INT[10] Level=DINT[20] Temp=REAL[4]).
* supervisory (127.10.2.0/24, level 2, OT): HMI 127.10.2.20, engineering
  workstation 127.10.2.30; 127.10.2.99 is the rogue station of one attack.
* corporate (127.20.0.0/16, level 4, IT): historian 127.20.1.60 (a conduit lets
  it read Modbus from the cell), attacker 127.20.1.50.

What the plant does in every capture (the "background"):

* The HMI polls each controller on one persistent connection every
  ``PERIOD`` (1.0 s), on a drift-free schedule: Modbus FC 3 holding registers
  1-10 then FC 1 coils 1-16, and every 7th cycle an FC 6 write of setpoint
  register 5 (100..200); S7 read of DB1 bytes 0-15; DNP3 class 1 poll, an
  integrity (class 0123) poll every 10th cycle instead, and every 12th cycle a
  select-before-operate CROB (latch on/off) on index 0; CIP read of Speed[0-9]
  and Temp[0-3] (unconnected, one registered session).
* The historian reads holding registers 1-10 of 127.10.1.10 every 2.0 s.
* Every 5th cycle the HMI writes a recipe by Modbus FC 16 to holding registers
  20-23 (a mode 1, 2 or 3 in turn, then 1, 50, 0), and sets bits DB1.DBX4.0
  and DB1.DBX4.1 of the S7 PLC (one Write Var of two BIT items, in turn on/off).

Scenarios (``SCENARIOS`` below; values are seeded per scenario, timing is real):

* ``benign_learn`` (60 s): the background, plus the engineering workstation's
  usual work twice (S7 SZL 0x0011/0x001C reads, block list, DB1 block info and
  block upload; Modbus FC 43/14 basic device identification).  The setpoint
  writes include 100 and 200, so the learned range is 100..200.
* ``benign_second`` (45 s): the same plant at another time: same functions,
  addresses and period, other setpoint values (105..195), other timing;
  the engineering work once.  Must raise no alert against a baseline learned
  from ``benign_learn`` (the false-positive test).
* ``attack_it_modbus_write``: 127.20.1.50 writes holding registers 1-4 (FC 16)
  and coil 1 (FC 5) of 127.10.1.10.
* ``attack_s7_stop_download``: a new station 127.10.2.99 sends PLC STOP (0x29)
  and downloads block DB1 to 127.10.1.30.
* ``attack_dnp3_restart_operate``: the HMI's DNP3 master closes (the dnp3py
  outstation serves one master at a time); 127.20.1.50 then sends DIRECT_OPERATE
  of a CROB on index 0 and COLD_RESTART to 127.10.1.40.
* ``attack_cip_reset_forward_open``: 127.20.1.50 opens a connection by Forward
  Open (then Forward Close), then sends CIP Reset (0x05) to the identity object
  @1/1 of 127.10.1.50 (cpppo drops the session on Reset, so it comes last).
* ``attack_value_out_of_range``: the HMI writes 9999 to holding register 5.
* ``attack_identity_sweep``: 127.20.1.50 reads FC 43/14 device identification
  from 127.10.1.10 to 127.10.1.14 (five pymodbus servers of the same model:
  pymodbus keeps the identification in a process-wide singleton, so each
  answers the same product code ``OTS-PLC-1``).

* ``attack_s7_known_writer_bytes``: the HMI (a known S7 writer) sends one
  Write Var of three items: BYTE DB1.DBB4 = 0xFF (over the bits it sets one by
  one), BIT DB1.DBX4.0 and WORD DB1.DBW8 (the snap7 server writes the first item
  and acknowledges one).
* ``attack_s7_write_flood``: the HMI sends its usual two-bit Write Var 400
  times as fast as the PLC answers (hundreds a second).
* ``attack_hmi_ssh_smb``: an SSH server (asyncssh) and an SMB share (impacket)
  run on 127.10.1.30; the HMI logs in by SSH and runs ``id``, then reads a file
  from the share and writes one over SMB.
* ``attack_nmap_few_ot_hosts``: the engineering workstation (which works on
  127.10.1.10 and .30 only) SYN-scans six control-zone hosts it never spoke to
  (127.10.1.40, .50, 127.10.2.20 and the silent 127.10.1.60-62) on ports 102,
  502, 20000 and 44818 with Debian's nmap: fewer hosts and ports than a scan
  threshold.
* ``attack_modbus_unit_sweep``: the HMI reads one register from unit ids 2-9
  of 127.10.1.10 (it only ever used unit 1; pymodbus answers every unit).
* ``attack_dnp3_link_sweep_replay``: the HMI's DNP3 master leaves; 127.20.1.50
  sends a class 0 poll to link addresses 1-6 (the outstation, 10, ignores
  them), then the HMI's latch-on select-before-operate on index 0 as its own.
* ``attack_s7_szl_enumeration``: the engineering workstation reads SZL lists
  0x0000, 0x0011, 0x001C, 0x0111, 0x0131, 0x0132, 0x0424 and 0x0074 of the S7
  PLC (it usually reads 0x0011 and 0x001C).
* ``attack_modbus_fc16_new_values``: the HMI writes the recipe block 20-23 with
  values it never wrote (7, 0, 250, 9) by FC 16.

Each attack capture is ``ATTACK_SECONDS`` of background with the attack at
``ATTACK_AT``.  Captures use the shared ``capture.py`` helper (tcpdump on
``lo`` filtered to the scenario's hosts).  The plant refuses to start when
another process already serves one of its controller addresses (the other
generators use the same ones), and a capture is recorded again, up to three
times, when tcpdump reports kernel drops or tshark finds a stranger's address.  Stacks without a source-address option (snap7, dnp3py)
get one by a socket subclass that binds to the calling thread's role address.
The sibling generators ``capture.py`` and ``dnp3.py`` are imported by path
(``dnp3.py`` would shadow the dnp3py package on the import path).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
# pcaps/generator/dnp3.py would shadow the dnp3py package (imported as ``dnp3``): keep this folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]


def _sibling(name: str, module_name: str):
    """Import a module of this folder by path, as ``module_name`` (which must not shadow a stack's package)."""
    spec = importlib.util.spec_from_file_location(module_name, HERE / f"{name}.py")
    module = sys.modules[module_name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


capture_helper = _sibling("capture", "capture")  # the shared tcpdump helper (dnp3.py imports it as ``capture``)
dnp3_generator = _sibling("dnp3", "dnp3_generator")  # its outstation (accepts controls, restarts), raw requests
plant_module = _sibling("plant", "scenario_plant")  # addresses, controllers, clients
routine = _sibling("routine", "scenario_routine")  # the background: HMI, historian, engineering visits
attacks = _sibling("attacks", "scenario_attacks")
it_services = _sibling("it_services", "scenario_it_services")  # SSH and SMB servers in the cell, HMI sessions
from scenario_attacks import (  # type: ignore[import-not-found]  # noqa: E402
    QUIET_SCAN_TARGETS, attack_cip, attack_dnp3, attack_dnp3_link_sweep_replay, attack_identity_sweep,
    attack_modbus_fc16_new_values, attack_modbus_unit_sweep, attack_modbus_write, attack_nmap_few_ot_hosts,
    attack_s7_szl_enumeration, attack_s7_known_writer_bytes, attack_s7_stop_download,
    attack_s7_write_flood,
)
from scenario_plant import (  # type: ignore[import-not-found]  # noqa: E402
    ATTACK_AT, ATTACK_SECONDS, ATTACKER, CIP_PLC, EWS, HISTORIAN, HMI, MODBUS_PLC, OUTSTATION, ROGUE, S7_PLC,
    SWEEP_PLCS, in_role, plant,
)
from scenario_it_services import attack_hmi_ssh_smb  # type: ignore[import-not-found]  # noqa: E402
from scenario_routine import (  # type: ignore[import-not-found]  # noqa: E402
    engineering_work, hmi_cip, hmi_dnp3, hmi_modbus, hmi_s7, historian, learn_setpoints, out_of_range_setpoints,
    second_setpoints,
)


@dataclass(frozen=True)
class Scenario:
    name: str
    seconds: float
    setpoints: Callable[[random.Random], Callable[[int], int | None]] = second_setpoints
    engineering_at: tuple[float, ...] = ()
    attack: tuple[str, Callable[[], None]] | None = None  # (source address, action) at ATTACK_AT
    stops_hmi_dnp3: bool = False  # the outstation serves one master: the HMI's leaves first
    modbus_plcs: tuple[str, ...] = (MODBUS_PLC,)
    extra_hosts: tuple[str, ...] = ()
    services: Callable[[], contextlib.AbstractContextManager] | None = None  # servers besides the plant's


SCENARIOS = {s.name: s for s in (
    Scenario("benign_learn", 60.0, learn_setpoints, engineering_at=(12.0, 41.0)),
    Scenario("benign_second", 45.0, second_setpoints, engineering_at=(23.0,)),
    Scenario("attack_it_modbus_write", ATTACK_SECONDS, attack=(ATTACKER, attack_modbus_write)),
    Scenario("attack_s7_stop_download", ATTACK_SECONDS, attack=(ROGUE, attack_s7_stop_download)),
    Scenario("attack_dnp3_restart_operate", ATTACK_SECONDS, attack=(ATTACKER, attack_dnp3), stops_hmi_dnp3=True),
    Scenario("attack_cip_reset_forward_open", ATTACK_SECONDS, attack=(ATTACKER, attack_cip)),
    Scenario("attack_value_out_of_range", ATTACK_SECONDS, out_of_range_setpoints),
    Scenario("attack_identity_sweep", ATTACK_SECONDS, attack=(ATTACKER, attack_identity_sweep),
             modbus_plcs=SWEEP_PLCS),
    Scenario("attack_s7_known_writer_bytes", ATTACK_SECONDS, attack=(HMI, attack_s7_known_writer_bytes)),
    Scenario("attack_s7_write_flood", ATTACK_SECONDS, attack=(HMI, attack_s7_write_flood)),
    Scenario("attack_modbus_fc16_new_values", ATTACK_SECONDS, attack=(HMI, attack_modbus_fc16_new_values)),
    Scenario("attack_hmi_ssh_smb", ATTACK_SECONDS, attack=(HMI, attack_hmi_ssh_smb),
             services=it_services.it_services),
    Scenario("attack_modbus_unit_sweep", ATTACK_SECONDS, attack=(HMI, attack_modbus_unit_sweep)),
    Scenario("attack_dnp3_link_sweep_replay", ATTACK_SECONDS, attack=(ATTACKER, attack_dnp3_link_sweep_replay),
             stops_hmi_dnp3=True),
    Scenario("attack_s7_szl_enumeration", ATTACK_SECONDS, attack=(EWS, attack_s7_szl_enumeration)),
    Scenario("attack_nmap_few_ot_hosts", ATTACK_SECONDS, attack=(EWS, attack_nmap_few_ot_hosts),
             extra_hosts=QUIET_SCAN_TARGETS),
)}


def scenario_hosts(s: Scenario) -> list[str]:
    hosts = [*s.modbus_plcs, S7_PLC, OUTSTATION, CIP_PLC, HMI, HISTORIAN]
    if s.engineering_at:
        hosts.append(EWS)
    if s.attack:
        hosts.append(s.attack[0])
    return sorted(set(hosts) | set(s.extra_hosts))


def run_timeline(s: Scenario) -> None:
    """Start the background, fire the engineering visits and the attack on time, stop everything."""
    rng = random.Random(s.name)
    stop, dnp3_stop = threading.Event(), threading.Event()
    t0 = time.monotonic()
    threads = [in_role(HMI, hmi_modbus, stop, s.setpoints(rng)), in_role(HMI, hmi_s7, stop),
               in_role(HMI, hmi_cip, stop), in_role(HISTORIAN, historian, stop)]
    hmi_dnp3_thread = in_role(HMI, hmi_dnp3, dnp3_stop)
    events = [(at, EWS, engineering_work) for at in s.engineering_at]
    if s.attack:
        events.append((ATTACK_AT + 0.4, *s.attack))  # off the poll instants, so the attack stands alone
    for at, addr, action in sorted(events, key=lambda e: e[0]):
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        if s.stops_hmi_dnp3 and addr == ATTACKER:
            dnp3_stop.set()
            hmi_dnp3_thread.join(timeout=10)
        print(f"  t={time.monotonic() - t0:5.1f}s {addr} {action.__name__}", file=sys.stderr)
        in_role(addr, action).join(timeout=30)
    time.sleep(max(0.0, t0 + s.seconds - time.monotonic()))
    stop.set()
    dnp3_stop.set()
    for thread in [*threads, hmi_dnp3_thread]:
        thread.join(timeout=15)


def hosts_in(pcap: Path) -> set[str]:
    """Every IPv4 address in the capture, by tshark (empty set when tshark is missing)."""
    if not shutil.which("tshark"):
        return set()
    out = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "ip.src", "-e", "ip.dst"],
                         capture_output=True, text=True, check=True).stdout
    return {addr for line in out.splitlines() for addr in line.split()}


def record(s: Scenario, out: Path, tries: int = 3) -> None:
    """Record one scenario; again (up to ``tries`` times) if the kernel dropped packets or strangers appear."""
    pcap = out / f"{s.name}.pcap"
    hosts = scenario_hosts(s)
    for attempt_no in range(1, tries + 1):
        print(f"{s.name}: {s.seconds:.0f} s (try {attempt_no})", file=sys.stderr)
        services = s.services() if s.services else contextlib.nullcontext()
        with plant(s.modbus_plcs), services, capture_helper.capture(pcap, hosts) as cap:
            run_timeline(s)
        print(" ", cap.summary(), file=sys.stderr)
        strangers = hosts_in(pcap) - set(hosts)
        if not cap.packets_dropped and not strangers:
            return
        print(f"  unusable: {cap.packets_dropped} dropped, unexpected hosts {sorted(strangers)} "
              "(a loaded machine, or another generator on these addresses)", file=sys.stderr)
    raise RuntimeError(f"{pcap}: no clean recording in {tries} tries")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("pcaps/scenarios"), help="output folder")
    parser.add_argument("--only", action="append", choices=list(SCENARIOS), metavar="NAME",
                        help="record only this scenario (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the scenario names and exit")
    args = parser.parse_args()
    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    if os.geteuid() != 0:
        print("needs root (tcpdump, ports 102 and 502)", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.CRITICAL)  # pymodbus/cpppo/snap7 chatter
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.only or SCENARIOS:
        try:
            record(SCENARIOS[name], args.out)
        except (RuntimeError, capture_helper.CaptureFailed) as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
