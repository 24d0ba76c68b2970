// The page's explorer (see reports/explorer.py): builds plotly traces from the embedded data,
// filters the table and highlights points, opens a phenotype's (or a task's) detail view.
function explorer() {
  "use strict";
  const body = document.body;
  const errors = [];
  window.addEventListener("error", (e) => { errors.push(String(e.message)); body.dataset.errors = errors.length; });
  body.dataset.errors = "0";
  const D = JSON.parse(document.getElementById("explorer-data").textContent);
  const C = D.columns;
  const N = C[Object.keys(C)[0]].length;
  const plotsDiv = document.getElementById("plots");
  const searchBox = document.getElementById("search");
  const tableRows = Array.from(document.querySelectorAll("table.sortable tbody tr"));
  const state = { search: "", sig: false, firth: false, untested: false, auc: null, detail: null };
  const plots = [];  // {div, rows: [[row per point] per trace]}
  const config = { displaylogo: false, responsive: true, toImageButtonOptions: { format: "svg" } };
  const fmt = (v, d = 3) => (v === null || v === undefined) ? "" :
    (typeof v === "number" ? (v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential(2) : v.toFixed(d)) : String(v));
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const has = (k) => C[k] !== undefined;

  // ---- which rows match the search and filters
  function matches(i) {
    if (state.search) {
      const keys = D.kind === "probe" ? ["task", "encoder", "metric"] : ["phecode", "description", "chapter"];
      const text = keys.filter(has).map((k) => C[k][i]).join(" ").toLowerCase();
      if (!text.includes(state.search)) return false;
    }
    if (state.sig && !(has("q_value") && C.q_value[i] !== null && C.q_value[i] <= D.alpha)) return false;
    if (state.firth && !(has("method") && C.method[i] === "firth")) return false;
    if (state.untested && !(has("method") && C.method[i] === "none")) return false;
    if (state.auc !== null) {
      const auc = D.kind === "compare" ? Math.max(C.auc_a[i], C.auc_b[i]) : C.auc[i];
      if (!(auc >= state.auc)) return false;
    }
    return true;
  }

  function apply() {
    const hit = new Array(N);
    let shown = 0;
    for (let i = 0; i < N; i++) { hit[i] = matches(i); shown += hit[i]; }
    tableRows.forEach((tr) => { tr.hidden = !hit[+tr.dataset.row]; });
    const what = D.kind === "probe" ? "rows" : (D.kind === "compare" ? "phenotype-pair rows" : "phenotypes");
    document.getElementById("shown").textContent = `${shown} of ${N} ${what} shown`;
    const active = shown < N;
    for (const p of plots) {
      const opacity = p.rows.map((rows) => rows.map((i) => (!active || hit[i]) ? 0.85 : 0.08));
      const size = p.rows.map((rows) => rows.map((i) => (active && hit[i]) ? p.size * 1.6 : p.size));
      Plotly.restyle(p.div, { "marker.opacity": opacity, "marker.size": size }, p.rows.map((_, t) => t));
    }
    writeHash();
    body.dataset.shown = shown;
  }

  // ---- the address holds the state
  function writeHash() {
    const q = new URLSearchParams();
    if (state.search) q.set("search", state.search);
    for (const k of ["sig", "firth", "untested"]) if (state[k]) q.set(k, "1");
    if (state.auc !== null) q.set("auc", state.auc);
    if (state.detail !== null) q.set("detail", D.kind === "probe" ? C.task[state.detail] : C.phecode[state.detail]);
    history.replaceState(null, "", q.toString() ? "#" + q.toString() : location.pathname);
  }
  function readHash() {
    const q = new URLSearchParams(location.hash.slice(1));
    state.search = (q.get("search") || "").toLowerCase();
    searchBox.value = state.search;
    for (const k of ["sig", "firth", "untested"]) {
      state[k] = q.get(k) === "1";
      const box = document.getElementById("filter-" + k);
      if (box) box.checked = state[k];
    }
    const auc = parseFloat(q.get("auc"));
    state.auc = isNaN(auc) ? null : auc;
    const aucBox = document.getElementById("filter-auc");
    if (aucBox && state.auc !== null) aucBox.value = state.auc;
    return q.get("detail");
  }

  // ---- figures
  function hoverText(i) {
    if (D.kind === "probe") {
      return `${esc(C.task[i])} · ${esc(C.encoder[i])}<br>${esc(C.metric[i])} ${fmt(C.value[i])} ` +
        `[${fmt(C.ci_low[i])}, ${fmt(C.ci_high[i])}]<br>n test ${C.n_test[i]}`;
    }
    let t = `<b>${esc(C.phecode[i])}</b> ${esc(C.description[i])}<br>${esc(C.chapter[i])}<br>`;
    if (D.kind === "compare") {
      t += `${esc(C.model_a[i])} ${fmt(C.auc_a[i])} [${fmt(C.auc_a_ci_low[i])}, ${fmt(C.auc_a_ci_high[i])}]<br>` +
        `${esc(C.model_b[i])} ${fmt(C.auc_b[i])} [${fmt(C.auc_b_ci_low[i])}, ${fmt(C.auc_b_ci_high[i])}]<br>` +
        `difference ${fmt(C.auc_diff[i])} [${fmt(C.diff_ci_low[i])}, ${fmt(C.diff_ci_high[i])}]<br>`;
    } else {
      t += `AUC ${fmt(C.auc[i])} [${fmt(C.auc_ci_low[i])}, ${fmt(C.auc_ci_high[i])}]<br>`;
      if (has("or_per_sd") && C.or_per_sd[i] !== null) t += `OR per SD ${fmt(C.or_per_sd[i])}<br>`;
    }
    if (has("p_value")) t += `p ${fmt(C.p_value[i])}, q ${fmt(C.q_value[i])}<br>`;
    return t + `cases ${C.n_pos[i]}` + (has("n_neg") ? `, controls ${C.n_neg[i]}` : "");
  }

  function byChapter(rows, x, y, extra = () => ({})) {
    const traces = [], traceRows = [];
    for (const ch of D.chapters) {
      const rs = rows.filter((i) => C.chapter[i] === ch);
      if (!rs.length) continue;
      traces.push(Object.assign({
        type: "scatter", mode: "markers", name: ch, x: rs.map(x), y: rs.map(y), customdata: rs,
        text: rs.map(hoverText), hoverinfo: "text", marker: { color: D.colours[ch], size: 6 },
      }, extra(rs)));
      traceRows.push(rs);
    }
    return [traces, traceRows];
  }

  function hline(y, colour, label, dash = "solid") {
    return {
      shape: { type: "line", xref: "paper", x0: 0, x1: 1, y0: y, y1: y, line: { color: colour, width: 1, dash } },
      annotation: { xref: "paper", x: 1, y, text: label, showarrow: false, xanchor: "right", yanchor: "bottom",
                    font: { size: 10, color: colour } },
    };
  }

  function addPlot(title, traces, traceRows, layout, size = 6) {
    const div = document.createElement("div");
    div.className = "plot";
    plotsDiv.appendChild(div);
    const lines = layout.lines || [];
    delete layout.lines;
    const full = Object.assign({
      title: { text: title, font: { size: 14 } }, hovermode: "closest", height: 420,
      margin: { l: 60, r: 20, t: 40, b: 60 }, legend: { font: { size: 9 } },
      shapes: lines.map((l) => l.shape), annotations: lines.map((l) => l.annotation),
    }, layout);
    const done = Plotly.newPlot(div, traces, full, config).then(() => {
      div.on("plotly_click", (ev) => { if (ev.points.length) openDetail(ev.points[0].customdata); });
    });
    plots.push({ div, rows: traceRows, size });
    return done;
  }

  const neglog = (p) => (p === null || p <= 0) ? null : -Math.log10(Math.max(p, 1e-300));
  const all = [...Array(N).keys()];

  function significanceLines() {
    const tested = all.filter((i) => C.p_value[i] !== null);
    const lines = [];
    if (tested.length) lines.push(hline(neglog(D.alpha / tested.length), "firebrick", `Bonferroni ${D.alpha}/${tested.length}`));
    const sig = tested.filter((i) => C.q_value[i] !== null && C.q_value[i] <= D.alpha);
    if (sig.length) lines.push(hline(neglog(Math.max(...sig.map((i) => C.p_value[i]))), "darkorange", `FDR ${D.alpha} (BH)`, "dash"));
    return lines;
  }

  function reportFigures() {
    const jobs = [];
    const ticks = D.chapters.map((ch) => { const rs = all.filter((i) => C.chapter[i] === ch); return rs.length ? [ch, rs[Math.floor(rs.length / 2)]] : null; }).filter(Boolean);
    const xaxis = { tickvals: ticks.map((t) => t[1]), ticktext: ticks.map((t) => t[0]), tickangle: -45, tickfont: { size: 9 } };
    let [tr, rows] = byChapter(all, (i) => i, (i) => C.auc[i]);
    jobs.push(addPlot("AUC by phecode (held-out; click a point for its detail)", tr, rows, {
      xaxis, yaxis: { title: "AUC" }, lines: D.thresholds.map((t) => hline(t, "#555", String(t), "dot")) }));
    if (has("p_value") && all.some((i) => C.p_value[i] !== null)) {
      const tested = all.filter((i) => C.p_value[i] !== null);
      [tr, rows] = byChapter(tested, (i) => i, (i) => neglog(C.p_value[i]));
      jobs.push(addPlot(`Association beyond ${D.adjusted_for} (-log10 p)`, tr, rows, {
        xaxis, yaxis: { title: "-log10 p" }, lines: significanceLines() }));
      const withOr = tested.filter((i) => C.or_per_sd[i] !== null);
      [tr, rows] = byChapter(withOr, (i) => Math.log(C.or_per_sd[i]), (i) => neglog(C.p_value[i]));
      jobs.push(addPlot("Volcano: effect against evidence", tr, rows, {
        xaxis: { title: "log odds ratio per SD of the score", zeroline: true }, yaxis: { title: "-log10 p" },
        lines: significanceLines() }));
      const top = withOr.filter((i) => C.or_ci_low[i] !== null).sort((a, b) => C.p_value[a] - C.p_value[b]).slice(0, 30).reverse();
      const forest = [{
        type: "scatter", mode: "markers", x: top.map((i) => C.or_per_sd[i]), customdata: top,
        y: top.map((i) => `${C.phecode[i]} ${String(C.description[i]).slice(0, 40)}`),
        error_x: { type: "data", symmetric: false, array: top.map((i) => C.or_ci_high[i] - C.or_per_sd[i]),
                   arrayminus: top.map((i) => C.or_per_sd[i] - C.or_ci_low[i]), thickness: 1 },
        marker: { color: top.map((i) => D.colours[C.chapter[i]]), size: 7 }, text: top.map(hoverText), hoverinfo: "text",
        showlegend: false }];
      jobs.push(addPlot("Forest: the strongest associations (odds ratio per SD, 95% CI)", forest, [top], {
        xaxis: { title: "odds ratio per SD of the score", type: "log" }, height: Math.max(420, 16 * top.length + 100),
        yaxis: { automargin: true, tickfont: { size: 9 } },
        shapes: [{ type: "line", x0: 1, x1: 1, yref: "paper", y0: 0, y1: 1, line: { color: "#888", dash: "dot" } }] }, 7));
    }
    return jobs;
  }

  function compareFigures() {
    const jobs = [];
    for (const [a, b] of D.pairs) {
      const rs = all.filter((i) => C.model_a[i] === a && C.model_b[i] === b);
      let [tr, rows] = byChapter(rs, (i) => C.auc_b[i], (i) => C.auc_a[i]);
      jobs.push(addPlot(`AUC: ${a} against ${b} (click a point for both ROC curves)`, tr, rows, {
        xaxis: { title: `AUC ${b}` }, yaxis: { title: `AUC ${a}`, scaleanchor: "x" },
        shapes: [{ type: "line", x0: 0.3, y0: 0.3, x1: 1, y1: 1, line: { color: "#888", dash: "dot" } }] }));
      [tr, rows] = byChapter(rs, (i) => i, (i) => C.auc_diff[i], (ts) => ({
        error_y: { type: "data", symmetric: false, array: ts.map((i) => C.diff_ci_high[i] - C.auc_diff[i]),
                   arrayminus: ts.map((i) => C.auc_diff[i] - C.diff_ci_low[i]), thickness: 0.6, width: 0 } }));
      jobs.push(addPlot(`AUC difference ${a} - ${b} (95% CI)`, tr, rows, {
        xaxis: { showticklabels: false, title: "phecodes by chapter" }, yaxis: { title: "AUC difference" },
        lines: [hline(0, "#555", "")] }));
    }
    return jobs;
  }

  function probeFigures() {
    const jobs = [];
    for (const metric of D.main_metrics) {
      const rs = all.filter((i) => C.metric[i] === metric && C.value[i] !== null);
      if (!rs.length) continue;
      const traces = [], traceRows = [];
      for (const enc of D.encoders) {
        const es = rs.filter((i) => C.encoder[i] === enc);
        if (!es.length) continue;
        traces.push({
          type: "scatter", mode: "markers", name: enc, x: es.map((i) => C.value[i]), y: es.map((i) => C.task[i]),
          offsetgroup: enc, orientation: "h",  // encoders side by side within each task's row
          customdata: es, text: es.map(hoverText), hoverinfo: "text", marker: { size: 9 },
          error_x: { type: "data", symmetric: false, array: es.map((i) => (C.ci_high[i] ?? C.value[i]) - C.value[i]),
                     arrayminus: es.map((i) => C.value[i] - (C.ci_low[i] ?? C.value[i])), thickness: 1 } });
        traceRows.push(es);
      }
      jobs.push(addPlot(`${metric} by task and encoder (95% CI; click for the task)`, traces, traceRows, {
        xaxis: { title: metric }, yaxis: { automargin: true, type: "category" }, scattermode: "group",
        height: Math.max(300, 60 * new Set(rs.map((i) => C.task[i])).size + 120) }, 9));
    }
    return jobs;
  }

  // ---- detail view
  const detail = document.getElementById("detail");
  const detailBody = document.getElementById("detail-body");
  function closeDetail() { detail.hidden = true; state.detail = null; delete body.dataset.detail; writeHash(); }
  document.getElementById("detail-close").addEventListener("click", closeDetail);
  detail.addEventListener("click", (e) => { if (e.target === detail) closeDetail(); });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && !detail.hidden) closeDetail(); });

  function table(head, rows) {
    return `<table class="detail-table"><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr>` +
      rows.map((r) => `<tr>${r.map((v) => `<td>${typeof v === "number" ? fmt(v) : esc(v)}</td>`).join("")}</tr>`).join("") + "</table>";
  }

  function rocTraces(k) {
    const traces = [];
    D.models.forEach((name, m) => {
      const t = D.details.tpr[m][k].map((v) => v / 1000);
      const lo = D.details.tpr_low[m][k].map((v) => v / 1000), hi = D.details.tpr_high[m][k].map((v) => v / 1000);
      traces.push({ x: D.fpr, y: lo, mode: "lines", line: { width: 0 }, showlegend: false, hoverinfo: "skip", legendgroup: name });
      traces.push({ x: D.fpr, y: hi, mode: "lines", line: { width: 0 }, fill: "tonexty", name: `${name} 95% band`,
                    hoverinfo: "skip", legendgroup: name, showlegend: false, fillcolor: `hsla(${210 + 120 * m},70%,50%,0.15)` });
      traces.push({ x: D.fpr, y: t, mode: "lines", name, line: { shape: "hv", color: `hsl(${210 + 120 * m},70%,40%)` },
                    legendgroup: name });
    });
    traces.push({ x: [0, 1], y: [0, 1], mode: "lines", line: { dash: "dot", color: "#999" }, showlegend: false, hoverinfo: "skip" });
    return traces;
  }

  function openDetail(i) {
    if (i === null || i === undefined) return;
    state.detail = i;
    writeHash();
    detail.hidden = false;
    const jobs = [];
    if (D.kind === "probe") {
      const task = C.task[i];
      const rs = all.filter((j) => C.task[j] === task);
      detailBody.innerHTML = `<h2>${esc(task)}</h2><p>${esc(C.kind[i])} task</p>` +
        table(["encoder", "metric", "value", "95% CI", "n test", "hyperparameters"],
              rs.map((j) => [C.encoder[j], C.metric[j], C.value[j] ?? "", C.ci_low[j] === null ? "" : `${fmt(C.ci_low[j])}-${fmt(C.ci_high[j])}`,
                             C.n_test[j] ?? "", C.hyperparameters ? C.hyperparameters[j] : ""]));
      body.dataset.detail = task;
      return;
    }
    const k = D.detail_index ? D.detail_index[i] : i;
    let html = `<h2>${esc(C.phecode[i])} ${esc(C.description[i])}</h2><p>${esc(C.chapter[i])}</p>`;
    if (D.kind === "compare") {
      const rs = all.filter((j) => C.phecode[j] === C.phecode[i]);
      html += table(["model a", "model b", "AUC a", "AUC b", "difference", "95% CI", "p", "q", "better"],
        rs.map((j) => [C.model_a[j], C.model_b[j], C.auc_a[j], C.auc_b[j], C.auc_diff[j],
                       `${fmt(C.diff_ci_low[j])} to ${fmt(C.diff_ci_high[j])}`, C.p_value[j] ?? "", C.q_value[j] ?? "", C.better[j] || ""]));
    } else {
      html += `<p>AUC ${fmt(C.auc[i])} [${fmt(C.auc_ci_low[i])}, ${fmt(C.auc_ci_high[i])}]; cases ${C.n_pos[i]}, controls ${C.n_neg[i]} (stays)`;
      if (has("p_value")) html += `; beyond ${esc(D.adjusted_for)}: OR per SD ${fmt(C.or_per_sd[i])} [${fmt(C.or_ci_low[i])}, ${fmt(C.or_ci_high[i])}], p ${fmt(C.p_value[i])}, q ${fmt(C.q_value[i])}, ${esc(C.method[i])}`;
      html += "</p>";
      if (has("note") && C.note[i]) html += `<p class="note">${esc(C.note[i])}</p>`;
    }
    html += `<div class="detail-plots"><div id="detail-roc"></div><div id="detail-dist"></div></div>`;
    const bands = D.age_bands;
    const counts = D.details.counts[k];
    html += "<h3>Stays by sex and age</h3>" + table(["sex", ...bands.map((b) => `${b}: cases / controls`)],
      ["F", "M"].map((s, si) => [s, ...bands.map((_, b) => `${counts[si * bands.length * 2 + 2 * b]} / ${counts[si * bands.length * 2 + 2 * b + 1]}`)]));
    if (D.coefficients && D.coefficients[i]) {
      html += `<h3>The adjusted model (${esc(C.method[i])}, persons ${C.n_pos_patients[i]} cases / ${C.n_neg_patients[i]} controls)</h3>` +
        table(["term", "coefficient (log odds)"], D.coefficient_names.map((n, c) => [n, D.coefficients[i][c] === null ? "not estimable (constant)" : D.coefficients[i][c]]));
    }
    detailBody.innerHTML = html;
    jobs.push(Plotly.newPlot("detail-roc", rocTraces(k), {
      title: { text: "ROC curve (pointwise 95% band)", font: { size: 13 } }, height: 340, width: 380,
      xaxis: { title: "false-positive rate", range: [0, 1] }, yaxis: { title: "true-positive rate", range: [0, 1.01] },
      margin: { l: 50, r: 10, t: 40, b: 45 }, legend: { x: 0.45, y: 0.05, font: { size: 9 } } }, config));
    const [lo, hi] = D.details.hist_edges[k];
    const nb = D.details.hist_cases[k].length, w = (hi - lo) / nb;
    const centres = [...Array(nb).keys()].map((b) => lo + (b + 0.5) * w);
    const norm = (xs) => { const s = xs.reduce((a, b) => a + b, 0) || 1; return xs.map((v) => v / s); };
    jobs.push(Plotly.newPlot("detail-dist", [
      { type: "bar", x: centres, y: norm(D.details.hist_controls[k]), name: "controls", opacity: 0.6, marker: { color: "#888" } },
      { type: "bar", x: centres, y: norm(D.details.hist_cases[k]), name: "cases", opacity: 0.6, marker: { color: "#c0392b" } }],
      { barmode: "overlay", title: { text: `Scores of cases and controls${D.kind === "compare" ? " (" + esc(D.models[0]) + ")" : ""}`, font: { size: 13 } },
        height: 340, width: 380, xaxis: { title: "logit of the score" }, yaxis: { title: "share of stays" },
        margin: { l: 50, r: 10, t: 40, b: 45 }, legend: { font: { size: 9 } } }, config));
    Promise.all(jobs).then(() => { body.dataset.detail = C.phecode[i]; });
  }

  tableRows.forEach((tr) => tr.addEventListener("click", () => openDetail(+tr.dataset.row)));

  // ---- wiring
  let timer = null;
  searchBox.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.search = searchBox.value.trim().toLowerCase(); apply(); }, 150);
  });
  for (const k of ["sig", "firth", "untested"]) {
    const box = document.getElementById("filter-" + k);
    if (box) box.addEventListener("change", () => { state[k] = box.checked; apply(); });
  }
  const aucBox = document.getElementById("filter-auc");
  if (aucBox) aucBox.addEventListener("input", () => { const v = parseFloat(aucBox.value); state.auc = isNaN(v) ? null : v; apply(); });

  function openWanted(wanted) {
    if (wanted === null) return;
    const i = (D.kind === "probe" ? C.task : C.phecode).indexOf(wanted);
    if (i >= 0) openDetail(i);
  }
  window.addEventListener("hashchange", () => { const wanted = readHash(); apply(); openWanted(wanted); });

  const wanted = readHash();
  const jobs = D.kind === "report" ? reportFigures() : D.kind === "compare" ? compareFigures() : probeFigures();
  Promise.all(jobs).then(() => {
    apply();
    body.dataset.rendered = String(plots.length);
    openWanted(wanted);
  }).catch((e) => { errors.push(String(e)); body.dataset.errors = errors.length; });
}
// the table comes after the explorer in the page: start once the whole document is parsed
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", explorer);
else explorer();
