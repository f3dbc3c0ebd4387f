// The asset inventory: every host of assets.json in one sortable, filterable table, exportable as CSV.
"use strict";

const COLUMNS = [
  ["ip", "IP", r => deviceLink(r.ip), r => r.ip.split(/[.:]/).map(p => p.padStart(5, "0")).join(".")],
  ["macs", "MACs / vendor", r => r.macs.map(m => el("div", {}, el("span", {class: "ip"}, m.mac), m.vendor ? " " + m.vendor : "")),
   r => r.macs.map(m => m.mac).join(" ")],
  ["role", "Role", r => el("span", {title: r.role_evidence.join("; ")}, ROLE_NAMES[r.role] || r.role,
                          el("div", {class: "muted"}, r.role_evidence.join("; "))), r => r.role],
  ["vendor", "Vendor", r => fact(r.vendor), r => factText(r.vendor)],
  ["model", "Model", r => fact(r.model), r => factText(r.model)],
  ["firmware", "Firmware", r => fact(r.firmware), r => factText(r.firmware)],
  ["serial", "Serial", r => fact(r.serial), r => factText(r.serial)],
  ["protocols", "Protocols", r => r.protocols.join(", "), r => r.protocols.join(",")],
  ["peers", "OT peers", r => String(r.peers.length), r => r.peers.length],
  ["zone", "Zone / level", r => `${r.zone || "-"} / ${fmtLevel(r.level)}` + (r.level_source === "role" ? " (est.)" : ""),
   r => `${r.zone} ${r.level}`],
  ["first_seen", "First seen", r => fmtTime(r.first_seen), r => r.first_seen || 0],
  ["last_seen", "Last seen", r => fmtTime(r.last_seen), r => r.last_seen || 0],
  ["alerts", "Alerts", r => String(r.alerts), r => r.alerts],
];
const view = {rows: [], sort: "ip", desc: false, q: "", role: "", zone: "", protocol: ""};

function fact(f) {
  if (!f) return "";
  return el("span", {title: `${f.key} from ${f.source || "?"}`}, String(f.value), el("div", {class: "muted"}, f.source || ""));
}
function factText(f) { return f ? String(f.value) : ""; }

function searchable(r) {
  return [r.ip, r.role, r.zone || "", ...r.macs.map(m => `${m.mac} ${m.vendor || ""}`),
          ...r.identity.map(i => `${i.key} ${i.value}`), ...r.protocols].join(" ").toLowerCase();
}

function shownRows() {
  const q = view.q.toLowerCase();
  const rows = view.rows.filter(r => (!view.role || r.role === view.role) && (!view.zone || r.zone === view.zone) &&
                                     (!view.protocol || r.protocols.includes(view.protocol)) && (!q || searchable(r).includes(q)));
  const key = COLUMNS.find(c => c[0] === view.sort)[3];
  rows.sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * (view.desc ? -1 : 1); });
  return rows;
}

function render() {
  const rows = shownRows();
  const head = el("tr", {}, COLUMNS.map(([key, label]) => el("th", {
    class: "sortable" + (view.sort === key ? (view.desc ? " sorted-desc" : " sorted-asc") : ""), "data-key": key,
    onclick: () => { view.desc = view.sort === key ? !view.desc : false; view.sort = key; render(); }}, label)));
  const body = rows.map(r => el("tr", {"data-ip": r.ip}, COLUMNS.map(([key, , cell]) => el("td", {"data-col": key}, cell(r)))));
  const tbl = document.getElementById("assets");
  put(tbl, el("thead", {}, head), el("tbody", {}, body));
  document.getElementById("count").textContent = `${rows.length} of ${view.rows.length} assets`;
  const params = new URLSearchParams({q: view.q, role: view.role, zone: view.zone, protocol: view.protocol});
  document.getElementById("csv").href = "/api/assets.csv?" + params.toString();
}

function build(data) {
  view.rows = data.assets;
  const uniq = f => [...new Set(view.rows.flatMap(f))].filter(v => v !== null && v !== "").sort();
  const select = (name, label, values, names) => el("select", {id: "filter-" + name, onchange: e => { view[name] = e.target.value; render(); }},
    el("option", {value: ""}, label), values.map(v => el("option", {value: v}, names ? (names[v] || v) : v)));
  put(APP, 
    el("h1", {}, "Asset inventory"),
    el("div", {class: "toolbar"},
      el("input", {id: "filter-q", type: "search", placeholder: "Filter: IP, MAC, vendor, model, serial...",
                   oninput: e => { view.q = e.target.value.trim(); render(); }}),
      select("role", "All roles", uniq(r => [r.role]), ROLE_NAMES), select("zone", "All zones", uniq(r => [r.zone])),
      select("protocol", "All protocols", uniq(r => r.protocols)),
      el("a", {id: "csv", href: "/api/assets.csv", download: "assets.csv"}, "Export CSV"),
      el("span", {id: "count", class: "muted"})),
    el("table", {id: "assets"}));
  render();
}

api("/api/assets").then(build).catch(err => showError(APP, err));
