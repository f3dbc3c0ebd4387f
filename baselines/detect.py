"""The detector: always-on rules and departures from a learned baseline, raised as aggregated alerts.

It is an analyzer like the inventory: it sees every record and every
finished flow.  Record-level rules fire as records arrive; rules about
rates and cadence compare a second :class:`Observer` of the analysed traffic
with the baseline when the run ends.  Rules and their ATT&CK mapping are in
baselines/rules/catalog.py.
"""
from __future__ import annotations

from typing import Any, Callable

from otsensor.baselines.addresses import is_host
from otsensor.baselines.alert_book import AlertBook
from otsensor.baselines.alerts import Alert, evidence, technique
from otsensor.baselines.cip_originators import CipOriginatorRules
from otsensor.baselines.dnp3_stations import Dnp3StationRules
from otsensor.baselines.internet import PlantSpace
from otsensor.baselines.inventory import OT_PROTOCOLS, FlowLike, Inventory
from otsensor.baselines.layer2_rules import Layer2Rules
from otsensor.baselines.learn import Observer, edge_key, space_key
from otsensor.baselines.policy import DetectionConfig
from otsensor.baselines.protocol_recon import ProtocolRecon
from otsensor.baselines.ranges import covers
from otsensor.baselines.rates import RateRules, counted
from otsensor.baselines.recon import IdentityReads, PendingRead
from otsensor.baselines.roles import LEARNABLE_TAGS, RequesterSides, is_work
from otsensor.baselines.rules.catalog import RULES
from otsensor.baselines.scans import ScanRules, spoken_pairs
from otsensor.baselines.values import departures, value_ops
from otsensor.baselines.zone_edges import ZoneEdgeRules
from otsensor.baselines.zones import IT_SIDE, Zones, is_control_zone
from otsensor.dissectors.arp import ArpMessage
from otsensor.dissectors.base import Category, Direction, Op, Record, Tag

# Always-on rules raised straight from what a dissector says an operation is.
TAG_RULES = {
    Tag.PLC_STOP: "plc_stop",
    Tag.PLC_START: "plc_start",
    Tag.MODE_CHANGE: "mode_change",
    Tag.PROGRAM_DOWNLOAD: "program_download",
    Tag.PROGRAM_UPLOAD: "program_upload",
    Tag.PROGRAM_DELETE: "program_delete",
    Tag.FIRMWARE: "firmware_update",
    Tag.RESTART: "device_restart",
    Tag.LISTEN_ONLY: "modbus_listen_only",
    Tag.DISABLE_UNSOLICITED: "dnp3_disable_unsolicited",
    Tag.FORCE: "forced_value",
    Tag.CLOCK_SET: "clock_set",
    Tag.BROADCAST: "broadcast_write",
}
IDENTITY_WATCHED = ("revision", "serial_number", "order_number", "firmware", "product_code", "model",
                    "hardware_revision", "vendor", "product_name")
MAX_TRACKED = 50_000
TCP = 6


