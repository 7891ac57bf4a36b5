// plugbay dashboard: live table, per-plugin charts, operations, command calls, logs, alerts.
// Everything comes from this host's API (the page is signed in with a cookie); no library.
"use strict";

const $ = (sel) => document.querySelector(sel);
const body = document.body;
const interval = parseFloat(body.dataset.interval || "1");
const KEEP = 300; // points per chart: five minutes at one sample a second
const rollbackAvailable = body.dataset.rollback === "yes";
// what this page's token may do (read, call:ID, admin): only that is offered
const scopes = (body.dataset.scopes || "admin").split(" ");
const admin = scopes.includes("admin");
const mayCall = (id) => admin || scopes.includes(`call:${id}`);
if (!admin) body.classList.add("read-only");

let selected = null; // plugin id whose charts are shown
let points = []; // its series
const rows = new Map(); // id -> <tr>

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function fmtUptime(s) {
  if (s === null || s === undefined) return "–";
  s = Math.floor(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function fmtNum(v, digits = 1) {
  if (v === null || v === undefined) return "–";
  return Number(v).toFixed(digits);
}

async function api(method, path, payload) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (payload !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(payload);
  }
  const response = await fetch(path, init);
  let data = null;
  try {
    data = await response.json();
  } catch (e) {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || { text: `${response.status} ${response.statusText}`, code: "http_error" };
    error.status = response.status;
    throw error;
  }
  return data;
}

// ------------------------------------------------------------------ the table

function rowHtml(id) {
  return `<td class="id"><button type="button" class="link select">${esc(id)}</button></td>` +
    `<td class="version">?</td><td class="type">?</td>` +
    `<td class="state"><span class="badge">?</span></td><td class="isolation"></td>` +
    `<td class="uptime num">–</td><td class="rate num">–</td><td class="errors num">–</td><td class="p99 num">–</td>` +
    `<td class="actions"><button type="button" data-op="reload">reload</button>` +
    `<button type="button" data-op="disable">disable</button>` +
    `<button type="button" data-op="enable">enable</button>` +
    `<button type="button" data-op="rollback">rollback</button></td>`;
}

function indexRows() {
  rows.clear();
  for (const tr of document.querySelectorAll("#plugins tbody tr")) rows.set(tr.dataset.plugin, tr);
  for (const tr of rows.values()) setButtons(tr, tr.dataset.state);
}

function setButtons(tr, state) {
  const active = state === "active";
  tr.querySelector('[data-op="reload"]').disabled = !active;
  tr.querySelector('[data-op="disable"]').disabled = state === "disabled";
  tr.querySelector('[data-op="enable"]').disabled = active;
  const rb = tr.querySelector('[data-op="rollback"]');
  // data-rollback: the version a rollback would serve (the API's rollback_to), "" for none
  const to = tr.dataset.rollback || "";
  rb.disabled = !rollbackAvailable || !active || !to;
  if (!rollbackAvailable) rb.title = "this host has no rollback yet (it comes with the hot-reload work)";
  else if (!to) rb.title = `nothing to roll back to: no earlier version of ${tr.dataset.plugin} served here and is kept`;
  else rb.title = `roll back to ${to}`;
}

// what a rollback of each plugin would serve: read again when a plugin's version or state moves
let rollbacksAsked = null;

function refreshRollbacks() {
  if (!rollbackAvailable) return;
  clearTimeout(rollbacksAsked); // one request for a burst of changes
  rollbacksAsked = setTimeout(async () => {
    try {
      for (const p of await api("GET", "/api/v1/plugins")) {
        const tr = rows.get(p.id);
        if (!tr) continue;
        tr.dataset.rollback = p.rollback_to || "";
        setButtons(tr, tr.dataset.state);
      }
    } catch (e) {
      /* the next change asks again */
    }
  }, 200);
}

function updateRow(id, p) {
  let tr = rows.get(id);
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.plugin = id;
    tr.innerHTML = rowHtml(id);
    $("#plugins tbody").appendChild(tr);
    rows.set(id, tr);
    applyFilter();
  }
  const changed = tr.dataset.state !== p.state || tr.dataset.version !== String(p.version);
  tr.dataset.state = p.state;
  tr.dataset.version = String(p.version);
  tr.querySelector(".version").textContent = p.version ?? "?";
  const badge = tr.querySelector(".badge");
  badge.className = `badge s-${p.state}`;
  badge.textContent = p.state;
  badge.title = p.reason || "";
  tr.querySelector(".uptime").textContent = fmtUptime(p.uptime_seconds);
  tr.querySelector(".rate").textContent = fmtNum(p.calls_per_s);
  tr.querySelector(".errors").textContent = p.calls_per_s > 0 ? `${fmtNum(p.error_rate * 100)} %` : "–";
  tr.querySelector(".p99").textContent = p.p99_ms === null ? "–" : `${fmtNum(p.p99_ms, 2)} ms`;
  setButtons(tr, p.state);
  return changed;
}

