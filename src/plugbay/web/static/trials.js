// plugbay dashboard: upgrades on trial (docs/upgrades.md): each shadow's comparison with the
// serving version, each canary's figures and decision, each recording. From /api/v1/trials.
"use strict";

(() => {
  const pane = document.querySelector("#trials-pane");
  const box = document.querySelector("#trials");
  const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const ms = (s) => (s === null || s === undefined ? "–" : `${(s * 1000).toFixed(2)} ms`);
  const pct = (r) => `${(r * 100).toFixed(1)}%`;

  function shadowHtml(s) {
    const rows = Object.entries(s.commands).map(([name, c]) => `<tr><td>${esc(name)}</td>
      <td class="num">${c.calls}</td><td class="num">${c.same}</td>
      <td class="num${c.differ ? " error" : ""}">${c.differ}</td>
      <td class="num${c.new_errors ? " error" : ""}">${c.new_errors}</td>
      <td class="num">${c.fixed_errors}</td>
      <td class="num">${ms(c.reference_mean_seconds)} → ${ms(c.candidate_mean_seconds)}</td></tr>`);
    const examples = Object.entries(s.commands).flatMap(([name, c]) => c.examples.map((e) =>
      `<li>${esc(name)} ${esc(JSON.stringify(e.params))}: ${esc(e.verdict)}, expected ${esc(JSON.stringify(e.expected))}, got ${esc(JSON.stringify(e.got))}</li>`));
    return `<h3>${esc(s.plugin)}: shadow ${esc(s.to)} beside ${esc(s.from)} <span class="muted">(${esc(s.state)})</span></h3>
      <p class="muted">${s.mirrored} call(s) mirrored, <b class="${s.differences ? "error" : ""}">${s.differences} difference(s)</b>, ${s.dropped} dropped</p>
      <table><thead><tr><th>command</th><th>calls</th><th>same</th><th>differ</th><th>new errors</th><th>fixed</th><th>latency</th></tr></thead>
      <tbody>${rows.join("")}</tbody></table>${examples.length ? `<ul class="small">${examples.join("")}</ul>` : ""}${s.withheld ? `<p class="muted small">${esc(s.withheld)}</p>` : ""}`;
  }

  function canaryHtml(c) {
    const f = c.figures;
    const side = (x) => `<td>${esc(x.version)}</td><td class="num">${x.calls}</td><td class="num">${pct(x.error_rate)}</td><td class="num">${ms(x.mean_seconds)}</td>`;
    const bad = c.state === "rolled-back" ? " error" : "";
    return `<h3>${esc(c.plugin)}: canary ${esc(c.to)} <span class="${bad}">(${esc(c.state)})</span></h3>
      <p class="muted">${pct(c.settings.share)} of calls, ${f.window_calls} call(s) into the window${c.reason ? ` — <span class="error">${esc(c.reason)}</span>` : ""}</p>
      <table><thead><tr><th>version</th><th>calls</th><th>errors</th><th>mean</th></tr></thead>
      <tbody><tr>${side(f.old)}</tr><tr>${side(f.new)}</tr></tbody></table>`;
  }

  async function refresh() {
    let data;
    try {
      const response = await fetch("/api/v1/trials", { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) return;
      data = await response.json();
    } catch (e) {
      return;
    }
    const parts = [...data.shadows.map(shadowHtml), ...data.canaries.map(canaryHtml)];
    if (data.recordings.length) {
      parts.push(`<p class="muted">recording: ${data.recordings.map((r) => `${esc(r.plugin)} (${r.calls} calls)`).join(", ")}</p>`);
    }
    pane.hidden = !parts.length;
    box.innerHTML = parts.join("");
    document.body.dataset.trials = String(Number(document.body.dataset.trials || "0") + 1);
  }

  refresh();
  setInterval(refresh, 2000);
})();