class Detector:
    def __init__(self, zones: Zones | None = None, baseline: dict[str, Any] | None = None,
                 config: DetectionConfig | None = None, inventory: Inventory | None = None,
                 default_ports: dict[str, set[int]] | None = None,
                 emit: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.inventory = inventory
        self.default_ports = default_ports or {}
        self.observer = Observer(zones)
        self.alerts = AlertBook(config or DetectionConfig(), emit)   # open alerts, aggregating
        self.reconfigure(zones, baseline, config)
        self.flow_categories: dict[str, set[str]] = {}
        self.flow_functions: dict[str, set[str]] = {}      # what each open connection did: a new edge's fold
        self.sides = RequesterSides()                       # who issues requests on each connection
        self.space = PlantSpace()                           # industrial hosts, and the plant's public space
        self.identity_reads = IdentityReads()               # waiting for a verdict: recon, or routine
        self.identities: dict[str, dict[str, Any]] = {}
        self.selects_seen: set[str] = set()
        self.new_hosts: set[str] = set()
        self.scans = ScanRules(self.raise_alert)            # host, port and control-zone scans
        self.rates = RateRules(self.raise_alert)            # request and write floods
        self.zone_edges = ZoneEdgeRules(self.raise_alert)   # any connection new to the control zones
        self.protocol_recon = ProtocolRecon(self.raise_alert)  # unit enumeration, replayed commands
        self.dnp3_stations = Dnp3StationRules(self.raise_alert)   # rogue masters, unsolicited, time sets
        self.cip_originators = CipOriginatorRules(self.raise_alert)  # Forward Opens from new originators
        self.layer2 = Layer2Rules(self.raise_alert)            # ARP spoofing, duplicate IPs, new MACs

    def reconfigure(self, zones: Zones | None, baseline: dict[str, Any] | None, config: DetectionConfig | None) -> None:
        """New zones, baseline and settings (a live sensor's reload); open alerts and observations are kept."""
        self.zones = self.observer.zones = zones or Zones()
        self.baseline, self.config, b = baseline, config or DetectionConfig(), baseline or {}
        self.alerts.config = self.config
        self.engineering = set(self.config.engineering_stations) | set(b.get("engineering_hosts", []))
        self.baseline_allow = [(a.get("rule"), a.get("src"), a.get("dst")) for a in b.get("allow", [])]
        self.spoken = spoken_pairs(baseline)

    # -- analyzer interface --------------------------------------------------------------------------

    def observe_record(self, flow: FlowLike, record: Record, op: Op | None,
                       ident: tuple[Direction, dict[str, Any]] | None) -> None:
        if self.baseline is not None:  # the traffic's own statistics matter only to compare with a baseline
            self.observer.observe_record(flow, record, op, ident)
        if self.identity_reads.pending:
            self._recon_verdicts(self.identity_reads.due(record.ts))
        if ident is not None:
            self.sides.note(flow, ident)
            self._identity(flow, record, ident)
        if op is None:
            return
        client, server = self.sides.ends(flow)
        cats = self.flow_categories.get(flow.uid)
        if cats is None:   # the connection's first operation
            if flow.service in OT_PROTOCOLS:
                self.space.saw(client, server)
            cats = set()
            if len(self.flow_categories) < MAX_TRACKED:
                self.flow_categories[flow.uid] = cats
        if op.category not in cats:   # once per connection and category: cheap enough for every record
            cats.add(op.category)
            if is_work(op):
                self.identity_reads.work(client, server)
        if Tag.SELECT in op.tags and len(self.selects_seen) < MAX_TRACKED:
            self.selects_seen.add(server)
        if op.tags:   # (the always-on rules read the tags; a poll has none)
            self._always_on(flow, record, op, client, server)
        if self.baseline is not None:
            self.protocol_recon.observe(self.baseline, self.config.recon_sweep_devices, flow, record, op, client,
                                        server, flow.service or op.protocol)
            self._note_function(flow, op)
            if counted(op):
                self.rates.observe(self.baseline, self.config.rate_burst_min, flow, record, op, client, server,
                                   flow.service or op.protocol)
            if op.ok is not False:
                self._departures(flow, record, op, client, server)
            self.dnp3_stations.observe(self.baseline, flow, record, op, client, server)
            self.cip_originators.observe(self.baseline, flow, record, op, client, server, flow.service or op.protocol)

    def observe_arp(self, message: ArpMessage) -> None:
        if self.baseline is not None:
            self.observer.observe_arp(message)
        self.layer2.observe_arp(self.baseline, self.zones, message)

    def observe_flow(self, flow: FlowLike) -> None:
        if self.baseline is not None:
            self.observer.observe_flow(flow)
        self.layer2.observe_flow(self.baseline, self.zones, flow)
        if self.identity_reads.pending:
            self._recon_verdicts(self.identity_reads.due(flow.last_ts))
        categories = self.flow_categories.pop(flow.uid, set())
        if flow.service in OT_PROTOCOLS and flow.pkts[self.sides.server_side(flow)]:
            self.space.saw(*self.sides.ends(flow))
        self._boundary(flow, categories)
        if flow.transport == TCP and not (flow.bytes[0] or flow.bytes[1]):
            self._probe(flow)
        if self.baseline is not None:
            self._flow_departures(flow, self.flow_functions.pop(flow.uid, set()))
        self.sides.forget(flow)

    def open_alerts_state(self) -> list[dict[str, Any]]:
        """The alerts still aggregating, as JSON (a live sensor's checkpoint)."""
        return self.alerts.state()

    def restore_open_alerts(self, state: list[dict[str, Any]]) -> None:
        """Aggregate on into the alerts :meth:`open_alerts_state` wrote (see AlertBook.restore)."""
        self.alerts.restore(state)

    def finish(self, sink: Any) -> list[Alert]:
        self._recon_verdicts(self.identity_reads.remaining())
        if self.baseline is not None:
            self._rates_and_cadence()
        alerts = self.alerts.drain()
        for alert in alerts:
            sink.write("alerts", alert.to_dict())
        return alerts

    # -- raising -------------------------------------------------------------------------------------

    def raise_alert(self, rule_name: str, ts: float, message: str, identifier: str, flow: FlowLike | None = None,
                    record: Record | None = None, baseline: str | None = None, fold: dict | None = None,
                    severity: str | None = None, extra_techniques: tuple[str, ...] = (),
                    function: str | None = None, protocol: str | None = None,
                    src: str | None = None, dst: str | None = None, running_total: bool = False) -> None:
        rule = RULES[rule_name]
        src = src or (flow.orig_h if flow else None)
        dst = dst or (flow.resp_h if flow else None)
        if self.config.allowed(rule_name, src, dst, ts) or self._baseline_allows(rule_name, src, dst):
            return
        techniques = rule.techniques + tuple(technique(t) for t in extra_techniques if t not in rule.technique_ids)
        alert = Alert(rule=rule.name, title=rule.title, severity=severity or rule.severity, category=rule.category,
                      techniques=techniques, first_seen=ts, last_seen=ts, message=message, identifier=identifier,
                      src=src, dst=dst, baseline=baseline, fold=fold, function=function,
                      protocol=protocol or (flow.service if flow else None), running_total=running_total)
        if flow is not None:
            alert.src_port, alert.dst_port = flow.orig_p, flow.resp_p
            if src == flow.resp_h != flow.orig_h:   # requests from the responder (a DNP3 master dialled)
                alert.src_port, alert.dst_port = flow.resp_p, flow.orig_p
            alert.transport, alert.uid = flow.proto, flow.uid
            alert.zones = self.zones.tag(flow.orig_h, flow.resp_h) if self.zones.configured else {}
            alert.add_evidence(evidence(flow, record))
        elif record is not None:   # a record of no connection (ARP)
            alert.add_evidence({"log": record.LOG, "ts": round(record.ts, 6), **record.to_dict()})
        self.alerts.add(alert)

    def _note_function(self, flow: FlowLike, op: Op) -> None:
        functions = self.flow_functions.get(flow.uid)
        if functions is None:
            if len(self.flow_functions) >= MAX_TRACKED:
                return
            functions = self.flow_functions[flow.uid] = set()
        functions.add(op.function)

    def _baseline_allows(self, rule: str, src: str | None, dst: str | None) -> bool:
        return any(r == rule and (s is None or s == src) and (d is None or d == dst)
                   for r, s, d in self.baseline_allow)

    # -- always-on rules -----------------------------------------------------------------------------

    def _always_on(self, flow: FlowLike, record: Record, op: Op, client: str, server: str) -> None:
        for tag in op.tags:
            rule = TAG_RULES.get(tag)
            if rule is None or (tag in LEARNABLE_TAGS and self._learned_engineering(client, server, flow, tag)):
                continue
            self.raise_alert(rule, record.ts, f"{client} -> {server}: {op.protocol} {op.function}",
                             f"{client}>{server}:{op.protocol}:{tag}", flow, record, function=op.function,
                             src=client, dst=server, fold={"kind": "allow", "rule": rule, "src": client, "dst": server})
        if Tag.DIRECT_OPERATE in op.tags and self._site_uses_sbo(server):
            self.raise_alert("direct_operate_without_select", record.ts,
                             f"{client} used {op.function} on {server}, which is operated by select-before-operate",
                             f"{client}>{server}:{op.protocol}", flow, record, function=op.function,
                             baseline="select-before-operate seen for this outstation", src=client, dst=server,
                             fold={"kind": "allow", "rule": "direct_operate_without_select", "src": client,
                                   "dst": server})
        if Tag.IDENTITY_READ in op.tags and client not in self.engineering \
                and not self._learned_engineering(client, server, flow, Tag.IDENTITY_READ):
            self.identity_reads.read(client, server, record.ts, flow, record, op.function, op.protocol)

    def _learned_engineering(self, client: str, server: str, flow: FlowLike, tag: str) -> bool:
        if self.baseline is None:
            return False
        ops = self.baseline["engineering_operations"].get(edge_key(client, server, flow.service or ""), {})
        if tag in ops:
            return True
        edge = self.baseline["edges"].get(edge_key(client, server, flow.service or ""))
        return tag == Tag.IDENTITY_READ and edge is not None

    def _engineering_station(self, host: str) -> bool:
        """Configured, learned, or issuing engineering operations in this run (the inventory's role says)."""
        asset = self.inventory.assets.get(host) if self.inventory is not None else None
        return host in self.engineering or (asset is not None and bool(asset.engineering))

    def _site_uses_sbo(self, server: str) -> bool:
        if self.config.select_before_operate is not None:
            return self.config.select_before_operate
        learned = set(self.baseline.get("select_before_operate", [])) if self.baseline else set()
        return server in learned or server in self.selects_seen

    def _recon_verdicts(self, reads: list[PendingRead]) -> None:
        """Identity reads whose reader did nothing to clear them: reconnaissance, and a sweep past a count."""
        for read in reads:
            client, server = read.client, read.server
            if self._engineering_station(client):
                continue   # an engineering station going online reads identities before it works
            self.raise_alert("recon_identity_read", read.ts,
                             f"{client} (not an engineering station) read identity of {server} with {read.function}"
                             + (f" ({read.reads} reads)" if read.reads > 1 else "") + " and did nothing else with it",
                             f"{client}>{server}:{read.protocol}", read.flow, read.record, function=read.function,
                             src=client, dst=server, fold={"kind": "engineering_host", "ip": client})
            devices = self.identity_reads.left_alone(read)
            if devices >= self.config.recon_sweep_devices:
                self.raise_alert("recon_sweep", read.ts, f"{client} read device identification from {devices} devices",
                                 f"{client}:sweep", read.flow, read.record, function=read.function,
                                 running_total=True, src=client, dst=server,
                                 fold={"kind": "engineering_host", "ip": client})

    def _identity(self, flow: FlowLike, record: Record, ident: tuple[Direction, dict[str, Any]]) -> None:
        side, facts = ident
        ip = flow.orig_h if side == Direction.ORIG else flow.resp_h
        known = self.identities.get(ip)
        if known is None:
            base = (self.baseline or {}).get("assets", {}).get(ip, {}).get("identity", {})
            if len(self.identities) >= MAX_TRACKED:
                return
            known = self.identities[ip] = dict(base)
        changed = {k: (known[k], facts[k]) for k in IDENTITY_WATCHED
                   if k in facts and k in known and facts[k] not in (None, "") and facts[k] != known[k]}
        for k in IDENTITY_WATCHED:
            if k in facts and facts[k] not in (None, ""):
                known.setdefault(k, facts[k])
        if changed:
            what = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in sorted(changed.items()))
            self.raise_alert("identity_change", record.ts, f"{ip}: {what}", f"{ip}:identity", flow, record,
                             baseline=f"inventory identity of {ip}",
                             fold={"kind": "identity", "ip": ip, "facts": {k: v[1] for k, v in changed.items()}},
                             src=flow.orig_h, dst=flow.resp_h)
            for k, (_, new) in changed.items():
                known[k] = new

    # -- zones -------------------------------------------------------------------------------------------

    def _boundary(self, flow: FlowLike, categories: set[str]) -> None:
        if not self.zones.configured:   # an industrial host and a public address outside the plant's space
            public = self.space.internet_peer(flow.orig_h, flow.resp_h,
                                              lambda ip: self.zones.zone_of(ip).kind == "external")
            if public is not None:
                self._internet_alert(flow, public)
            return
        src, dst = self.zones.zone_of(flow.orig_h), self.zones.zone_of(flow.resp_h)
        protocol = flow.protocol_key
        if src.kind in IT_SIDE and is_control_zone(dst) and \
                not self.zones.conduit_allows(src, dst, protocol, flow.resp_p, flow.orig_h, flow.resp_h):
            control = categories & {Category.CONTROL, Category.PROGRAM}
            writes = Category.WRITE in categories
            severity = "critical" if control else "high" if writes else None
            extra = ("T0855",) if control or writes else ()
            carried = ", ".join(sorted(categories)) or "no decoded operations"
            # attempts that exchanged no data (a scan) aggregate per source and zone, not per port
            probe = not (flow.bytes[0] or flow.bytes[1])
            identifier = f"{flow.orig_h}>{dst.name}:probes" if probe else f"{flow.orig_h}>{flow.resp_h}:{protocol}"
            self.raise_alert("it_ot_boundary_crossing", flow.first_ts,
                             f"{flow.orig_h} ({src.name}, {src.kind}) -> {flow.resp_h} ({dst.name}, level "
                             f"{_level(dst.level)}) over {protocol}: "
                             f"{'connection attempt without data' if probe else carried}",
                             identifier, flow, severity=severity,
                             extra_techniques=extra, protocol=protocol,
                             baseline=f"no conduit from {src.name} to {dst.name} allows {protocol}",
                             fold={"kind": "allow", "rule": "it_ot_boundary_crossing", "src": flow.orig_h,
                                   "dst": flow.resp_h})
        for inside, outside, other in ((src, dst, flow.resp_h), (dst, src, flow.orig_h)):
            if inside.kind == "ot" and outside.kind == "external":
                self._internet_alert(flow, other)
                break

    def _probe(self, flow: FlowLike) -> None:
        self.scans.probe(flow, self.config, self._ot_ports(), self._ot_host,
                         None if self.baseline is None else self.spoken)

    def _ot_host(self, ip: str) -> bool:
        if self.zones.configured:
            return self.zones.zone_of(ip).kind == "ot"
        return bool((self.baseline or {}).get("assets", {}).get(ip, {}).get("protocols_served"))

    def _ot_ports(self) -> set[int]:
        return {p for ports in self.default_ports.values() for p in ports}

    def _internet_alert(self, flow: FlowLike, public: str) -> None:
        self.raise_alert("ot_internet_communication", flow.first_ts,
                         f"{flow.orig_h} -> {flow.resp_h} ({flow.proto}/{flow.resp_p}) crosses between an OT host "
                         f"and the Internet address {public}", f"{flow.orig_h}>{flow.resp_h}", flow,
                         protocol=flow.protocol_key,
                         fold={"kind": "allow", "rule": "ot_internet_communication", "src": flow.orig_h,
                               "dst": flow.resp_h})

    # -- baseline departures -------------------------------------------------------------------------

    def _departures(self, flow: FlowLike, record: Record, op: Op, client: str, server: str) -> None:
        b = self.baseline
        assert b is not None
        protocol = flow.service or op.protocol
        ekey = edge_key(client, server, protocol)
        edge = b["edges"].get(ekey)
        if edge is not None and op.function not in edge["functions"]:
            sev = "high" if op.category in (Category.WRITE, Category.CONTROL, Category.PROGRAM) else None
            self.raise_alert("new_function", record.ts, f"{ekey}: {op.function} never seen on this edge",
                             f"{ekey}:{op.function}", flow, record, severity=sev, function=op.function,
                             src=client, dst=server,
                             baseline=f"functions on {ekey}: {', '.join(sorted(edge['functions']))}",
                             fold={"kind": "edge", "client": client, "server": server, "protocol": protocol,
                                   "function": op.function})
        if op.category == Category.WRITE:
            writers = b["writers"].get(f"{server} {protocol}", [])
            if client not in writers:
                self.raise_alert("new_writer", record.ts,
                                 f"{client} wrote to {server} ({protocol} {op.function}); it never did before",
                                 f"{client}>{server}:{protocol}", flow, record, function=op.function,
                                 src=client, dst=server,
                                 baseline=f"writers of {server} {protocol}: {', '.join(writers) or 'none'}",
                                 fold={"kind": "writer", "client": client, "server": server, "protocol": protocol})
        extras = record.extra_ops()
        self._range(flow, record, op, protocol, client, server)
        for extra in extras:
            self._range(flow, record, extra, protocol, client, server)
        for one in value_ops(op, extras):
            if one.category == Category.WRITE:
                self._values(flow, record, one, protocol, client, server)

    def _range(self, flow: FlowLike, record: Record, op: Op, protocol: str, client: str, server: str) -> None:
        if op.space is None or op.start is None or op.category not in (Category.READ, Category.WRITE):
            return
        access = "written" if op.category == Category.WRITE else "read"
        skey = space_key(server, protocol, op.space)
        learned = self.baseline["address_ranges"].get(skey, {}).get(access, [])  # type: ignore[index]
        if covers(learned, op.start, op.count or 1):
            return
        last = op.start + (op.count or 1) - 1
        self.raise_alert("address_out_of_range", record.ts,
                         f"{client} {access} {op.space} {op.start}..{last} on {server}",
                         f"{skey}:{access}", flow, record, function=op.function, src=client, dst=server,
                         severity="high" if access == "written" else None,
                         extra_techniques=("T0836",) if access == "written" else (),
                         baseline=f"learned {access} ranges of {skey}: {learned or 'none'}",
                         fold={"kind": "range", "server": server, "protocol": protocol, "space": op.space,
                               "access": access, "start": op.start, "count": op.count or 1})

    def _values(self, flow: FlowLike, record: Record, op: Op, protocol: str, client: str, server: str) -> None:
        for d in departures(self.baseline["written_values"], server, protocol, op):  # type: ignore[index]
            at = f"{op.space} {'*' if d.address is None else d.address}"
            what = f"as {d.width}, an item only ever written as {d.learned}" if d.new_width else \
                f"learned {d.learned}"
            self.raise_alert("new_write_width" if d.new_width else "value_out_of_range", record.ts,
                             f"{client} wrote {d.value!r} to {at} on {server} {what}",
                             f"{d.key} {d.width}", flow, record, function=op.function, src=client, dst=server,
                             baseline=f"values written to {d.key}: {d.learned}",
                             fold={"kind": "value", "key": d.key, "width": d.width, "value": d.value})

    def _flow_departures(self, flow: FlowLike, functions: set[str]) -> None:
        b = self.baseline
        assert b is not None
        self.zone_edges.observe_flow(b, self.zones, flow)
        in_ot = self.zones.configured and self.zones.zone_of(flow.resp_h).kind == "ot"
        if not flow.service and not in_ot:
            return
        for host in (flow.orig_h, flow.resp_h):
            if host in b["assets"] or host in self.new_hosts or len(self.new_hosts) >= MAX_TRACKED or \
                    not is_host(host):
                continue
            zone = self.zones.zone_of(host)
            if (self.zones.configured and zone.kind == "ot") or (not self.zones.configured and flow.service):
                self.new_hosts.add(host)
                self.raise_alert("new_asset", flow.first_ts, f"{host} appeared in zone {zone.name}",
                                 f"{host}", flow, src=host, dst=None if host == flow.resp_h else flow.resp_h,
                                 fold={"kind": "asset", "ip": host, "info": {"zone": zone.name}})
        protocol = flow.protocol_key
        client, server = self.sides.ends(flow)
        ekey = edge_key(client, server, protocol)
        if flow.service and ekey not in b["edges"] and flow.pkts[self.sides.server_side(flow)]:
            self.raise_alert("new_edge", flow.first_ts, f"new edge {ekey}", ekey, flow, protocol=protocol,
                             baseline="edge not in the baseline", src=client, dst=server,
                             fold={"kind": "edge", "client": client, "server": server, "protocol": protocol,
                                   "port": flow.resp_p, "functions": sorted(functions)})
        if flow.service:
            defaults = self.default_ports.get(flow.service, set())
            learned = set(b["service_ports"].get(flow.service, []))
            if defaults and flow.resp_p not in defaults | learned:
                self.raise_alert("nonstandard_port", flow.first_ts,
                                 f"{flow.service} on {flow.proto}/{flow.resp_p} at {flow.resp_h}",
                                 f"{flow.resp_h}:{flow.service}:{flow.resp_p}", flow,
                                 baseline=f"{flow.service} ports: {sorted(defaults | learned)}",
                                 fold={"kind": "service_port", "protocol": flow.service, "port": flow.resp_p})

    def _rates_and_cadence(self) -> None:
        b = self.baseline
        assert b is not None
        obs = self.observer
        now = obs.last_ts or 0.0
        current = obs.cadence()
        for key, learned in b["cadence"].items():
            interval, jitter = learned["interval_s"], learned.get("jitter_s", 0.0)
            client, _, rest = key.partition(" -> ")
            server = rest.split(" ", 1)[0]
            seen = current.get(key)
            if seen is not None:
                if abs(seen["interval_s"] - interval) > max(4 * jitter, 0.3 * interval, 0.05):
                    self.raise_alert("cadence_change", now,
                                     f"{key}: every {seen['interval_s']:g}s, learned {interval:g}s", key,
                                     baseline=f"interval {interval:g}s, jitter {jitter:g}s", src=client, dst=server,
                                     extra_techniques=() if seen["interval_s"] < interval else ("T0804",),
                                     fold={"kind": "cadence", "key": key, "interval_s": seen["interval_s"],
                                           "jitter_s": seen["jitter_s"]})
            elif key not in obs.poll_times and obs.duration >= 10 * interval \
                    and client in obs.hosts_seen and server in obs.hosts_seen:
                self.raise_alert("silent_edge", now, f"{key}: no request in {obs.duration:.0f}s, learned every "
                                 f"{interval:g}s", key, baseline=f"interval {interval:g}s", src=client, dst=server,
                                 fold={"kind": "cadence", "key": key, "interval_s": None})
        for ekey, buckets in obs.errors.items():
            peak = max(buckets.values())
            learned_peak = b["error_peaks"].get(ekey, {}).get("max_errors_per_minute", 0)
            if peak >= self.config.error_burst_per_minute and peak > 3 * learned_peak:
                client, _, rest = ekey.partition(" -> ")
                self.raise_alert("error_burst", now, f"{ekey}: {peak} error responses in one minute", ekey,
                                 baseline=f"learned peak {learned_peak} per minute", src=client,
                                 dst=rest.split(" ", 1)[0],
                                 fold={"kind": "rate", "table": "error_peaks", "key": ekey,
                                       "value": {"max_errors_per_minute": peak, "operations": obs.ops[ekey]}})
        hours = max(obs.duration, 60.0) / 3600
        for name, count in obs.anomalies.items():
            learned_rate = b["anomaly_rates"].get(name, {}).get("per_hour", 0.0)
            rate = count / hours
            if count >= self.config.anomaly_min_count and rate > 3 * learned_rate + 1:
                self.raise_alert("anomaly_rate", now, f"{count} {name} anomalies ({rate:.0f}/h, learned "
                                 f"{learned_rate:g}/h)", name, baseline=f"{name}: {learned_rate:g} per hour",
                                 fold={"kind": "rate", "table": "anomaly_rates", "key": name,
                                       "value": {"count": count, "per_hour": round(rate, 3)}})


def _level(level: float | None) -> str:
    return "-" if level is None else f"{level:g}"

