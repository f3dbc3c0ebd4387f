// A device page: identity, peers, functions, address ranges, written values over time (a chart), alerts.
"use strict";

const IP = APP.dataset.ip;
const SERIES_COLORS = ["#1c7ed6", "#e8590c", "#2b8a3e", "#ae3ec9", "#0c8599", "#f08c00", "#c2255c", "#5c940d"];

function identitySection(d) {
  const a = d.asset;
  return [el("h2", {}, "Identity"), el("table", {class: "kv", id: "identity"}, el("tbody", {},
    el("tr", {}, el("th", {}, "Role"), el("td", {}, ROLE_NAMES[a.role] || a.role, el("div", {class: "muted"}, a.role_evidence.join("; ")))),
    el("tr", {}, el("th", {}, "Zone / level"), el("td", {}, `${a.zone || "-"} / ${fmtLevel(a.level)}` + (a.level_source === "role" ? " (estimated from role)" : ""))),
    el("tr", {}, el("th", {}, "MACs"), el("td", {}, a.macs.map(m => el("div", {}, m.mac + (m.vendor ? " " + m.vendor : ""))))),
    el("tr", {}, el("th", {}, "Seen"), el("td", {}, `${fmtTime(a.first_seen)} to ${fmtTime(a.last_seen)}`)),
    a.sensors ? el("tr", {}, el("th", {}, "Seen by sensors"), el("td", {id: "sensors"}, a.sensors.join(", "))) : null,
    a.identity.map(i => el("tr", {}, el("th", {}, i.key), el("td", {}, String(i.value), el("span", {class: "muted"}, i.source ? `  (${i.source})` : "")))))),
    d.identity_history.length ? el("details", {}, el("summary", {}, `Identity history (${d.identity_history.length})`),
      table(["When", "From", "Facts"], d.identity_history.map(h => el("tr", {}, el("td", {}, fmtTime(h.ts)), el("td", {}, h.source), el("td", {}, jsonView(h.facts)))))) : null];
}

function peersSection(d) {
  return [el("h2", {}, `Peers (${d.peers.length})`), table(["Peer", "This device is", "Protocol", "Flows", "Bytes", "Functions", "Operations", "Last seen"],
    d.peers.map(p => el("tr", {}, el("td", {}, deviceLink(p.peer)), el("td", {}, p.as), el("td", {}, p.protocol), el("td", {}, String(p.flows)),
      el("td", {}, fmtBytes(p.bytes)), el("td", {}, Object.entries(p.functions).map(([k, v]) => `${k} x${v}`).join(", ")),
      el("td", {}, Object.keys(p.operations).join(", ")), el("td", {}, fmtTime(p.last_seen)))), {id: "peers"})];
}

function functionsSection(d) {
  return [el("h2", {}, "Functions used"), table(["As", "Protocol", "Function", "Count"],
    d.functions.map(f => el("tr", {}, el("td", {}, f.as), el("td", {}, f.protocol), el("td", {}, f.function), el("td", {}, String(f.count)))))];
}

function rangesSection(d) {
  const fmt = rs => rs.map(r => r[0] === r[1] ? String(r[0]) : `${r[0]}-${r[1]}`).join(", ");
  return [el("h2", {}, "Address ranges read and written on this device"), d.ranges.length ? table(["Client", "Protocol", "Space", "Access", "Ranges"],
    d.ranges.map(r => el("tr", {}, el("td", {}, deviceLink(r.client)), el("td", {}, r.protocol), el("td", {}, r.space),
      el("td", {}, r.access), el("td", {}, fmt(r.ranges)))), {id: "ranges"}) : el("p", {class: "muted"}, "None seen.")];
}

function chart(series) {
  const canvas = el("canvas", {class: "chart", id: "written-chart"});
  requestAnimationFrame(() => drawChart(canvas, series));
  return canvas;
}

