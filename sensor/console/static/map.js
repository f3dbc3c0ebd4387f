// The network map: positions come from the server (Purdue bands, zone columns); this draws them on a canvas
// with zoom, pan, search and filters, and opens a device page on click.
"use strict";

const PROTOCOL_COLORS = ["#1c7ed6", "#2b8a3e", "#ae3ec9", "#f08c00", "#0c8599", "#5c940d", "#e64980", "#495057"];
const CROSSING = "#f76707", ALERTED = "#e03131";
const state = {data: null, scale: 1, tx: 0, ty: 0, filters: {zone: "", protocol: "", role: "", q: "", only: false},
               hover: null, visible: [], edgesShown: []};

function protocolColor(protocol, protocols) {
  return PROTOCOL_COLORS[Math.max(0, protocols.indexOf(protocol)) % PROTOCOL_COLORS.length];
}

function buildPage(data) {
  state.data = data;
  const protocols = [...new Set(data.edges.map(e => e.protocol))].sort();
  const zones = [...new Set(data.nodes.map(n => n.zone))].sort();
  const roles = [...new Set(data.nodes.map(n => n.role))].sort();
  state.protocols = protocols;
  const select = (id, label, values, names) => el("select", {id: id, onchange: e => setFilter(id.slice(7), e.target.value)},
    el("option", {value: ""}, label), values.map(v => el("option", {value: v}, names ? (names[v] || v) : v)));
  const crossings = data.edges.filter(e => e.crossing).length, alerted = data.edges.filter(e => e.alerts).length;
  const estimated = data.nodes.some(n => n.level_source === "role");
  put(APP, 
    el("div", {class: "toolbar"},
      el("input", {id: "map-search", type: "search", placeholder: "Search IP or name, Enter to centre",
                   oninput: e => setFilter("q", e.target.value.trim().toLowerCase()),
                   onkeydown: e => { if (e.key === "Enter") centreOnMatch(); }}),
      select("filter-zone", "All zones", zones), select("filter-protocol", "All protocols", protocols),
      select("filter-role", "All roles", roles, ROLE_NAMES),
      el("label", {}, el("input", {type: "checkbox", id: "filter-only", onchange: e => setFilter("only", e.target.checked)}),
         " only IT-to-OT crossings and alerted edges"),
      el("button", {id: "map-fit", onclick: () => { fit(); draw(); }}, "Fit"),
      el("span", {id: "map-count", class: "muted"}, "")),
    estimated ? el("p", {class: "notice"}, "No zones are known for some hosts: their Purdue level is estimated " +
                   "from their role (give `--zones` to otsensor analyze or serve).") : null,
    el("div", {id: "map-wrap"}, el("canvas", {id: "map"}), el("div", {id: "map-tip"})),
    el("div", {class: "legend"},
      Object.keys(ROLE_NAMES).map(r => el("span", {}, el("span", {class: "swatch", style: {background: ROLE_COLORS[r]}}), ROLE_NAMES[r])),
      protocols.map(p => el("span", {}, el("span", {class: "line", style: {background: protocolColor(p, protocols)}}), p)),
      el("span", {}, el("span", {class: "line", style: {background: CROSSING}}), `IT-to-OT crossing (${crossings})`),
      el("span", {}, el("span", {class: "line", style: {background: ALERTED}}), `edge with alerts (${alerted})`)));
  const canvas = document.getElementById("map");
  canvas.addEventListener("wheel", onWheel, {passive: false});
  canvas.addEventListener("mousedown", onDown);
  canvas.addEventListener("mousemove", onMove);
  canvas.addEventListener("mouseleave", () => { state.hover = null; tip(null); });
  canvas.addEventListener("click", onClick);
  window.addEventListener("resize", () => { resize(); draw(); });
  resize(); fit(); draw();
}

function setFilter(name, value) { state.filters[name] = value; draw(); }

function resize() {
  const canvas = document.getElementById("map"), ratio = window.devicePixelRatio || 1;
  canvas.width = canvas.clientWidth * ratio; canvas.height = canvas.clientHeight * ratio;
  state.ratio = ratio;
}

function fit() {
  const canvas = document.getElementById("map"), d = state.data;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  state.scale = Math.min(w / d.width, h / Math.max(d.height, 1)) * 0.98;
  state.tx = (w - d.width * state.scale) / 2; state.ty = (h - d.height * state.scale) / 2;
}

function nodeShown(n) {
  const f = state.filters;
  return (!f.zone || n.zone === f.zone) && (!f.role || n.role === f.role);
}

function edgeShown(e, shown) {
  const f = state.filters;
  return shown[e.s] && shown[e.t] && (!f.protocol || e.protocol === f.protocol) && (!f.only || e.crossing || e.alerts);
}

function matches(n) { const q = state.filters.q; return q && n.label.toLowerCase().includes(q); }