function applyFilter() {
  const text = $("#filter").value.trim().toLowerCase();
  for (const [id, tr] of rows) tr.hidden = text !== "" && !id.includes(text) && !(tr.dataset.state || "").includes(text);
}

// the host's readiness (/readyz): "starting: 12 of 40 active" until every wanted plugin was started
let readiness = null;

async function checkReadiness() {
  try {
    const response = await fetch("/readyz", { headers: { Accept: "application/json" }, credentials: "same-origin" });
    readiness = await response.json();
  } catch (e) {
    readiness = null;
  }
}

function readinessText() {
  if (!readiness || readiness.ready) return "";
  if (readiness.status === "starting") return ` — starting: ${readiness.active} of ${readiness.wanted} active`;
  return ` — ${readiness.status}`;
}

function summary(plugins) {
  const ids = Object.keys(plugins);
  const active = ids.filter((id) => plugins[id].state === "active").length;
  const failed = ids.filter((id) => plugins[id].state === "failed").length;
  const restarting = ids.filter((id) => plugins[id].state === "restarting").length;
  if (!readiness || !readiness.ready) checkReadiness();
  $("#summary").textContent = `${ids.length} plugins, ${active} active` + (restarting ? `, ${restarting} restarting` : "") +
    (failed ? `, ${failed} failed` : "") + readinessText();
}

// ------------------------------------------------------------------ charts

const COLOURS = ["#2c7fb8", "#d95f0e", "#2e8b57"];

function drawChart(canvas, lines, unit) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 42, r: 6, t: 6, b: 14 };
  let max = 0;
  let n = 0;
  for (const line of lines) {
    for (const v of line.values) if (v !== null && v > max) max = v;
    n = Math.max(n, line.values.length);
  }
  max = max > 0 ? max * 1.15 : 1;
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = "#6b7580";
  ctx.strokeStyle = "#e5e8eb";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 2; i++) {
    const y = pad.t + ((h - pad.t - pad.b) * i) / 2;
    ctx.beginPath();
    ctx.moveTo(pad.l, y);
    ctx.lineTo(w - pad.r, y);
    ctx.stroke();
    const label = (max * (2 - i)) / 2;
    ctx.fillText(label >= 100 ? label.toFixed(0) : label.toPrecision(2), 2, y + 3);
  }
  ctx.fillText(`last ${Math.round((n * interval) / 60) || "<1"} min, ${unit}`, pad.l, h - 2);
  const span = Math.max(n - 1, 1);
  lines.forEach((line, k) => {
    ctx.strokeStyle = line.colour || COLOURS[k % COLOURS.length];
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    let started = false;
    line.values.forEach((v, i) => {
      if (v === null) {
        started = false;
        return;
      }
      const x = pad.l + ((w - pad.l - pad.r) * (i + (n - line.values.length))) / span;
      const y = pad.t + (h - pad.t - pad.b) * (1 - v / max);
      if (started) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
      started = true;
    });
    ctx.stroke();
  });
}

function setLast(id, text, value) {
  const el = $(id);
  el.textContent = text;
  el.dataset.value = value === null || value === undefined ? "" : String(value);
}

// whose memory the chart shows (a point's memory_of)
const MEMORY_OF = {
  host: "memory (the host's process, shared)",
  worker: "memory (its worker)",
  module: "memory (its Wasm module's linear memory)",
};

