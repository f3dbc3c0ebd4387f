"""MAC vendors come from netaddr's registry one prefix at a time (baselines/oui.py), with netaddr's answers."""
from __future__ import annotations

import random

from netaddr.eui import ieee

from otsensor.baselines.inventory import mac_vendor, netaddr_org, oui_vendor
from otsensor.baselines.oui import registered_org


def as_text(prefix: int) -> str:
    digits = f"{prefix:06x}"
    return ":".join(digits[i:i + 2] for i in (0, 2, 4))


def test_every_registered_prefix_sampled_answers_as_netaddr() -> None:
    registered = sorted(ieee.OUI_INDEX)   # netaddr's own parse of its index
    sample = random.Random(11).sample(registered, 2000) + registered[:5] + registered[-5:]
    for prefix in sample:
        assert oui_vendor(as_text(prefix)) == netaddr_org(as_text(prefix)), as_text(prefix)


def test_unregistered_prefixes_have_no_vendor() -> None:
    unregistered = [p for p in random.Random(12).sample(range(1 << 24), 3000) if p not in ieee.OUI_INDEX]
    assert unregistered
    for prefix in unregistered:
        assert registered_org(prefix) is None and netaddr_org(as_text(prefix)) is None


def test_mac_vendor_of_a_known_device() -> None:
    assert mac_vendor("00:1b:1b:12:34:56") == netaddr_org("00:1b:1b")   # Siemens
    assert mac_vendor("02:00:00:00:00:01") is None   # locally administered
