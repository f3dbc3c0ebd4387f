"""The analyzers' state as JSON (a live sensor's checkpoint): what is restored is what was kept."""
from __future__ import annotations

import json

import pytest

from otsensor.baselines.graph import CommGraph
from otsensor.baselines.inventory import Inventory
from otsensor.baselines.learn import Observer, to_baseline
from otsensor.baselines.zones import Zones
from otsensor.sensor.baseline_cli import observe
from tests.sensor.netlab import REPO

CAPTURES = [str(REPO / "pcaps" / name) for name in ("scenarios/benign_learn.pcap", "s7_engineering.pcap",
                                                     "modbus_it.pcap")]


def through_json(state: dict) -> dict:
    return json.loads(json.dumps(state))


def test_inventory_graph_and_learner_come_back_whole_from_json():
    inventory, graph, observer, _ = observe(CAPTURES, Zones())
    inventory2, graph2, observer2 = Inventory(), CommGraph(), Observer()
    inventory2.restore(through_json(inventory.to_state()))
    graph2.restore(through_json(graph.to_state()))
    observer2.restore(through_json(observer.to_state()))
    assert inventory2.to_json() == inventory.to_json() and inventory.to_json()["assets"]
    assert graph2.node_link(inventory2) == graph.node_link(inventory)
    assert to_baseline(observer2, inventory2, [], None) == to_baseline(observer, inventory, [], None)
    learned = to_baseline(observer, inventory, [], None)
    assert learned["cadence"] and learned["request_rates"]
    assert learned["dnp3_stations"] == {"127.10.1.40 10": {"masters": ["127.10.2.20"], "master_links": [1],
                                                           "unsolicited": False}}
    assert {"set": [False, True]} in [w.get("bit") for w in learned["written_values"].values()]  # booleans kept


@pytest.mark.parametrize("damage", [lambda s: s["assets"][0].pop("first_seen"),
                                    lambda s: s["assets"][0].update(served=[1, 2]),
                                    lambda s: s.update(dropped="many")])
def test_a_damaged_inventory_state_changes_nothing(damage):
    inventory, _, _, _ = observe(CAPTURES[:1], Zones())
    state = through_json(inventory.to_state())
    damage(state)
    kept = Inventory()
    with pytest.raises((KeyError, TypeError, ValueError, AttributeError)):
        kept.restore(state)
    assert kept.assets == {} and kept.dropped == 0
