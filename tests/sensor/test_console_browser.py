"""The console end to end in Debian's headless Chromium (selenium through /usr/bin/chromedriver).

Every asset of assets.json and every alert of alerts.jsonl is on screen, the map is drawn (its pixels
are checked, not only its presence), a filter narrows it, an alert is accepted into a new baseline from
the browser and the file equals what `otsensor baseline accept` writes, and the browser reports no script
or Content-Security-Policy error.  A screenshot of each page is kept under tests/output/console/.
"""
from __future__ import annotations

import json
import time

import pytest

from tests.sensor.console_support import alerts_of, assets_of, chrome, chrome_missing, otsensor, screenshot

pytestmark = pytest.mark.skipif(chrome_missing() is not None, reason=chrome_missing() or "")




@pytest.fixture(scope="module")
def browser():
    driver = chrome()
    yield driver
    driver.quit()


def wait(driver, check, timeout: float = 30.0):
    """Until ``check`` holds; an element replaced (the page re-renders) or not there yet is looked up again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException, IndexError)).until(
        lambda d: check(d))


def click(driver, selector: str) -> None:
    """Click the first match, again if the page replaced it in between."""
    def clicked(d) -> bool:
        by_css(d, selector)[0].click()
        return True
    wait(driver, clicked)


def errors(driver) -> list[str]:
    """Script errors and CSP refusals the page caused (the browser's own log)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def by_css(driver, selector: str):
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, selector)


