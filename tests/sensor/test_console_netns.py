"""On a network address the console requires its token: a real non-loopback bind, in a namespace the test makes.

The console runs inside a network namespace created for the test, bound to the namespace's end of a veth
pair (198.18.0.0/15, the benchmarking range: an address of the test's own host, not of any real network).
The client, and a headless Chromium, reach it from the root namespace through the other end.  Without the
token: 401 and the sign-in page; with the token it printed once: the console.  Namespace and links are removed
afterwards, even on failure.  Skipped when not root or when iproute2 cannot make namespaces.
"""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.sensor.console_support import Client, Serve, analyze_scenarios, chrome, chrome_missing, screenshot, which


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture
def namespace():
    if os.geteuid() != 0 or not which("ip"):
        pytest.skip("needs root and iproute2 to create a network namespace")
    tag = f"otsc{os.getpid() % 100000}"
    ns, outer, inner = tag, f"{tag}a", f"{tag}b"
    octet = os.getpid() % 250 + 1
    outer_addr, inner_addr = f"198.18.{octet}.1", f"198.18.{octet}.2"
    try:
        made = ip("netns", "add", ns, check=False)
        if made.returncode:
            pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
        ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        ip("link", "set", inner, "netns", ns)
        ip("addr", "add", f"{outer_addr}/30", "dev", outer)
        ip("link", "set", outer, "up")
        ip("netns", "exec", ns, "ip", "addr", "add", f"{inner_addr}/30", "dev", inner)
        ip("netns", "exec", ns, "ip", "link", "set", inner, "up")
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, inner_addr
    finally:
        ip("link", "del", outer, check=False)
        ip("netns", "del", ns, check=False)


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