function drawCharts() {
  if (!selected) return;
  const pick = (key, scale = 1) => points.map((p) => (p[key] === null ? null : p[key] * scale));
  const last = points[points.length - 1] || {};
  drawChart($("#chart-rate"), [{ values: pick("calls_per_s") }], "calls/s");
  setLast("#last-rate", `${fmtNum(last.calls_per_s)} /s (${last.calls ?? 0} calls)`, last.calls_per_s);
  drawChart($("#chart-errors"), [{ values: pick("error_rate", 100), colour: "#c0392b" }], "%");
  setLast("#last-errors", `${fmtNum((last.error_rate ?? 0) * 100)} %`, last.error_rate);
  drawChart($("#chart-latency"), [{ values: pick("p50_ms") }, { values: pick("p99_ms"), colour: "#d95f0e" }], "ms");
  setLast("#last-latency", `${fmtNum(last.p50_ms, 3)} / ${fmtNum(last.p99_ms, 3)} ms`, last.p99_ms);
  drawChart($("#chart-memory"), [{ values: pick("memory_mb"), colour: "#2e8b57" }], "MiB");
  setLast("#last-memory", `${fmtNum(last.memory_mb)} MiB`, last.memory_mb);
  $("#memory-label").textContent = MEMORY_OF[last.memory_of] || "memory";
}

async function select(id) {
  selected = id;
  for (const [pid, tr] of rows) tr.classList.toggle("selected", pid === id);
  $("#detail-title").textContent = id;
  try {
    const [series, detail] = await Promise.all([
      api("GET", `/api/v1/plugins/${encodeURIComponent(id)}/series`),
      api("GET", `/api/v1/plugins/${encodeURIComponent(id)}`),
    ]);
    if (selected !== id) return;
    points = series.points.slice(-KEEP);
    drawCharts();
    describe(detail);
    fillCallForm(detail);
    fillConfigForm(id);
  } catch (error) {
    $("#detail-title").textContent = `${id}: ${error.text || error}`;
  }
  refreshLogs();
}

function describe(d) {
  const parts = [`${d.version ?? "?"} · ${d.type ?? "?"} · ${d.state} · ${d.isolation}`];
  const deps = Object.entries(d.dependencies || {}).map(([k, v]) => `${k} ${v}`);
  parts.push(`needs: ${deps.join(", ") || "nothing"}`);
  parts.push(`needed by: ${(d.dependents || []).join(", ") || "nothing"}`);
  if (d.permissions && d.permissions.effective.length) parts.push(`permissions: ${d.permissions.effective.join(", ")}`);
  // asked for and not granted: the diff the operator approves (approving = granting);
  // a denied one stays in it, marked, so it can still be approved
  const pending = (d.permissions && d.permissions.pending) || [];
  const denied = (d.permissions && d.permissions.denied) || [];
  showPermissionDiff(pending, denied);
  const info = $("#detail-info");
  info.textContent = parts.join(" — ");
  const where = $("#detail-where");
  where.hidden = true;
  if (d.location) describeWhere({ ...d.location, how: d.location.mode === "actor" ? "bare actor (no sandbox)" : d.location.sandboxed ? "sandboxed worker of the node's agent" : "worker of the node's agent", address: (placedOn.get(d.id) || {}).address, serving: d.state === "active" });
  const reason = $("#detail-reason");
  reason.textContent = d.reason || "";
  reason.hidden = !d.reason;
}

// ------------------------------------------------------------------ calling a command

let commands = [];

function fillCallForm(detail) {
  commands = detail.commands || [];
  const form = $("#call-form");
  form.hidden = commands.length === 0 || !mayCall(selected);
  const sel = $("#call-command");
  sel.innerHTML = commands.map((c) => `<option value="${esc(c.name)}">${esc(c.name)}</option>`).join("");
  showSignature();
  $("#call-result").textContent = "";
}

// the config form: one input per key of the manifest's schema; the host checks the values
// the same way as at start (novalidate: the browser does not second-guess it)
let configView = null;