function draw() {
  const canvas = document.getElementById("map"), ctx = canvas.getContext("2d"), d = state.data;
  ctx.setTransform(state.ratio, 0, 0, state.ratio, 0, 0);
  ctx.clearRect(0, 0, canvas.clientWidth, canvas.clientHeight);
  ctx.translate(state.tx, state.ty); ctx.scale(state.scale, state.scale);
  drawBands(ctx, d);
  const shown = d.nodes.map(nodeShown);
  if (state.filters.only || state.filters.protocol) {     // a node with no remaining edge is hidden too
    const linked = new Array(d.nodes.length).fill(false);
    d.edges.forEach(e => { if (edgeShown(e, shown)) { linked[e.s] = true; linked[e.t] = true; } });
    linked.forEach((l, i) => { shown[i] = shown[i] && l; });
  }
  const edges = d.edges.filter(e => edgeShown(e, shown));
  drawEdges(ctx, d, edges);
  drawNodes(ctx, d, shown);
  state.visible = shown; state.edgesShown = edges;
  const count = shown.filter(Boolean).length;
  document.getElementById("map-count").textContent = `${count} of ${d.nodes.length} hosts, ${edges.length} of ${d.edges.length} edges`;
  canvas.dataset.drawnNodes = count; canvas.dataset.drawnEdges = edges.length;
}

function drawBands(ctx, d) {
  const px = 1 / state.scale, size = Math.min(13 * px, d.gutter / 9);   // labels fit the gutter when zoomed out
  d.bands.forEach((b, i) => {
    ctx.fillStyle = i % 2 ? "#f8f9fa" : "#eef2f6";
    ctx.fillRect(0, b.y, d.width, b.height);
    ctx.fillStyle = "#343a40"; ctx.font = `600 ${size}px system-ui`;
    ctx.fillText(b.label, 8 * px, b.y + b.height / 2);
    ctx.fillStyle = "#868e96"; ctx.font = `${size * 0.85}px system-ui`;
    ctx.fillText(b.purpose, 8 * px, b.y + b.height / 2 + size * 1.2, d.gutter - 12 * px);
  });
  ctx.lineWidth = px;
  d.zones.forEach(z => {
    ctx.strokeStyle = z.kind === "it" || z.kind === "external" ? "#adb5bd" : "#74c0fc";
    ctx.strokeRect(z.x, z.y, z.width, z.height);
    ctx.fillStyle = "#1864ab"; ctx.font = `${Math.min(11 * px, 14)}px system-ui`;
    ctx.fillText(`${z.name} (${z.kind}, ${z.hosts})`, z.x + 4 * px, z.y - 3 * px, z.width);
  });
}

const EDGE_LAYERS = {plain: 0, crossing: 1, alert: 2};   // highlighted edges are drawn last, on top

