"""graph.json is written without networkx, but networkx reads it back as the graph it describes; graph.graphml only
when asked for, and then it is the same graph."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def analyze(out: Path, *extra: str) -> None:
    capture = ROOT / "pcaps" / "scenarios" / "attack_identity_sweep.pcap"
    proc = subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", "analyze", str(capture), "-o", str(out),
                           "-q", *extra], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def with_graphml(tmp_path_factory):
    out = tmp_path_factory.mktemp("graph") / "out"
    analyze(out, "--graphml")
    return out


def test_networkx_reads_graph_json_as_the_graph_it_describes(with_graphml):
    data = json.loads((with_graphml / "graph.json").read_text())
    g = nx.node_link_graph(data, edges="edges")
    assets = json.loads((with_graphml / "assets.json").read_text())["assets"]
    assert set(g.nodes) == {a["ip"] for a in assets}
    assert g.is_directed() and g.is_multigraph()
    assert g.number_of_edges() == len(data["edges"]) > 5
    for edge in data["edges"]:
        attrs = g.edges[edge["source"], edge["target"], edge["key"]]
        assert attrs["functions"] == edge["functions"] and attrs["flows"] == edge["flows"] >= 1
    roles = nx.get_node_attributes(g, "role")
    assert {roles[a["ip"]] for a in assets} == {a["role"] for a in assets}


def test_graphml_is_the_same_graph(with_graphml):
    data = json.loads((with_graphml / "graph.json").read_text())
    g = nx.read_graphml(with_graphml / "graph.graphml", force_multigraph=True)
    assert set(g.nodes) == {n["id"] for n in data["nodes"]}
    assert {(u, v, k) for u, v, k in g.edges(keys=True)} == {(e["source"], e["target"], e["key"]) for e in data["edges"]}
    some = data["edges"][0]
    attrs = g.edges[some["source"], some["target"], some["key"]]
    assert json.loads(attrs["functions"]) == some["functions"]   # structured attributes as JSON text


def test_graphml_is_written_only_when_asked(tmp_path):
    analyze(tmp_path / "out")
    assert (tmp_path / "out" / "graph.json").exists()
    assert not (tmp_path / "out" / "graph.graphml").exists()
