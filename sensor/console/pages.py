"""The HTML pages: a small server-rendered shell per page; the page's script draws it from the JSON API.

No inline script or style (the Content-Security-Policy forbids both): what a script needs from the server
(the CSRF token, read-only mode, the device address) travels in ``data-`` attributes, escaped.
"""
from __future__ import annotations

from html import escape

NAV = (("map", "/", "Network map"), ("inventory", "/inventory", "Inventory"), ("alerts", "/alerts", "Alerts"),
       ("baseline", "/baseline", "Baseline"), ("health", "/health", "Health"))
TITLES = {"map": "Network map", "inventory": "Asset inventory", "alerts": "Alerts", "baseline": "Baseline",
          "health": "Sensor health", "device": "Device"}


def page(name: str, csrf: str, read_only: bool, directory: str, extra: dict[str, str] | None = None) -> str:
    attrs = {"page": name, "csrf": csrf, "readonly": "1" if read_only else "0", **(extra or {})}
    data = " ".join(f'data-{k}="{escape(v)}"' for k, v in attrs.items())
    here = ' class="here"'
    links = "".join(f'<a href="{href}"{here if key == name else ""}>{label}</a>' for key, href, label in NAV)
    title = TITLES.get(name, name)
    mode = '<span class="badge">read-only</span>' if read_only else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - otsensor</title><link rel="stylesheet" href="/static/console.css"></head>
<body><header><span class="brand">otsensor</span><nav>{links}</nav>
<span class="dir" title="output directory">{escape(directory)}</span>{mode}</header>
<main id="app" {data}><p class="loading">Loading...</p></main>
<script src="/static/common.js"></script><script src="/static/{escape(name)}.js"></script>
</body></html>
"""


def login_page(csrf: str, failed: bool) -> str:
    message = '<p class="error">That token is not right.</p>' if failed else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - otsensor</title>
<link rel="stylesheet" href="/static/console.css"></head>
<body><main class="login"><h1>otsensor console</h1>
<p>This console was started on a network address: enter the token it printed when it started.</p>{message}
<form method="post" action="/login"><input type="hidden" name="csrf" value="{escape(csrf)}">
<label>Token <input type="password" name="token" id="token" autocomplete="off" autofocus></label>
<button type="submit" id="signin">Sign in</button></form></main></body></html>
"""
