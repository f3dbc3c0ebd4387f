// The alert feed: paged from the server (fast at 100,000 alerts), filtered, with details and
// "accept into baseline", which writes a new baseline file through `otsensor baseline accept`'s code.
"use strict";

const PAGE = 100;
const feed = {offset: 0, filters: {}, sort: "ts", order: "desc", selected: new Set(), baseline: null};

function query() {
  const params = new URLSearchParams({offset: feed.offset, limit: PAGE, sort: feed.sort, order: feed.order});
  for (const [k, v] of Object.entries(feed.filters)) if (v) params.set(k, v);
  return params;
}

async function load() {
  const result = document.getElementById("results");
  try {
    const page = await api("/api/alerts?" + query().toString());
    renderPage(page);
  } catch (err) { showError(result, err); }
}

function techniqueList(list) {
  return list.map(t => el("div", {}, el("a", {href: t.url || "#", rel: "noreferrer", target: "_blank", title: t.url || ""}, t.id),
                          " " + t.name, el("span", {class: "muted"}, t.tactics.length ? " (" + t.tactics.join(", ") + ")" : "")));
}

function renderPage(page) {
  const rows = [];
  for (const a of page.alerts) {
    const box = el("input", {type: "checkbox", class: "pick", "data-id": a.id, checked: feed.selected.has(a.id),
                             disabled: READ_ONLY || !feed.baseline,
                             onchange: e => { e.target.checked ? feed.selected.add(a.id) : feed.selected.delete(a.id); updateAccept(); }});
    const row = el("tr", {class: "alert-row", "data-id": a.id},
      el("td", {}, box), el("td", {}, severityBadge(a.severity)), el("td", {}, fmtTime(a.ts)),
      el("td", {}, el("strong", {}, a.rule), el("div", {class: "muted"}, a.title)),
      el("td", {}, a.src ? deviceLink(a.src) : "", a.dst && a.dst !== a.src ? [" -> ", deviceLink(a.dst)] : "",
         a.sensor_id ? el("div", {class: "muted sensor"}, "sensor " + a.sensor_id) : ""),
      el("td", {}, [a.protocol, a.function].filter(Boolean).join(" ")),
      el("td", {}, techniqueList(a.techniques)),
      el("td", {}, String(a.count), a.count > 1 ? el("div", {class: "muted"}, "last " + fmtTime(a.last_seen)) : ""),
      el("td", {}, a.message, a.accepted_into ? el("div", {class: "ok"}, "accepted into " + a.accepted_into) : "",
         el("div", {}, el("a", {href: "#", class: "more", onclick: ev => { ev.preventDefault(); toggleDetail(row, a.id); }}, "evidence"))));
    rows.push(row);
  }
  put(document.getElementById("results"),
    el("div", {class: "pager"},
      el("button", {id: "prev", disabled: feed.offset === 0, onclick: () => { feed.offset = Math.max(0, feed.offset - PAGE); load(); }}, "Previous"),
      el("span", {id: "range"}, page.total ? `${page.offset + 1}-${page.offset + page.alerts.length} of ${page.total}` +
         (page.total !== page.all ? ` (filtered from ${page.all})` : "") : "no alert matches"),
      el("button", {id: "next", disabled: page.offset + page.alerts.length >= page.total,
                    onclick: () => { feed.offset += PAGE; load(); }}, "Next")),
    table(["", "Severity", "First seen", "Rule", "Hosts", "Protocol", "ATT&CK for ICS", "Count", "Message"], rows, {id: "alerts"}));
}

async function toggleDetail(row, id) {
  const next = row.nextSibling;
  if (next && next.classList && next.classList.contains("detail")) { next.remove(); return; }
  const cell = el("td", {colspan: 9}, "Loading...");
  row.after(el("tr", {class: "detail"}, cell));
  try {
    const a = await api("/api/alert/" + encodeURIComponent(id));
    put(cell, el("div", {}, el("strong", {}, "Baseline: "), a.baseline || "-"),
                       el("div", {}, el("strong", {}, "Zones: "), jsonView(a.zones)),
                       el("h2", {}, `Evidence (${(a.evidence || []).length} of ${a.count} occurrence(s))`),
                       (a.evidence || []).map(ev => jsonView(ev)),
                       el("h2", {}, "Accepting folds in"), jsonView(a.baseline_fold));
  } catch (err) { showError(cell, err); }
}