async function fillConfigForm(id) {
  const form = $("#config-form");
  form.hidden = true;
  configView = null;
  if (!admin) return;
  let view;
  try {
    view = await api("GET", `/api/v1/plugins/${encodeURIComponent(id)}/config`);
  } catch (error) {
    return;
  }
  if (selected !== id) return;
  const fields = Object.entries(view.schema || {});
  // keys set for another installed version (the serving one does not declare them)
  const kept = Object.entries(view.kept || {}).filter(([key]) => !(key in (view.schema || {})));
  if (!fields.length && !kept.length) return;
  configView = view;
  $("#config-fields").innerHTML = fields.map(([key, f]) => configInput(key, f, view.config[key])).join("") +
    kept.map(([key, k]) => configInput(key, { type: k.type, kept: k.version,
      description: `kept for version ${k.version}: the serving version does not declare it` }, k.value)).join("");
  // what each input showed: only an input the operator changed is sent (an empty input
  // for a key without a value is not "", nor an empty list [])
  for (const el of $("#config-fields").querySelectorAll("[name]")) el.dataset.shown = shownValue(el);
  $("#config-result").textContent = "";
  form.hidden = false;
}

function configInput(key, f, value) {
  const attrs = `id="cfg-${esc(key)}" name="${esc(key)}" data-type="${esc(f.type)}"` +
    (f.kept ? ` data-kept="${esc(f.kept)}"` : "");
  let input;
  if (f.enum) {
    input = `<select ${attrs}>` + f.enum.map((v) => `<option${v === value ? " selected" : ""}>${esc(v)}</option>`).join("") + "</select>";
  } else if (f.type === "boolean") {
    input = `<input type="checkbox" ${attrs}${value ? " checked" : ""}>`;
  } else if (f.type === "integer" || f.type === "number") {
    input = `<input type="number" step="${f.type === "integer" ? "1" : "any"}" ${attrs} value="${esc(value ?? "")}">`;
  } else if (f.type === "array" || f.type === "object") {
    input = `<textarea rows="2" ${attrs}>${esc(JSON.stringify(value ?? (f.type === "array" ? [] : {})))}</textarea>`;
  } else {
    input = `<input type="text" ${attrs} value="${esc(value ?? "")}">`;
  }
  const hint = f.description ? `<small>${esc(f.description)}</small>` : "";
  return `<div class="cfg"><label for="cfg-${esc(key)}">${esc(key)}</label>${input}${hint}</div>`;
}

function shownValue(el) {
  return el.type === "checkbox" ? String(el.checked) : el.value;
}

function configValue(el) {
  const t = el.dataset.type;
  if (t === "boolean") return el.checked;
  if ((t === "integer" || t === "number") && el.value.trim() !== "" && !Number.isNaN(Number(el.value))) return Number(el.value);
  if (t === "array" || t === "object") {
    try {
      return JSON.parse(el.value);
    } catch (e) {
      return el.value; // the host names the key and what it expects
    }
  }
  return el.value;
}

async function saveConfig(event) {
  event.preventDefault();
  if (!configView || !selected) return;
  const id = selected;
  const values = { ...configView.runtime };
  const keptFor = {}; // each kept key this change sets: the version it is kept for
  for (const el of $("#config-fields").querySelectorAll("[name]")) {
    el.removeAttribute("aria-invalid");
    if (shownValue(el) === el.dataset.shown) continue;
    values[el.name] = configValue(el);
    if (el.dataset.kept) keptFor[el.name] = el.dataset.kept;
  }
  const result = $("#config-result");
  result.textContent = "applying…";
  result.className = "";
  try {
    const view = await api("PUT", `/api/v1/plugins/${encodeURIComponent(id)}/config`, { values });
    const outcome = configOutcome(view, keptFor, (rows.get(id) || { dataset: {} }).dataset.version);
    result.textContent = outcome;
    await fillConfigForm(id);
    $("#config-result").textContent = outcome;
  } catch (error) {
    result.textContent = error.text || String(error);
    result.className = "error";
    // every key the refusal names (details.problems), the first one focused
    const problems = (error.details && error.details.problems) || [];
    const keys = problems.length ? problems.map((p) => p.key) : [(error.where || "").split(": ").pop()];
    const fields = keys
      .filter(Boolean)
      .map((key) => $("#config-fields").querySelector(`[name="${CSS.escape(key)}"]`))
      .filter(Boolean);
    for (const field of fields) field.setAttribute("aria-invalid", "true");
    if (fields.length) fields[0].focus();
  }
}

