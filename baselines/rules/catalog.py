"""Every detection rule: stable name, title, severity, category and ATT&CK for ICS techniques.

One table, so the rule set can be read (and documented in the README) in
one place; the logic that fires each rule is in baselines/detect.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from otsensor.baselines.alerts import Technique, technique


@dataclass(frozen=True)
class Rule:
    name: str
    title: str
    severity: str
    category: str
    technique_ids: tuple[str, ...]
    always_on: bool

    @property
    def techniques(self) -> tuple[Technique, ...]:
        return tuple(technique(t) for t in self.technique_ids)


_RULES = [
    # Always on, baseline or not
    Rule("plc_stop", "Controller stopped", "critical", "control", ("T0858", "T0813"), True),
    Rule("plc_start", "Controller started", "high", "control", ("T0858",), True),
    Rule("mode_change", "Controller operating mode changed", "high", "control", ("T0858",), True),
    Rule("program_download", "Program or block downloaded to a controller", "high", "program", ("T0843",), True),
    Rule("program_upload", "Program or block uploaded from a controller", "medium", "program", ("T0845",), True),
    Rule("program_delete", "Program block deleted on a controller", "high", "program", ("T0809",), True),
    Rule("firmware_update", "Firmware update operation", "critical", "program", ("T0857",), True),
    Rule("device_restart", "Device restart requested", "high", "restart", ("T0816",), True),
    Rule("modbus_listen_only", "Modbus device forced into listen-only mode", "high", "control",
         ("T0814", "T0804"), True),
    Rule("dnp3_disable_unsolicited", "DNP3 unsolicited reporting disabled", "medium", "control",
         ("T0804", "T0815"), True),
    Rule("direct_operate_without_select", "Direct operate where the site uses select-before-operate", "high",
         "control", ("T0855",), True),
    Rule("forced_value", "Variable forced or modified by an engineering tool", "high", "control",
         ("T0836", "T0855"), True),
    Rule("clock_set", "Device clock set", "low", "control", ("T0849",), True),
    Rule("identity_change", "Device firmware or identity differs from the inventory", "high", "identity",
         ("T0857", "T0839"), True),
    Rule("broadcast_write", "Broadcast write (Modbus unit 0)", "high", "control", ("T0855", "T0831"), True),
    Rule("recon_identity_read", "Device identification read from a host that is not an engineering station",
         "medium", "recon", ("T0888",), True),
    Rule("recon_sweep", "Device identification sweep across many devices", "high", "recon",
         ("T0846", "T0888"), True),
    Rule("network_scan", "Host or port scan", "high", "recon", ("T0846", "T0840"), True),
    Rule("it_ot_boundary_crossing", "Flow from an IT or external zone into a control zone without a conduit",
         "medium", "boundary", ("T0886",), True),
    Rule("ot_internet_communication", "OT host communicating with the Internet", "high", "boundary",
         ("T0883", "T0869"), True),
    # Layer 2: IP-to-MAC bindings (baselines/layer2.py)
    Rule("arp_spoofing", "ARP spoofing: an address taken over by another MAC", "high", "layer2", ("T0830",), True),
    Rule("duplicate_ip", "Two MACs claim one IP address", "medium", "layer2", ("T0830",), True),
    Rule("mac_many_ips", "One MAC claims many IP addresses", "high", "layer2", ("T0830",), True),
    Rule("arp_flood", "ARP flood (gratuitous or unsolicited ARP)", "medium", "layer2", ("T0830", "T0814"), True),
    # The sensor itself: frames it could not see (ATT&CK: see README, "The sensor's own alert")
    Rule("sensor_packet_loss", "The sensor lost traffic: part of the network went unmonitored", "medium",
         "sensor", ("T0814",), True),
    # Departures from a learned baseline
    Rule("new_asset", "New asset in an OT zone", "medium", "baseline", ("T0864",), False),
    Rule("new_mac", "New MAC address in an OT segment", "medium", "baseline", ("T0864",), False),
    Rule("new_edge", "New communication edge", "medium", "baseline", ("T0848",), False),
    Rule("new_function", "New function or service on a known edge", "medium", "baseline", ("T0855",), False),
    Rule("new_writer", "Write from a host that never wrote to this device", "high", "baseline",
         ("T0855", "T0836"), False),
    Rule("address_out_of_range", "Access outside the learned address range", "medium", "baseline",
         ("T0861",), False),
    Rule("value_out_of_range", "Written value outside the learned range", "high", "baseline",
         ("T0836", "T0831"), False),
    Rule("new_write_width", "Item written at a width it never was (a byte over bits)", "high", "baseline",
         ("T0836", "T0831"), False),
    Rule("write_flood", "Burst of writes far above the learned rate", "high", "baseline", ("T0806", "T0813"), False),
    Rule("request_flood", "Burst of requests far above the learned rate", "medium", "baseline", ("T0814",), False),
    Rule("replayed_command", "Write or control command replayed from another host", "high", "baseline",
         ("T0855", "T0848"), False),
    Rule("unit_enumeration", "Unit ids or link addresses enumerated on a device", "high", "recon",
         ("T0846", "T0888"), False),
    Rule("object_enumeration", "Diagnostic objects enumerated on a device (SZL lists, CIP classes)", "high",
         "recon", ("T0888",), False),
    Rule("ot_new_service", "New connection into or inside a control zone (any protocol)", "medium", "baseline",
         ("T0869",), False),
    Rule("cadence_change", "Polling cadence changed", "medium", "baseline", ("T0806",), False),
    Rule("silent_edge", "Periodic communication went silent", "medium", "baseline", ("T0815", "T0804"), False),
    Rule("error_burst", "Burst of exception or error responses", "medium", "baseline", ("T0814", "T0888"), False),
    Rule("nonstandard_port", "Industrial protocol on a non-standard port", "medium", "baseline", ("T0869",), False),
    Rule("anomaly_rate", "Decode anomalies above their learned rate", "medium", "baseline", ("T0866",), False),
    # Protocol roles learned per device (baselines/dnp3_stations.py, baselines/cip_originators.py)
    Rule("dnp3_second_master", "DNP3 requests from a host that is not the outstation's master", "high",
         "baseline", ("T0848", "T0855"), False),
    Rule("dnp3_unexpected_master_address", "DNP3 request from a master link address never learned", "high",
         "baseline", ("T0848", "T0849"), False),
    Rule("dnp3_unsolicited_unknown", "DNP3 unsolicited response from an outstation never learned to send them",
         "medium", "baseline", ("T0856",), False),
    Rule("dnp3_time_set", "DNP3 time set by a host that is not the outstation's master", "high", "baseline",
         ("T0855", "T0848"), False),
    Rule("cip_new_connection_originator", "CIP Forward Open from a host that never opened connections to the target",
         "medium", "baseline", ("T0848", "T0869"), False),
]

RULES: dict[str, Rule] = {r.name: r for r in _RULES}
