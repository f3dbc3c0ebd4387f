"""On a network address the console requires its token: a real non-loopback bind, in a namespace the test makes.

The console runs inside a network namespace of the test's own (tests/sensor/netlab.py), bound to the
namespace's end of a veth pair whose other end is in the root namespace.  Its address is in 198.18.0.0/15
(the benchmarking range: the address of the test's own host, not of any real network) because a loopback
address would need no token.  The client, and a headless Chromium, reach it through the root end.  Without
the token: 401 and the sign-in page; with the token it printed once: the console.  Removing the namespace
removes the veth pair with it, even when the test failed; without root or `ip netns` the test skips.
"""
from __future__ import annotations

import os
import re

import pytest

from tests.sensor.console_support import Client, Serve, analyze_scenarios, chrome, chrome_missing, screenshot
from tests.sensor.netlab import sh


@pytest.fixture
def namespace(lab):
    """(namespace, the console's address in it), reachable from the root namespace."""
    ns = lab.namespace("console")
    outer, inner = f"otsc{os.getpid() % 100000}x{lab.serial}", "eth0"
    octet = os.getpid() % 250 + 1
    sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
    sh("ip", "addr", "add", f"198.18.{octet}.1/30", "dev", outer)
    sh("ip", "link", "set", outer, "up")
    lab.address(ns, inner, f"198.18.{octet}.2/30")
    sh("ip", "-n", ns, "link", "set", inner, "up")
    return ns, f"198.18.{octet}.2"


def test_a_network_bind_requires_the_token_it_prints_once(namespace, tmp_path):
    ns, address = namespace
    directory, _ = analyze_scenarios(tmp_path)
    s = Serve(str(directory), "--bind", f"{address}:8800", prefix=["ip", "netns", "exec", ns])
    try:
        token_line, link_line = s.read_line(), s.read_line()
        token = re.search(r"token \(shown once\): (\S+)", token_line).group(1)
        assert link_line.endswith(f"?token={token}") and len(token) >= 24
        assert "without TLS" in s.proc.stderr.readline()
        c = Client(s.url)
        assert s.url == f"http://{address}:8800/"
        assert c.get("/api/overview")[0] == 401
        assert c.get("/api/assets.csv")[0] == 401
        assert c.get("/files/alerts.jsonl")[0] == 401
        assert c.get("/")[0] == 303
        assert c.get("/api/overview", headers={"Authorization": f"Bearer {token}"})[0] == 200
        reason = chrome_missing()
        if reason is None:
            browse_with_token(s.url, token)
    finally:
        s.stop()


def browse_with_token(url: str, token: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    driver = chrome()
    try:
        driver.get(url)
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "signin"))
        assert driver.current_url.endswith("/login")
        screenshot(driver, "login")
        driver.find_element(By.ID, "token").send_keys("not-the-token")
        driver.find_element(By.ID, "signin").click()
        WebDriverWait(driver, 20).until(lambda d: "not right" in d.page_source)
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "signin").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#map[data-drawn-nodes]"))
    finally:
        driver.quit()


def test_the_token_is_never_optional_off_loopback():
    """The rule itself, without a network: any non-loopback bind gets a token, loopback does not."""
    from otsensor.sensor.console.security import Guard, is_loopback
    assert is_loopback("127.0.0.1") and is_loopback("127.5.5.5") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("198.18.0.2") and not is_loopback("::")
    guard = Guard("198.18.0.2", 8800, token="t" * 24)
    assert not guard.authorized(False, None) and guard.authorized(False, "t" * 24) and guard.authorized(True, None)
    assert Guard("127.0.0.1", 8800).authorized(False, None)