function drawEdges(ctx, d, edges) {
  const px = 1 / state.scale, groups = new Map(), dense = edges.length > 1500;
  for (const e of edges) {
    const style = e.alerts ? "alert" : e.crossing ? "crossing" : e.protocol;
    if (!groups.has(style)) groups.set(style, []);
    groups.get(style).push(e);
  }
  const layer = style => EDGE_LAYERS[style] || 0;
  for (const [style, list] of [...groups].sort((a, b) => layer(a[0]) - layer(b[0]))) {
    ctx.beginPath();   // one path per style: thousands of edges in a few strokes
    for (const e of list) { const a = d.nodes[e.s], b = d.nodes[e.t]; ctx.moveTo(a.x, a.y); ctx.lineTo(b.x, b.y); }
    const marked = style === "alert" || style === "crossing";
    ctx.strokeStyle = style === "alert" ? ALERTED : style === "crossing" ? CROSSING : protocolColor(style, state.protocols);
    ctx.globalAlpha = marked ? (dense ? 0.55 : 0.95) : (dense ? 0.18 : 0.45);
    ctx.lineWidth = (marked ? (dense ? 1.2 : 2.5) : (dense ? 0.6 : 1)) * px;
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
}

function drawNodes(ctx, d, shown) {
  // labels only once hosts are far enough apart on screen for an address to fit between them
  const px = 1 / state.scale, searching = !!state.filters.q, labels = state.scale * d.spacing >= 64;
  d.nodes.forEach((n, i) => {
    if (!shown[i]) return;
    const hit = matches(n);
    ctx.globalAlpha = searching && !hit ? 0.25 : 1;
    ctx.beginPath(); ctx.arc(n.x, n.y, n.r, 0, 2 * Math.PI);
    ctx.fillStyle = ROLE_COLORS[n.role] || ROLE_COLORS.unknown; ctx.fill();
    if (n.alerts) { ctx.lineWidth = 2.5 * px; ctx.strokeStyle = ALERTED; ctx.stroke(); }
    if (hit) { ctx.lineWidth = 3 * px; ctx.strokeStyle = "#fcc419"; ctx.beginPath(); ctx.arc(n.x, n.y, n.r + 4 * px, 0, 2 * Math.PI); ctx.stroke(); }
    if (labels || hit) {   // under the node, centred: neighbours' labels do not meet
      ctx.fillStyle = "#212529"; ctx.font = `${10 * px}px system-ui`; ctx.textAlign = "center";
      ctx.fillText(n.id, n.x, n.y + n.r + 11 * px); ctx.textAlign = "start";
    }
  });
  ctx.globalAlpha = 1;
}

function toWorld(ev) {
  const rect = ev.target.getBoundingClientRect();
  return [(ev.clientX - rect.left - state.tx) / state.scale, (ev.clientY - rect.top - state.ty) / state.scale];
}

function nodeAt(ev) {
  const [x, y] = toWorld(ev), d = state.data, slack = 3 / state.scale;
  let best = null, bestDist = Infinity;
  d.nodes.forEach((n, i) => {
    if (!state.visible[i]) return;
    const dist = Math.hypot(n.x - x, n.y - y);
    if (dist <= n.r + slack && dist < bestDist) { best = n; bestDist = dist; }
  });
  return best;
}

function edgeAt(ev) {
  const [x, y] = toWorld(ev), d = state.data, slack = 4 / state.scale;
  for (const e of state.edgesShown) {
    const a = d.nodes[e.s], b = d.nodes[e.t], dx = b.x - a.x, dy = b.y - a.y, len = dx * dx + dy * dy || 1;
    const t = Math.max(0, Math.min(1, ((x - a.x) * dx + (y - a.y) * dy) / len));
    if (Math.hypot(a.x + t * dx - x, a.y + t * dy - y) <= slack) return e;
  }
  return null;
}

function onWheel(ev) {
  ev.preventDefault();
  const rect = ev.target.getBoundingClientRect(), mx = ev.clientX - rect.left, my = ev.clientY - rect.top;
  const factor = Math.exp(-ev.deltaY * 0.0015), scale = Math.min(40, Math.max(0.05, state.scale * factor));
  state.tx = mx - (mx - state.tx) * scale / state.scale; state.ty = my - (my - state.ty) * scale / state.scale;
  state.scale = scale; draw();
}

function onDown(ev) {
  const start = {x: ev.clientX, y: ev.clientY, tx: state.tx, ty: state.ty};
  state.dragged = false;
  const move = e => {
    if (Math.abs(e.clientX - start.x) + Math.abs(e.clientY - start.y) > 3) state.dragged = true;
    state.tx = start.tx + e.clientX - start.x; state.ty = start.ty + e.clientY - start.y; draw();
  };
  const up = () => { window.removeEventListener("mousemove", move); window.removeEventListener("mouseup", up); };
  window.addEventListener("mousemove", move); window.addEventListener("mouseup", up);
}

function onMove(ev) {
  const n = nodeAt(ev);
  if (n) return tip(ev, [`${n.label}`, `${ROLE_NAMES[n.role] || n.role}`, `zone ${n.zone}, level ${fmtLevel(n.level)}` +
                         (n.level_source === "role" ? " (estimated from role)" : ""),
                         `${fmtBytes(n.bytes)} exchanged, ${n.alerts} alert(s)`, "click for the device page"]);
  const e = edgeAt(ev);
  if (e) {
    const d = state.data, fn = Object.entries(e.functions).map(([k, v]) => `${k} x${v}`).join(", ");
    return tip(ev, [`${d.nodes[e.s].id} -> ${d.nodes[e.t].id} ${e.protocol}`, `${e.flows} flow(s), ${fmtBytes(e.bytes)}`,
                    fn + (e.more_functions ? ` and ${e.more_functions} more` : ""),
                    e.crossing ? "IT-to-OT crossing" : "", e.alerts ? `${e.alerts} alert(s)` : ""].filter(Boolean));
  }
  tip(null);
}

function tip(ev, lines) {
  const box = document.getElementById("map-tip");
  if (!ev) { box.style.display = "none"; return; }
  put(box, ...lines.map(l => el("div", {}, l)));
  const rect = ev.target.getBoundingClientRect();
  box.style.left = (ev.clientX - rect.left + 14) + "px"; box.style.top = (ev.clientY - rect.top + 10) + "px";
  box.style.display = "block";
}

function onClick(ev) {
  if (state.dragged) return;
  const n = nodeAt(ev);
  if (n) window.location.href = "/device/" + encodeURIComponent(n.id);
}

function centreOnMatch() {
  const n = state.data.nodes.find((node, i) => state.visible[i] && matches(node));
  if (!n) return;
  const canvas = document.getElementById("map");
  state.scale = Math.max(state.scale, 2);
  state.tx = canvas.clientWidth / 2 - n.x * state.scale; state.ty = canvas.clientHeight / 2 - n.y * state.scale;
  draw();
}

api("/api/map").then(buildPage).catch(err => showError(APP, err));