function drawChart(canvas, series) {
  const ratio = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const ctx = canvas.getContext("2d"); ctx.scale(ratio, ratio);
  const points = series.flatMap(s => s.points);
  let t0 = Math.min(...points.map(p => p.ts)), t1 = Math.max(...points.map(p => p.ts));
  let v0 = Math.min(...points.map(p => p.value)), v1 = Math.max(...points.map(p => p.value));
  if (t1 === t0) { t0 -= 1; t1 += 1; } if (v1 === v0) { v0 -= 1; v1 += 1; }
  const L = 60, R = 10, T = 10, B = 40, x = t => L + (t - t0) / (t1 - t0) * (w - L - R), y = v => h - B - (v - v0) / (v1 - v0) * (h - T - B);
  ctx.strokeStyle = "#adb5bd"; ctx.beginPath(); ctx.moveTo(L, T); ctx.lineTo(L, h - B); ctx.lineTo(w - R, h - B); ctx.stroke();
  ctx.fillStyle = "#495057"; ctx.font = "11px system-ui";
  ctx.fillText(String(+v1.toPrecision(6)), 4, T + 8); ctx.fillText(String(+v0.toPrecision(6)), 4, h - B);
  ctx.fillText(fmtTime(t0), L, h - B + 14); const end = fmtTime(t1); ctx.fillText(end, w - R - ctx.measureText(end).width, h - B + 14);
  series.forEach((s, i) => {
    ctx.strokeStyle = ctx.fillStyle = SERIES_COLORS[i % SERIES_COLORS.length];
    ctx.beginPath();
    s.points.forEach((p, j) => { j ? ctx.lineTo(x(p.ts), y(p.value)) : ctx.moveTo(x(p.ts), y(p.value)); });
    ctx.stroke();
    s.points.forEach(p => { ctx.beginPath(); ctx.arc(x(p.ts), y(p.value), 2.5, 0, 2 * Math.PI); ctx.fill(); });
  });
  canvas.dataset.points = points.length;
}

function writtenSection(d) {
  if (!d.written.length) return [el("h2", {}, "Written values over time"), el("p", {class: "muted"}, "No values written to this device.")];
  const picked = new Set(d.written.slice(0, 8).map(s => s.series));
  const holder = el("div", {});
  const redraw = () => { put(holder, chart(d.written.filter(s => picked.has(s.series)))); };
  const legend = d.written.map((s, i) => el("label", {class: "series"},
    el("input", {type: "checkbox", checked: picked.has(s.series), onchange: e => { e.target.checked ? picked.add(s.series) : picked.delete(s.series); redraw(); }}),
    ` ${s.series} (${s.points.length}, last ${s.points[s.points.length - 1].value}) `));
  redraw();
  return [el("h2", {}, "Written values over time"), holder, el("div", {class: "legend", id: "series"}, legend)];
}

function alertsSection(d) {
  const a = d.alerts;
  return [el("h2", {}, `Alerts (${a.total})`), a.total > a.alerts.length ? el("p", {}, el("a", {href: "/alerts"}, `Showing ${a.alerts.length}; all in the alert feed`)) : null,
    table(["Severity", "First seen", "Rule", "Hosts", "Count", "Message"], a.alerts.map(x => el("tr", {},
      el("td", {}, severityBadge(x.severity)), el("td", {}, fmtTime(x.ts)), el("td", {}, x.rule),
      el("td", {}, `${x.src} -> ${x.dst}`), el("td", {}, String(x.count)), el("td", {}, x.message))), {id: "device-alerts"})];
}

api("/api/device/" + encodeURIComponent(IP)).then(d => {
  document.title = `${IP} - otsensor`;
  const a = d.asset, name = [a.vendor && a.vendor.value, a.model && a.model.value].filter(Boolean).join(" ");
  put(APP, el("h1", {}, IP + (name ? " - " + name : "")), identitySection(d), peersSection(d), functionsSection(d),
                    rangesSection(d), writtenSection(d), alertsSection(d));
}).catch(err => showError(APP, err));
