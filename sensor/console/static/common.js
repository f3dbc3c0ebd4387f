// Shared helpers of the console pages: fetching the JSON API, building DOM safely, formatting.
// Text always goes in through textContent, never innerHTML: captured data is hostile input.
"use strict";

const APP = document.getElementById("app");
const CSRF = APP.dataset.csrf;
const READ_ONLY = APP.dataset.readonly === "1";

async function api(path, options) {
  const response = await fetch(path, Object.assign({credentials: "same-origin"}, options || {}));
  const body = await response.json().catch(() => ({error: "not JSON: HTTP " + response.status}));
  if (!response.ok) throw new Error(body.error || ("HTTP " + response.status));
  return body;
}

function post(path, data) {
  return api(path, {method: "POST", body: JSON.stringify(data),
                    headers: {"Content-Type": "application/json", "X-CSRF-Token": CSRF}});
}

// el("td", {class: "x", onclick: f}, "text", child, ...): an element; strings become text nodes.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value);   // CSSOM: the CSP forbids style attributes
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

// Replace a node's content; null, undefined and false children are skipped, lists flattened.
function put(node, ...children) {
  clear(node);
  for (const child of children.flat(3)) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmtTime(ts) {
  if (ts === null || ts === undefined) return "";
  return new Date(ts * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function fmtBytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KB", "MB", "GB", "TB"];
  const i = Math.min(units.length - 1, Math.floor(Math.log(n) / Math.log(1000)));
  return (n / Math.pow(1000, i)).toFixed(i ? 1 : 0) + " " + units[i];
}

function fmtLevel(level) { return level === null || level === undefined ? "?" : String(level); }

function deviceLink(ip) { return el("a", {href: "/device/" + encodeURIComponent(ip), class: "ip"}, ip); }

function severityBadge(sev) { return el("span", {class: "sev sev-" + sev}, sev); }

function table(headers, rows, attrs) {
  return el("table", attrs || {}, el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))),
            el("tbody", {}, rows));
}

// A small generic view of a JSON value: objects as key/value tables, lists inline when short.
function jsonView(value) {
  if (value === null || value === undefined) return el("span", {class: "muted"}, "-");
  if (Array.isArray(value)) {
    if (value.every(v => typeof v !== "object" || v === null)) return el("span", {}, JSON.stringify(value));
    return el("div", {}, value.map(v => jsonView(v)));
  }
  if (typeof value === "object") {
    return el("table", {class: "kv"}, el("tbody", {}, Object.entries(value).map(
      ([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, jsonView(v))))));
  }
  return el("span", {}, String(value));
}

function showError(where, error) {
  put(where, el("p", {class: "error"}, "Could not load: " + error.message));
}

const ROLE_COLORS = {plc_rtu: "#d9480f", hmi_scada: "#1971c2", engineering_workstation: "#9c36b5",
                     it_host: "#868e96", unknown: "#adb5bd"};
const ROLE_NAMES = {plc_rtu: "PLC / RTU", hmi_scada: "HMI / SCADA", engineering_workstation: "Engineering workstation",
                    it_host: "IT host", unknown: "Unknown"};
