// Sensor health: packets, drops, uptime and per-protocol rates; refreshed every 5 s for a live directory.
"use strict";

function card(label, value, id) {
  return el("div", {class: "card", id: id}, el("div", {class: "n"}, value === null || value === undefined ? "-" : String(value)),
            el("div", {class: "l"}, label));
}

function fmtUptime(s) {
  if (s === null || s === undefined) return null;
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + (h ? h + "h " : "") + m + "m";
}

function render(h) {
  const c = h.counters || {};
  const logs = Object.keys(h.records || {}).sort();
  put(APP, el("h1", {}, "Sensor health"),
    el("p", {id: "health-source"}, h.live ? `Live sensor (${h.state || "?"}${h.stream ? ", reading " + h.stream : ""}): stats.json updated ${fmtTime(h.updated)} (${h.age_s} s ago)`
                       : h.source === "ClickHouse" ? "Records per table in ClickHouse"
                       : h.source ? `Offline run: ${h.source} written ${fmtTime(h.updated)}` : "No summary.json or stats.json yet."),
    h.notice ? el("div", {class: "notice", id: "health-notice"}, h.notice) : null,
    h.problems.length ? el("div", {class: "notice", id: "problems"}, h.problems.map(p => el("div", {}, p))) : null,
    el("div", {class: "cards"}, Object.entries(c).map(([k, v]) => card(k.replace(/_/g, " "), k === "uptime_s" ? fmtUptime(v) : v, "counter-" + k))),
    (h.interfaces || []).length ? [el("h2", {}, "Capture interfaces"), table(["Interface", "Kernel received", "Kernel dropped", "Ring full", "Truncated", "Frames read"],
      h.interfaces.map(i => el("tr", {}, el("td", {}, i.name), el("td", {}, String(i.kernel_received)), el("td", {class: i.kernel_dropped ? "error" : ""}, String(i.kernel_dropped)),
        el("td", {}, String(i.freeze_count)), el("td", {}, String(i.frames_truncated)), el("td", {}, String(i.frames)))), {id: "interfaces"})] : null,
    el("h2", {}, h.live ? "Records per log (rate between the last two readings)" : "Records per log (rate over the traffic's time span)"),
    table(["Log", "Records", "Per second"], logs.map(log => el("tr", {}, el("td", {}, log), el("td", {}, String(h.records[log])),
      el("td", {}, h.rates[log] === undefined ? "-" : h.rates[log].toFixed(2)))), {id: "rates"}),
    (h.errors || []).length ? [el("h2", {}, "Errors"), h.errors.map(e => el("div", {class: "error"}, e))] : null,
    (h.warnings || []).length ? [el("h2", {}, "Warnings"), h.warnings.map(e => el("div", {}, e))] : null,
    (h.sinks || []).length ? [el("h2", {}, "Sinks"), jsonView(h.sinks)] : null,
    el("h2", {}, "Files"), table(["File", "Size", "Modified", ""], h.files.map(f => el("tr", {}, el("td", {}, f.name),
      el("td", {}, fmtBytes(f.size)), el("td", {}, fmtTime(f.mtime)),
      el("td", {}, el("a", {href: "/files/" + encodeURIComponent(f.name)}, "download"))))));
}

function refresh() {
  api("/api/health").then(h => { render(h); if (h.live) setTimeout(refresh, 5000); }).catch(err => showError(APP, err));
}
refresh();
