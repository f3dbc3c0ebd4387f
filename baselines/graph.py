"""The communication graph: assets as nodes, client -> server edges per protocol (networkx MultiDiGraph).

Each edge carries traffic counts, first/last seen, the functions used with
counts, the engineering and control operations seen, and the address ranges
read and written per address space (Modbus table, S7 area, DNP3 group, ...).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from otsensor.baselines.documents import write_document
from otsensor.baselines.inventory import MAX_RECENT, FlowLike, Inventory, counts
from otsensor.baselines.ranges import RangeSet
from otsensor.baselines.roles import RequesterSides
from otsensor.dissectors.base import Category, Op, Record, columns

if TYPE_CHECKING:
    import networkx as nx

MAX_EDGES: Final = 100_000
MAX_FUNCTIONS: Final = 256
MAX_CONNECTIONS: Final = 16
MAX_SPACES: Final = 256
# Address intervals held in all, per edge (read and written, every space) and in the whole graph: a client
# reading scattered addresses of hundreds of data blocks on many PLCs (a scan, or hostile traffic) would
# otherwise fill 256 spaces x 256 intervals on every edge.  Past a budget nothing new is kept apart: an
# address then widens the closest interval its space has (the ranges stay true, less precise), and no new
# space is opened.
MAX_EDGE_INTERVALS: Final = 4096
MAX_GRAPH_INTERVALS: Final = 500_000
# One edge of graph.json as a flat row (:func:`edge_rows`) in Zeek's vocabulary (dissectors/base.py): the
# ClickHouse sink's graph_edges table.
EDGE_COLUMNS: Final = columns(
    "client:addr server:addr protocol:string flows:count packets:count bytes:count first_seen:time last_seen:time "
    "server_ports:vector[count] units:vector[count] functions:json operations:json error_responses:count "
    "connections:json ranges_read:json ranges_written:json")


class Edge:
    __slots__ = ("flows", "packets", "bytes", "first_seen", "last_seen", "functions", "operations",
                 "exceptions", "read", "written", "ports", "units", "connections", "intervals")

    def __init__(self, ts: float) -> None:
        self.flows = 0
        self.packets = 0
        self.bytes = 0
        self.first_seen = self.last_seen = ts
        # plain dicts, not Counters: counted for every record, and the compiled build reaches a dict directly
        self.functions: dict[str, int] = {}
        self.operations: dict[str, int] = {}   # security-relevant tags (plc_stop, program_download, ...)
        self.exceptions = 0
        self.read: dict[str, RangeSet] = {}
        self.written: dict[str, RangeSet] = {}
        self.ports: set[int] = set()
        self.units: set[int] = set()
        self.connections: list[dict[str, Any]] = []   # I/O connections set up on this edge (RPI, class)
        self.intervals = 0   # in read and written together (MAX_EDGE_INTERVALS)

    def to_state(self) -> dict[str, Any]:
        """Everything this edge knows, as JSON (a live sensor's checkpoint: sensor/checkpoint.py)."""
        return {"flows": self.flows, "packets": self.packets, "bytes": self.bytes, "first_seen": self.first_seen,
                "last_seen": self.last_seen, "functions": dict(self.functions), "operations": dict(self.operations),
                "exceptions": self.exceptions, "read": {k: r.to_list() for k, r in self.read.items()},
                "written": {k: r.to_list() for k, r in self.written.items()}, "ports": sorted(self.ports),
                "units": sorted(self.units), "connections": self.connections}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Edge":
        e = cls(float(state["first_seen"]))
        e.last_seen = float(state["last_seen"])
        e.flows, e.packets, e.bytes = int(state["flows"]), int(state["packets"]), int(state["bytes"])
        e.functions, e.operations = dict(counts(state["functions"])), dict(counts(state["operations"]))
        e.exceptions = int(state["exceptions"])
        e.read = {k: RangeSet(v) for k, v in state["read"].items()}
        e.written = {k: RangeSet(v) for k, v in state["written"].items()}
        e.intervals = sum(map(len, (*e.read.values(), *e.written.values())))
        e.ports, e.units = set(state["ports"]), set(state["units"])
        e.connections = list(state["connections"])
        return e

    def to_attrs(self) -> dict[str, Any]:
        return {
            "flows": self.flows, "packets": self.packets, "bytes": self.bytes,
            "first_seen": round(self.first_seen, 6), "last_seen": round(self.last_seen, 6),
            "server_ports": sorted(self.ports),
            "units": sorted(self.units),
            "functions": dict(sorted(self.functions.items())),
            "operations": dict(sorted(self.operations.items())),
            "error_responses": self.exceptions,
            "connections": self.connections,
            "ranges_read": {s: r.to_list() for s, r in sorted(self.read.items())},
            "ranges_written": {s: r.to_list() for s, r in sorted(self.written.items())},
        }


class RecentOp:
    """A connection's edge (for the protocol it went to) and its last operation (CommGraph.recent).

    The edge stays the connection's while its sides do; an Op the dissector repeats is the same object
    (an I/O connection's, a read of the same tag), so seeing it again only counts on the edge; ``held``:
    its range is in the edge's ranges (or it has none), where it stays, since ranges only widen."""

    __slots__ = ("protocol", "edge", "op", "held")

    def __init__(self, protocol: str, edge: Edge) -> None:
        self.protocol = protocol
        self.edge = edge
        self.op: Op | None = None
        self.held = False


class CommGraph:
    """The analyzer that builds graph.json and graph.graphml."""

    def __init__(self) -> None:
        self.edges: dict[tuple[str, str, str], Edge] = {}
        self.dropped_edges = 0
        self.intervals = 0   # address intervals on every edge (MAX_GRAPH_INTERVALS)
        self.sides = RequesterSides()   # edges go from who issues requests to who answers them
        self.recent: dict[str, RecentOp] = {}   # by connection uid, while it lasts

    def edge(self, client: str, server: str, protocol: str, ts: float) -> Edge | None:
        key = (client, server, protocol)
        e = self.edges.get(key)
        if e is None:
            if len(self.edges) >= MAX_EDGES:
                self.dropped_edges += 1
                return None
            e = self.edges[key] = Edge(ts)
        return e

    def to_state(self) -> dict[str, Any]:
        """The graph as JSON, for a live sensor's checkpoint (the connections in progress are not in it)."""
        return {"edges": [[*key, e.to_state()] for key, e in self.edges.items()], "dropped": self.dropped_edges}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`to_state` wrote (nothing changes when it raises KeyError, TypeError,
        ValueError or AttributeError)."""
        edges = {(str(c), str(s), str(p)): Edge.from_state(e) for c, s, p, e in state["edges"]}
        self.edges, self.dropped_edges = edges, int(state["dropped"])
        self.recent.clear()
        self.intervals = sum(e.intervals for e in edges.values())

    def observe_flow(self, flow: FlowLike) -> None:
        protocol = flow.protocol_key
        client, server = self.sides.ends(flow)
        self.sides.forget(flow)
        self.recent.pop(flow.uid, None)
        e = self.edge(client, server, protocol, flow.first_ts)
        if e is None:
            return
        e.flows += 1
        e.packets += flow.pkts[0] + flow.pkts[1]
        e.bytes += flow.bytes[0] + flow.bytes[1]
        e.first_seen = min(e.first_seen, flow.first_ts)
        e.last_seen = max(e.last_seen, flow.last_ts)
        if len(e.ports) < 64:
            e.ports.add(flow.resp_p)

    def observe_record(self, flow: FlowLike, record: Record, op: Op | None, ident: Any = None) -> None:
        if ident is not None:
            self.sides.note(flow, ident)
            self.recent.pop(flow.uid, None)   # the sides may have changed: the edge is looked up again
        if op is None:
            return
        protocol = flow.service or op.protocol
        recent = self.recent.get(flow.uid)
        if recent is not None and recent.protocol == protocol:
            e = recent.edge
        else:
            client, server = self.sides.ends(flow)
            found = self.edge(client, server, protocol, record.ts)
            if found is None:
                return
            e = found
            if recent is not None or len(self.recent) < MAX_RECENT:   # (a full memo only leaves new ones out)
                recent = self.recent[flow.uid] = RecentOp(protocol, e)
        self._count(e, op, record.ts)
        if recent is not None and recent.op is op:
            # the connection's last operation again (a poll, an I/O datagram): its units and connection are
            # on the edge, and its range too unless a budget kept it out (or, full, makes add_within act)
            if not recent.held or self._full(e):
                recent.held = self._ranges(e, op)
        else:
            if op.unit is not None and len(e.units) < 256:
                e.units.add(op.unit)
            if op.category == Category.SESSION and op.detail:
                conn = dict(op.detail, function=op.function)
                if conn not in e.connections and len(e.connections) < MAX_CONNECTIONS:
                    e.connections.append(conn)
            held = self._ranges(e, op)
            if recent is not None:
                recent.op, recent.held = op, held
        for extra in record.extra_ops():
            self._ranges(e, extra)

    def _count(self, e: Edge, op: Op, ts: float) -> None:
        """What every operation adds to its edge: last seen, its function, its tags, an error reply."""
        if ts > e.last_seen:
            e.last_seen = ts
        functions = e.functions
        seen = functions.get(op.function)
        if seen is not None:
            functions[op.function] = seen + 1
        elif len(functions) < MAX_FUNCTIONS:
            functions[op.function] = 1
        for tag in op.tags:
            e.operations[tag] = e.operations.get(tag, 0) + 1
        if op.ok is False:
            e.exceptions += 1

    def _full(self, e: Edge) -> bool:
        return e.intervals >= MAX_EDGE_INTERVALS or self.intervals >= MAX_GRAPH_INTERVALS

    def _ranges(self, e: Edge, op: Op) -> bool:
        """Add the operation's range to its edge; False when a budget kept it out (no space for it)."""
        if op.space is None or op.start is None or op.ok is False:
            return True
        target = e.written if op.category == Category.WRITE else e.read if op.category == Category.READ else None
        if target is None:
            return True
        full = self._full(e)
        rs = target.get(op.space)
        if rs is None:
            if len(target) >= MAX_SPACES or full:
                return False
            rs = target[op.space] = RangeSet()
        grown = rs.add_within(op.start, op.count or 1, full)
        e.intervals += grown
        self.intervals += grown
        return True

    def node_link(self, inventory: Inventory) -> dict[str, Any]:
        """The graph in networkx's node-link form (``networkx.node_link_graph(data, edges="edges")`` reads it)."""
        nodes = []
        for ip, asset in sorted(inventory.assets.items()):
            role, _ = asset.role()
            nodes.append({"id": ip, "role": role, "identity": dict(sorted(asset.identity.items())),
                          "macs": sorted(asset.macs)})
        edges = [{"source": client, "target": server, "key": protocol, "protocol": protocol, **e.to_attrs()}
                 for (client, server, protocol), e in sorted(self.edges.items())]
        known = set(inventory.assets)
        for edge in edges:   # an end the inventory had no room for is still a node (as networkx adds it)
            for end in (edge["source"], edge["target"]):
                if end not in known:
                    known.add(end)
                    nodes.append({"id": end})
        return {"directed": True, "multigraph": True, "graph": {}, "nodes": nodes, "edges": edges}

    def build(self, inventory: Inventory) -> "nx.MultiDiGraph":
        """The graph as a networkx MultiDiGraph (imported only when asked for: it costs a tenth of a second)."""
        import networkx as nx

        return nx.node_link_graph(self.node_link(inventory), edges="edges")


def edge_rows(graph: CommGraph) -> list[dict[str, Any]]:
    """Every edge as one row of EDGE_COLUMNS, client -> server per protocol, in a stable order."""
    return [{"client": client, "server": server, "protocol": protocol, **e.to_attrs()}
            for (client, server, protocol), e in sorted(graph.edges.items())]


def write_graph(data: dict[str, Any], json_path: str) -> None:
    """graph.json: node-link JSON, written directly (building a networkx graph to dump it cost more than the run)."""
    write_document(json_path, data, sort_keys=True)


def write_graphml(data: dict[str, Any], path: str) -> None:
    """graph.graphml for Gephi and yEd, through networkx; structured attributes become JSON text."""
    import networkx as nx

    flat = nx.MultiDiGraph()
    for node in data["nodes"]:
        flat.add_node(node["id"], **{k: _scalar(v) for k, v in node.items() if k != "id"})
    for edge in data["edges"]:
        attrs = {k: _scalar(v) for k, v in edge.items() if k not in ("source", "target", "key")}
        flat.add_edge(edge["source"], edge["target"], key=edge["key"], **attrs)
    nx.write_graphml(flat, path)


def _scalar(value: Any) -> Any:
    """GraphML holds scalars only: structured attributes are written as JSON text."""
    if isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, sort_keys=True, default=str)