// what came of a change (the PUT's answer): applied, kept for its next start, or kept
// for another version only, the serving one running with its config unchanged
function configOutcome(view, keptFor, serving) {
  const kept = Object.entries(keptFor).map(([key, version]) => `${key} kept for version ${version}`).join(", ");
  if (view.unchanged) {
    return kept
      ? `not applied: ${kept} (the serving version${serving ? ` ${serving}` : ""} does not declare it); the config it runs with is unchanged`
      : "nothing to apply: the config it runs with is unchanged";
  }
  const done = view.pending ? `kept, not in effect yet: ${view.pending}` : "applied";
  return kept ? `${done}; ${kept}, not passed to the serving version` : done;
}

function showSignature() {
  const c = commands.find((x) => x.name === $("#call-command").value);
  $("#call-signature").textContent = c ? c.signature + (c.doc ? ` — ${c.doc.split("\n")[0]}` : "") : "";
  if (c) {
    const example = {};
    for (const [name, schema] of Object.entries(c.params_schema.properties || {})) {
      if ((c.params_schema.required || []).includes(name)) example[name] = schema.type === "integer" || schema.type === "number" ? 0 : schema.type === "boolean" ? false : "";
    }
    $("#call-params").value = JSON.stringify(example);
  }
}

async function callCommand(event) {
  event.preventDefault();
  const out = $("#call-result");
  out.className = "";
  let params;
  try {
    params = JSON.parse($("#call-params").value || "{}");
  } catch (e) {
    out.className = "error";
    out.textContent = `the parameters are not JSON: ${e.message}`;
    return;
  }
  const command = $("#call-command").value;
  out.textContent = "…";
  try {
    const data = await api("POST", `/api/v1/plugins/${encodeURIComponent(selected)}/commands/${encodeURIComponent(command)}`, params);
    out.textContent = typeof data.result === "string" ? data.result : JSON.stringify(data.result, null, 2);
  } catch (error) {
    out.className = "error";
    out.textContent = error.text || String(error);
  }
}

// ------------------------------------------------------------------ operations

// the permission diff of an upgrade: what the version serving now asks for beyond its
// grants, each with approve (a grant, applied at once) and deny (recorded; it runs without)
function showPermissionDiff(pending, deniedList) {
  const box = $("#permission-diff");
  const asked = [...pending, ...deniedList];
  box.hidden = asked.length === 0;
  if (!asked.length) return;
  const denied = new Set(deniedList);
  $("#pending").innerHTML = asked.map((p) => {
    const note = denied.has(p) ? ' <span class="muted">denied: it runs without it</span>' : "";
    const buttons = admin
      ? `<button type="button" data-perm="${esc(p)}" data-answer="grants">approve</button>` +
        (denied.has(p) ? "" : `<button type="button" data-perm="${esc(p)}" data-answer="deny">deny</button>`)
      : "";
    return `<li><code>${esc(p)}</code>${note} ${buttons}</li>`;
  }).join("");
}

async function answerPermission(button) {
  const id = selected;
  const status = $("#op-result");
  status.className = "";
  button.disabled = true;
  try {
    await api("POST", `/api/v1/plugins/${encodeURIComponent(id)}/${button.dataset.answer}`, { permission: button.dataset.perm });
    status.textContent = `${id}: ${button.dataset.perm} ${button.dataset.answer === "grants" ? "granted" : "denied"}`;
    select(id);
  } catch (error) {
    status.className = "error";
    status.textContent = error.text || String(error);
    button.disabled = false;
  }
}

async function operate(id, op, button) {
  const status = $("#op-result");
  status.className = "";
  status.textContent = `${op} ${id}…`;
  button.disabled = true;
  try {
    const data = await api("POST", `/api/v1/plugins/${encodeURIComponent(id)}/${op}`, {});
    const p = data.plugin;
    rows.get(id).dataset.rollback = p.rollback_to || "";
    updateRow(id, { ...p, calls_per_s: 0, error_rate: 0, p99_ms: null });
    const others = data.affected.filter((x) => x !== id);
    status.textContent = `${id}: ${op} done — ${p.version} ${p.state}` + (others.length ? ` (also: ${others.join(", ")})` : "");
    refreshGraph();
    if (others.length) refreshRollbacks();
    if (id === selected) select(id); // its detail changed (version, state, commands)
  } catch (error) {
    status.className = "error";
    status.textContent = error.text || String(error);
  } finally {
    setButtons(rows.get(id), rows.get(id).dataset.state);
  }
}