def select(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select
    Select(by_css(driver, f"#{element_id}")[0]).select_by_value(value)


def test_the_map_is_drawn_and_filters(plant, console_server, browser):
    directory, _ = plant
    graph = json.loads((directory / "graph.json").read_text())
    browser.get(console_server.url)
    canvas = wait(browser, lambda d: (by_css(d, "#map[data-drawn-nodes]") or [None])[0])
    assert int(canvas.get_attribute("data-drawn-nodes")) == len(graph["nodes"])
    assert int(canvas.get_attribute("data-drawn-edges")) == len(graph["edges"])
    painted = browser.execute_script("""
        const c = document.getElementById('map'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] && (d[i] < 200 || d[i + 1] < 200)) n++;
        return n;""")
    assert painted > 2000, "the canvas holds no drawing"
    path = screenshot(browser, "map")
    assert path.stat().st_size > 20_000
    select(browser, "filter-protocol", "dnp3")
    dnp3 = [e for e in graph["edges"] if e["protocol"] == "dnp3"]
    wait(browser, lambda d: canvas.get_attribute("data-drawn-edges") == str(len(dnp3)))
    assert int(canvas.get_attribute("data-drawn-nodes")) == len({e["source"] for e in dnp3} | {e["target"] for e in dnp3})
    screenshot(browser, "map-filtered-dnp3")
    assert errors(browser) == []


def test_every_asset_is_in_the_inventory(plant, console_server, browser):
    directory, _ = plant
    assets = assets_of(directory)
    browser.get(console_server.url + "inventory")
    wait(browser, lambda d: len(by_css(d, "#assets tbody tr")) == len(assets))
    assert [r.get_attribute("data-ip") for r in by_css(browser, "#assets tbody tr")] == [a["ip"] for a in assets]
    page_text = by_css(browser, "#assets")[0].text
    for a in assets:
        for value in a["identity"].values():
            if isinstance(value, str) and a["identity"].get("vendor") == value:
                assert value in page_text
    screenshot(browser, "inventory")
    select(browser, "filter-role", "plc_rtu")
    plcs = [a["ip"] for a in assets if a["role"] == "plc_rtu"]
    wait(browser, lambda d: len(by_css(d, "#assets tbody tr")) == len(plcs))
    click(browser, 'th[data-key="ip"]')          # sort by IP, descending
    ips = [r.get_attribute("data-ip") for r in by_css(browser, "#assets tbody tr")]
    assert set(ips) == set(plcs) and ips[0] == max(plcs, key=lambda ip: tuple(int(p) for p in ip.split(".")))
    assert errors(browser) == []


def test_every_alert_is_in_the_feed_with_its_techniques(plant, console_server, browser):
    directory, _ = plant
    alerts = alerts_of(directory)
    assert len(alerts) <= 100, "the scenario plant fits one page of the feed"
    browser.get(console_server.url + "alerts")
    wait(browser, lambda d: len(by_css(d, "tr.alert-row")) == len(alerts))
    assert {r.get_attribute("data-id") for r in by_css(browser, "tr.alert-row")} == {a["id"] for a in alerts}
    text = by_css(browser, "#alerts")[0].text
    assert "Change Operating Mode" in text and "Inhibit Response Function" in text
    screenshot(browser, "alerts")
    select(browser, "filter-rule", "it_ot_boundary_crossing")
    crossings = {a["id"] for a in alerts if a["rule"] == "it_ot_boundary_crossing"}
    wait(browser, lambda d: {r.get_attribute("data-id") for r in by_css(d, "tr.alert-row")} == crossings)
    click(browser, "tr.alert-row a.more")
    wait(browser, lambda d: any("Evidence" in row.text for row in by_css(d, "tr.detail")))
    screenshot(browser, "alerts-detail")
    assert errors(browser) == []


def test_accept_into_baseline_from_the_browser(plant, console_server, browser, tmp_path):
    directory, baseline = plant
    alerts = alerts_of(directory)
    chosen = [a["id"] for a in alerts if a["rule"] == "new_edge" and a.get("baseline_fold")][:2]
    browser.get(console_server.url + "alerts")
    wait(browser, lambda d: len(by_css(d, "tr.alert-row")) == len(alerts))
    for alert_id in chosen:
        by_css(browser, f'input.pick[data-id="{alert_id}"]')[0].click()
    name = by_css(browser, "#accept-name")[0]
    name.clear()
    name.send_keys("from-browser.json")
    click(browser, "#accept")
    wait(browser, lambda d: by_css(d, "#accept-status")[0].text.startswith("Wrote"))
    status = by_css(browser, "#accept-status")[0]
    written = baseline.parent / "from-browser.json"
    assert str(written) in status.text and written.exists()
    cli = tmp_path / "cli.json"
    otsensor("baseline", "accept", str(baseline), str(directory / "alerts.jsonl"),
             *[x for i in chosen for x in ("--id", i)], "-o", str(cli))
    assert json.loads(written.read_text()) == json.loads(cli.read_text())
    wait(browser, lambda d: all("accepted into" in by_css(d, f'tr.alert-row[data-id="{i}"]')[0].text for i in chosen))
    screenshot(browser, "alerts-accepted")
    # the baseline page compares the two files side by side
    browser.get(console_server.url + "baseline")
    wait(browser, lambda d: by_css(d, "#learned .card"))
    select(browser, "old", str(baseline))
    select(browser, "new", str(written))
    click(browser, "#compare")
    rows = wait(browser, lambda d: by_css(d, "#diff-result tbody tr"))
    printed = otsensor("baseline", "diff", str(baseline), str(written)).stdout.splitlines()
    assert len(rows) == len(printed) > 0
    screenshot(browser, "baseline")
    assert errors(browser) == []


def test_device_and_health_pages(plant, console_server, browser):
    browser.get(console_server.url + "device/127.10.1.10")
    chart = wait(browser, lambda d: (by_css(d, "#written-chart[data-points]") or [None])[0])
    assert int(chart.get_attribute("data-points")) > 0
    assert "127.10.2.20" in by_css(browser, "#peers")[0].text
    assert "holding_registers" in by_css(browser, "#ranges")[0].text
    screenshot(browser, "device")
    browser.get(console_server.url + "health")
    wait(browser, lambda d: by_css(d, "#rates tbody tr"))
    assert "modbus" in by_css(browser, "#rates")[0].text
    screenshot(browser, "health")
    # clicking a node on the map opens its device page
    browser.get(console_server.url)
    wait(browser, lambda d: by_css(d, "#map[data-drawn-nodes]"))
    point = browser.execute_script("""
        const c = document.getElementById('map'), r = c.getBoundingClientRect();
        return fetch('/api/map').then(x => x.json()).then(m => {
          const n = m.nodes.find(n => n.id === '127.10.1.10');
          return [state.tx + n.x * state.scale, state.ty + n.y * state.scale];
        });""")
    from selenium.webdriver.common.action_chains import ActionChains
    canvas = by_css(browser, "#map")[0]
    size = canvas.size
    ActionChains(browser).move_to_element_with_offset(canvas, point[0] - size["width"] / 2,
                                                      point[1] - size["height"] / 2).click().perform()
    wait(browser, lambda d: d.current_url.endswith("/device/127.10.1.10"))
    assert errors(browser) == []


def test_a_forbidden_inline_script_would_be_reported(console_server, browser):
    """The error check above can fail: a page that runs an inline script is refused and logged by the CSP."""
    browser.get(console_server.url + "health")
    wait(browser, lambda d: by_css(d, "#rates"))
    browser.get_log("browser")
    browser.execute_script("const s = document.createElement('script'); s.textContent = 'window.x = 1';"
                           "document.body.appendChild(s);")
    time.sleep(0.3)
    assert browser.execute_script("return window.x") is None
    assert any("Content Security Policy" in e for e in errors(browser))
