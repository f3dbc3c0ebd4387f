// The baseline page: what was learned, and two baselines side by side (`otsensor baseline diff`).
"use strict";

const SECTIONS = [["assets", "Assets"], ["edges", "Edges and functions"], ["address_ranges", "Address ranges"],
  ["written_values", "Written value ranges"], ["writers", "Writers"], ["cadence", "Polling cadence"],
  ["engineering_hosts", "Engineering hosts"], ["engineering_operations", "Engineering operations"],
  ["select_before_operate", "Select-before-operate outstations"], ["service_ports", "Service ports"],
  ["error_peaks", "Error peaks"], ["anomaly_rates", "Anomaly rates"], ["allow", "Allowed"]];

function learnedView(doc) {
  const b = doc.baseline, from = b.learned_from || {};
  return [el("p", {}, `${doc.path}: learned from ${(from.files || []).join(", ") || "?"} over ${Math.round(from.duration_s || 0)} s`),
    el("div", {class: "cards"}, SECTIONS.filter(([k]) => b[k] !== undefined).map(([k, label]) =>
      el("div", {class: "card"}, el("div", {class: "n"}, String(doc.counts[k] || 0)), el("div", {class: "l"}, label)))),
    SECTIONS.filter(([k]) => b[k] && Object.keys(b[k]).length).map(([k, label]) =>
      el("details", {open: k === "edges"}, el("summary", {}, `${label} (${doc.counts[k]})`), sectionTable(b[k])))];
}

function sectionTable(value) {
  if (Array.isArray(value)) return el("div", {}, value.map(v => el("div", {}, typeof v === "object" ? JSON.stringify(v) : String(v))));
  return table(["Key", "Learned"], Object.entries(value).map(([k, v]) => el("tr", {}, el("td", {class: "ip"}, k), el("td", {}, jsonView(v)))));
}

function diffView(d) {
  if (!d.rows.length) return el("p", {id: "diff-result"}, "No differences.");
  return table([d.old, d.new], d.rows.map(r => el("tr", {},
    el("td", {class: r.old === null ? "" : r.change}, r.old === null ? "" : `${r.path} = ${r.old}`),
    el("td", {class: r.new === null ? "" : r.change}, r.new === null ? "" : `${r.path} = ${r.new}`))), {id: "diff-result", class: "diff"});
}

async function build() {
  const files = await api("/api/baseline/files");
  if (!files.files.length) {
    put(APP, el("h1", {}, "Baseline"), el("p", {}, "No baseline: start the console with --baseline BASELINE.json " +
                                                           "(from otsensor baseline learn)."));
    return;
  }
  const pick = (id, chosen) => el("select", {id: id}, files.files.map(f => el("option", {value: f, selected: f === chosen}, f)));
  const older = files.files.find(f => f !== files.current) || files.current;
  const learnedBox = el("div", {id: "learned"}), diffBox = el("div", {id: "diff"});
  const compare = async () => {
    try {
      const params = new URLSearchParams({old: document.getElementById("old").value, new: document.getElementById("new").value});
      put(diffBox, diffView(await api("/api/baseline/diff?" + params.toString())));
    } catch (err) { showError(diffBox, err); }
  };
  const show = async () => {
    try { put(learnedBox, ...learnedView(await api("/api/baseline?file=" + encodeURIComponent(document.getElementById("show").value)))); }
    catch (err) { showError(learnedBox, err); }
  };
  put(APP, el("h1", {}, "Baseline"),
    el("div", {class: "toolbar"}, "Baseline ", pick("show", files.current), el("button", {onclick: show}, "Show")), learnedBox,
    el("h2", {}, "Compare two baselines"),
    el("div", {class: "toolbar"}, "Old ", pick("old", older === files.current ? files.files[0] : older), " New ", pick("new", files.current),
       el("button", {id: "compare", onclick: compare}, "Compare")), diffBox);
  show();
}

build().catch(err => showError(APP, err));