// ------------------------------------------------------------------ graph, logs, alerts

async function refreshGraph() {
  try {
    const response = await fetch("/api/v1/graph.svg", { credentials: "same-origin" });
    if (response.ok) $("#graph").innerHTML = await response.text();
  } catch (e) {
    /* the next change tries again */
  }
}

async function refreshLogs() {
  const pane = $("#logs");
  const query = new URLSearchParams({ limit: "60" });
  const only = $("#logs-only").checked && selected;
  if (only) query.set("plugin", selected);
  try {
    const records = await api("GET", `/api/v1/logs?${query}`);
    pane.className = "";
    pane.textContent = records.length
      ? records.map((r) => `${new Date(r.time * 1000).toLocaleTimeString()} ${r.level.toUpperCase().padEnd(7)} ${r.plugin || r.logger}: ${r.message}`).join("\n")
      : only ? `no records of ${selected} yet` : "no records yet";
    pane.scrollTop = pane.scrollHeight;
  } catch (error) {
    pane.className = "error";
    pane.textContent = error.text || String(error);
  }
}

let alertsEndpoint = true;
let alertsFetched = 0;
let firing = [];

async function refreshAlerts(plugins) {
  const list = $("#alerts");
  if (alertsEndpoint && Date.now() - alertsFetched > 2000) {
    alertsFetched = Date.now();
    try {
      firing = await api("GET", "/api/v1/alerts");
    } catch (error) {
      if (error.status === 404 && error.code === "not_found") alertsEndpoint = false; // no alert rules here
      else firing = [{ plugin: "", rule: "error", message: error.text || String(error) }];
    }
  }
  const items = firing.map((a) => `<li class="error"><b>${esc(a.plugin || "host")}</b> ${esc(a.rule)}: ${esc(a.message)}</li>`);
  for (const [id, p] of Object.entries(plugins)) {
    if (p.state === "failed") items.push(`<li class="error">${esc(id)} is failed: ${esc(p.reason || "see its detail")}</li>`);
  }
  list.innerHTML = items.length ? items.join("") : "<li>no alert is firing, and no plugin is failing</li>";
}

// ------------------------------------------------------------------ nodes (a cluster)

// where each plugin placed on a cluster runs: the nodes pane and the table's isolation
// column, from /api/v1/nodes (the pane is there only when the host has [ray])
const placedOn = new Map(); // plugin id -> {node, address, mode, how, serving}

function fmtResources(res) {
  const parts = [];
  for (const [name, value] of Object.entries(res || {})) {
    if (name === "memory" || name === "object_store_memory") parts.push(`${name} ${(value / 2 ** 30).toFixed(1)} GiB`);
    else parts.push(`${name} ${Number(value) % 1 === 0 ? value : Number(value).toFixed(2)}`);
  }
  return parts.join(", ");
}

function nodeState(alive) {
  if (alive === true) return '<span class="badge s-active">alive</span>';
  if (alive === false) return '<span class="badge s-failed">dead</span>';
  return '<span class="badge s-stopped">unknown</span>';
}