function updateAccept() {
  const button = document.getElementById("accept");
  if (button) { button.disabled = !feed.selected.size; button.textContent = `Accept ${feed.selected.size} into baseline`; }
}

async function accept() {
  const status = document.getElementById("accept-status");
  const output = document.getElementById("accept-name").value.trim();
  status.textContent = "Writing...";
  try {
    const result = await post("/api/baseline/accept", {ids: [...feed.selected], output: output});
    status.className = "ok";
    status.textContent = `Wrote ${result.written}: ` + result.accepted.join("; ");
    feed.selected.clear(); updateAccept();
    const files = await api("/api/baseline/files");
    feed.baseline = files.current; document.getElementById("accept-name").value = files.new_name;
    load();
  } catch (err) { status.className = "error"; status.textContent = err.message; }
}

function filterBar(facets) {
  const opts = (obj) => Object.entries(obj).sort((a, b) => b[1] - a[1]).map(([v, n]) => el("option", {value: v}, `${v} (${n})`));
  const set = (name, value) => { feed.filters[name] = value; feed.offset = 0; load(); };
  return el("div", {class: "toolbar"},
    el("select", {id: "filter-severity", onchange: e => set("severity", e.target.value)},
       el("option", {value: ""}, "Any severity"), ["low", "medium", "high", "critical"].map(s => el("option", {value: s}, s + " and above"))),
    el("select", {id: "filter-rule", onchange: e => set("rule", e.target.value)}, el("option", {value: ""}, "Any rule"), opts(facets.rule)),
    el("select", {id: "filter-protocol", onchange: e => set("protocol", e.target.value)}, el("option", {value: ""}, "Any protocol"), opts(facets.protocol)),
    el("select", {id: "filter-tactic", onchange: e => set("tactic", e.target.value)}, el("option", {value: ""}, "Any tactic"),
       facets.tactic.map(t => el("option", {value: t.id}, `${t.name} (${t.count})`))),
    el("select", {id: "filter-technique", onchange: e => set("technique", e.target.value)}, el("option", {value: ""}, "Any technique"),
       facets.technique.map(t => el("option", {value: t.id}, `${t.id} ${t.name} (${t.count})`))),
    el("input", {id: "filter-host", type: "search", placeholder: "Host IP", onchange: e => set("host", e.target.value.trim())}),
    el("input", {id: "filter-q", type: "search", placeholder: "Text", onchange: e => set("q", e.target.value.trim())}),
    el("select", {id: "sort", onchange: e => { feed.sort = e.target.value; feed.offset = 0; load(); }},
       [["ts", "Newest first"], ["last_seen", "Last seen"], ["severity", "Severity"], ["count", "Occurrences"], ["rule", "Rule"]]
         .map(([v, l]) => el("option", {value: v}, l))));
}

async function build() {
  const [facets, files] = await Promise.all([api("/api/alerts/facets"), api("/api/baseline/files")]);
  feed.baseline = files.current;
  const acceptBar = READ_ONLY ? el("p", {class: "muted"}, "Read-only console: accepting into a baseline is off.")
    : !files.current ? el("p", {class: "muted"}, "Start the console with --baseline BASELINE.json to accept alerts into a baseline.")
    : el("div", {class: "toolbar"},
        el("button", {id: "accept", disabled: true, onclick: accept}, "Accept 0 into baseline"),
        el("label", {}, "new baseline file ", el("input", {id: "accept-name", value: files.new_name, size: 30})),
        el("span", {class: "muted"}, "written beside " + files.current),
        el("span", {id: "accept-status"}));
  put(APP, el("h1", {}, "Alerts"), filterBar(facets), acceptBar, el("div", {id: "results"}));
  load();
}

build().catch(err => showError(APP, err));
