"""Test support for the web console: a real output directory, a real `otsensor serve`, a real headless Chromium.

* :func:`analyze_scenarios` runs `otsensor analyze` on the scenario captures with their zones and a baseline
  learned from ``benign_learn.pcap`` (as the README's workflow does), into a directory the test owns.
* :class:`Serve` starts `otsensor serve` in a subprocess on a free loopback port and reads the address it prints.
* :func:`chrome` drives Debian's /usr/bin/chromium through /usr/bin/chromedriver with selenium; selenium-manager is
  never asked for a driver or a browser (the service names the system driver).  Tests skip when either is absent.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "pcaps" / "scenarios"
SCREENSHOTS = ROOT / "tests" / "output" / "console"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def otsensor(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otsensor.sensor.cli", *args], capture_output=True, text=True,
                          check=check, timeout=300, **kwargs)


def analyze_scenarios(out: Path) -> tuple[Path, Path]:
    """(output directory, baseline file) of the scenario plant."""
    captures = sorted(SCENARIOS.glob("*.pcap"))
    if not captures:
        pytest.skip("pcaps/scenarios/ holds no capture")
    zones = SCENARIOS / "zones.toml"
    baseline = out / "baselines" / "baseline.json"
    baseline.parent.mkdir(parents=True)
    otsensor("baseline", "learn", str(SCENARIOS / "benign_learn.pcap"), "--zones", str(zones), "-o", str(baseline))
    directory = out / "run"
    otsensor("analyze", *map(str, captures), "--zones", str(zones), "--baseline", str(baseline), "-o", str(directory),
             "-q")
    return directory, baseline


def alerts_of(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "alerts.jsonl").read_text().splitlines() if line.strip()]


def assets_of(directory: Path) -> list[dict]:
    return json.loads((directory / "assets.json").read_text())["assets"]


@pytest.fixture(scope="module")
def plant(tmp_path_factory) -> tuple[Path, Path]:
    """The scenario plant analysed into a directory of the module's own, and its baseline."""
    return analyze_scenarios(tmp_path_factory.mktemp("console"))


@pytest.fixture(scope="module")
def console_server(plant):
    """`otsensor serve` over the plant, with its baseline, on a free loopback port."""
    directory, baseline = plant
    s = Serve(str(directory), "--bind", "127.0.0.1:0", "--baseline", str(baseline))
    yield s
    s.stop()


class Serve:
    """`otsensor serve ARGS` in a subprocess; ``url`` is the address it printed, ``lines`` what it printed."""

    URL = re.compile(r"on (https?://\S+/)")

    def __init__(self, *args: str, prefix: list[str] | None = None, env: dict | None = None) -> None:
        argv = [*(prefix or []), sys.executable, "-m", "otsensor.sensor.cli", "serve", *args]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self.url = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            m = self.URL.search(line)
            if m:
                self.url = m.group(1)
                break
        if not self.url:
            self.stop()
            raise AssertionError(f"otsensor serve did not start: {self.lines} {self.proc.stderr.read()}")

    def read_line(self) -> str:
        line = self.proc.stdout.readline().rstrip("\n")
        self.lines.append(line)
        return line

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def free_bind() -> str:
    return "127.0.0.1:0"


def chrome_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def chrome(width: int = 1400, height: int = 900):
    """A headless Chromium driven through the system chromedriver (nothing is downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--metrics-recording-only", "--no-default-browser-check", "--disable-default-apps"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_AVOID_STATS", "true")
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def screenshot(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def which(tool: str) -> bool:
    return shutil.which(tool) is not None


class Client:
    """A minimal HTTP client that keeps the console's session cookie, as a browser would."""

    def __init__(self, base: str, context=None) -> None:
        import http.client
        import urllib.parse
        self.base = urllib.parse.urlsplit(base)
        self.cookie: str | None = None
        self._http = http.client
        self.context = context

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                host: str | None = None):
        h = dict(headers or {})
        if self.cookie and "Cookie" not in h:
            h["Cookie"] = self.cookie
        if host:
            h["Host"] = host
        if self.base.scheme == "https":
            conn = self._http.HTTPSConnection(self.base.hostname, self.base.port, timeout=30, context=self.context)
        else:
            conn = self._http.HTTPConnection(self.base.hostname, self.base.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=h)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        cookie = response.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def json(self, path: str, **kwargs):
        status, _, data = self.get(path, **kwargs)
        assert status == 200, (path, status, data[:300])
        return json.loads(data)

    def csrf(self) -> str:
        """The CSRF token the pages carry for this session."""
        status, _, page = self.get("/alerts")
        assert status == 200, status
        return re.search(rb'data-csrf="([0-9a-f]+)"', page).group(1).decode()

    def post_json(self, path: str, data, csrf: str | None = None, headers: dict | None = None):
        h = {"Content-Type": "application/json", **(headers or {})}
        if csrf:
            h["X-CSRF-Token"] = csrf
        return self.request("POST", path, body=json.dumps(data).encode(), headers=h)