async function refreshNodes() {
  const pane = $("#nodes-pane");
  if (!pane || pane.hidden) return;
  let view;
  try {
    view = await api("GET", "/api/v1/nodes");
  } catch (error) {
    $("#cluster-status").textContent = error.text || String(error);
    return;
  }
  const c = view.cluster;
  const status = $("#cluster-status");
  if (!c) {
    status.textContent = "this host places no plugin on a cluster";
  } else if (!c.connected) {
    status.textContent = `Ray at ${c.address}: not joined yet (on the first plugin placed there)`;
  } else if (c.reachable === false) {
    status.className = "error";
    status.textContent = `Ray at ${c.address}: ${c.error}`;
  } else {
    status.className = "muted";
    const alive = view.nodes.filter((n) => n.alive).length;
    status.textContent = `Ray at ${c.address}: ${alive} of ${view.nodes.length} nodes alive`;
  }
  placedOn.clear();
  $("#nodes tbody").innerHTML = view.nodes.map((n) => {
    const plugins = n.plugins.map((p) => {
      placedOn.set(p.plugin, { node: n.node, address: n.address, ...p });
      const serving = p.serving ? "serving" : "not serving";
      return `<li data-plugin="${esc(p.plugin)}" data-mode="${esc(p.mode)}" data-serving="${p.serving}">` +
        `<b>${esc(p.plugin)}</b> ${esc(p.version || "")} <span class="mode">${esc(p.how)}</span> ` +
        `· <span class="${p.serving ? "muted" : "error"}">${serving}</span></li>`;
    }).join("");
    return `<tr data-node="${esc(n.node)}" data-alive="${n.alive}"><td class="node" title="${esc(n.node)}">${esc(n.node.slice(0, 12))}</td>` +
      `<td>${esc(n.address || "–")}</td><td>${nodeState(n.alive)}</td>` +
      `<td class="resources">${esc(fmtResources(n.resources))}</td>` +
      `<td><ul class="placed">${plugins || '<li class="muted">none</li>'}</ul></td></tr>`;
  }).join("");
  const unplaced = $("#unplaced");
  unplaced.hidden = view.unplaced.length === 0;
  unplaced.textContent = view.unplaced.map((p) => `${p.plugin} is on no node (${p.state}): ${p.reason || ""}`).join("; ");
  for (const [id, tr] of rows) {
    const where = placedOn.get(id);
    const cell = tr.querySelector(".isolation");
    if (where) {
      cell.textContent = `ray · ${where.mode} · ${where.node.slice(0, 8)}`;
      cell.title = `${where.how} on node ${where.node} (${where.address || "?"})`;
      cell.dataset.node = where.node;
    } else if (cell.dataset.node) {
      cell.textContent = "ray · on no node";
      cell.title = "";
      delete cell.dataset.node;
    }
  }
  if (selected && placedOn.has(selected)) describeWhere(placedOn.get(selected));
}

function describeWhere(where) {
  const info = $("#detail-where");
  info.hidden = false;
  info.textContent = `runs on Ray node ${where.node.slice(0, 12)} (${where.address || "?"}) as a ${where.how}, pid ${where.pid}` +
    (where.serving ? "" : " — not serving");
}

// ------------------------------------------------------------------ the live stream

function connect() {
  const source = new EventSource("/api/v1/stream");
  source.addEventListener("sample", (event) => {
    const data = JSON.parse(event.data);
    let changed = false;
    for (const [id, p] of Object.entries(data.plugins)) changed = updateRow(id, p) || changed;
    for (const id of [...rows.keys()]) {
      if (!(id in data.plugins)) {
        rows.get(id).remove();
        rows.delete(id);
        changed = true;
      }
    }
    summary(data.plugins);
    if (changed) {
      refreshGraph();
      refreshRollbacks();
    }
    if (selected && data.plugins[selected]) {
      const p = data.plugins[selected];
      if (!points.length || points[points.length - 1].t !== p.t) {
        points.push(p);
        if (points.length > KEEP) points.shift();
        drawCharts();
      }
    }
    body.dataset.samples = String(Number(body.dataset.samples || "0") + 1);
    refreshAlerts(data.plugins);
  });
  source.addEventListener("error", () => {
    $("#op-result").textContent = "the live stream is reconnecting…";
  });
  source.addEventListener("open", () => {
    if ($("#op-result").textContent.startsWith("the live stream")) $("#op-result").textContent = "";
  });
}

// ------------------------------------------------------------------ wiring

indexRows();
$("#plugins tbody").addEventListener("click", (event) => {
  const target = event.target.closest("button");
  if (!target) return;
  const id = target.closest("tr").dataset.plugin;
  if (target.classList.contains("select")) select(id);
  else if (target.dataset.op) operate(id, target.dataset.op, target);
});
$("#filter").addEventListener("input", applyFilter);
$("#logs-only").addEventListener("change", refreshLogs);
$("#call-command").addEventListener("change", showSignature);
$("#call-form").addEventListener("submit", callCommand);
$("#config-form").addEventListener("submit", saveConfig);
$("#pending").addEventListener("click", (event) => {
  const target = event.target.closest("button[data-answer]");
  if (target) answerPermission(target);
});
window.addEventListener("resize", drawCharts);
connect();
refreshNodes();
setInterval(refreshNodes, 3000);
refreshLogs();
setInterval(refreshLogs, 3000);
const first = rows.keys().next();
if (!first.done) select(first.value);
