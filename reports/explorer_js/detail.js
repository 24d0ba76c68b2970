// The explorer's detail panels, by the names that a page spec lists (reports/pages.py). Each takes
// the shared context (base.js), the row i and its detail index k, and returns its HTML and, where
// it holds figures, a function that draws them once the HTML is in place.
(function () {
  "use strict";
  const part = (html, draw = null) => ({ html, draw });

  function table(x, head, rows) {
    return `<table class="detail-table"><tr>${head.map((h) => `<th>${x.esc(h)}</th>`).join("")}</tr>` +
      rows.map((r) => `<tr>${r.map((v) => `<td>${typeof v === "number" ? x.fmt(v) : x.esc(v)}</td>`).join("")}</tr>`).join("") +
      "</table>";
  }

  Explorer.details.heading = (x, i) =>
    part(`<h2>${x.esc(x.C.phecode[i])} ${x.esc(x.C.description[i])}</h2><p>${x.esc(x.C.chapter[i])}</p>`);

  Explorer.details.summary = (x, i) => {
    const C = x.C, fmt = x.fmt;
    let html = `<p>AUC ${fmt(C.auc[i])} [${fmt(C.auc_ci_low[i])}, ${fmt(C.auc_ci_high[i])}]; cases ${C.n_pos[i]}, controls ${C.n_neg[i]} (stays)`;
    if (x.has("p_value")) {
      html += `; beyond ${x.esc(x.D.adjusted_for)}: OR per SD ${fmt(C.or_per_sd[i])} [${fmt(C.or_ci_low[i])}, ` +
        `${fmt(C.or_ci_high[i])}], p ${fmt(C.p_value[i])}, q ${fmt(C.q_value[i])}, ${x.esc(C.method[i])}`;
    }
    return part(html + "</p>");
  };

  Explorer.details.note = (x, i) => part(x.has("note") && x.C.note[i] ? `<p class="note">${x.esc(x.C.note[i])}</p>` : "");

  Explorer.details.pair_rows = (x, i) => {
    const C = x.C;
    const rs = x.all.filter((j) => C.phecode[j] === C.phecode[i]);
    return part(table(x, ["model a", "model b", "AUC a", "AUC b", "difference", "95% CI", "p", "q", "better"],
      rs.map((j) => [C.model_a[j], C.model_b[j], C.auc_a[j], C.auc_b[j], C.auc_diff[j],
                     `${x.fmt(C.diff_ci_low[j])} to ${x.fmt(C.diff_ci_high[j])}`, C.p_value[j] ?? "", C.q_value[j] ?? "",
                     C.better[j] || ""])));
  };

  Explorer.details.task_rows = (x, i) => {
    const C = x.C, task = C.task[i];
    const rs = x.all.filter((j) => C.task[j] === task);
    return part(`<h2>${x.esc(task)}</h2><p>${x.esc(C.kind[i])} task</p>` +
      table(x, ["encoder", "metric", "value", "95% CI", "n test", "hyperparameters"],
            rs.map((j) => [C.encoder[j], C.metric[j], C.value[j] ?? "",
                           C.ci_low[j] === null ? "" : `${x.fmt(C.ci_low[j])}-${x.fmt(C.ci_high[j])}`,
                           C.n_test[j] ?? "", C.hyperparameters ? C.hyperparameters[j] : ""])));
  };

  function rocTraces(D, k) {
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

  // every model's ROC curve with its band, and the first model's scores of cases and controls
  Explorer.details.curves = (x, i, k) => part(
    `<div class="detail-plots"><div id="detail-roc"></div><div id="detail-dist"></div></div>`, () => {
      const D = x.D, config = Explorer.plotConfig;
      const roc = Plotly.newPlot("detail-roc", rocTraces(D, k), {
        title: { text: "ROC curve (pointwise 95% band)", font: { size: 13 } }, height: 340, width: 380,
        xaxis: { title: "false-positive rate", range: [0, 1] }, yaxis: { title: "true-positive rate", range: [0, 1.01] },
        margin: { l: 50, r: 10, t: 40, b: 45 }, legend: { x: 0.45, y: 0.05, font: { size: 9 } } }, config);
      const [lo, hi] = D.details.hist_edges[k];
      const nb = D.details.hist_cases[k].length, w = (hi - lo) / nb;
      const centres = [...Array(nb).keys()].map((b) => lo + (b + 0.5) * w);
      const norm = (xs) => { const s = xs.reduce((a, b) => a + b, 0) || 1; return xs.map((v) => v / s); };
      const whose = D.models.length > 1 ? ` (${x.esc(D.models[0])})` : "";
      const dist = Plotly.newPlot("detail-dist", [
        { type: "bar", x: centres, y: norm(D.details.hist_controls[k]), name: "controls", opacity: 0.6, marker: { color: "#888" } },
        { type: "bar", x: centres, y: norm(D.details.hist_cases[k]), name: "cases", opacity: 0.6, marker: { color: "#c0392b" } }],
        { barmode: "overlay", title: { text: `Scores of cases and controls${whose}`, font: { size: 13 } },
          height: 340, width: 380, xaxis: { title: "logit of the score" }, yaxis: { title: "share of stays" },
          margin: { l: 50, r: 10, t: 40, b: 45 }, legend: { font: { size: 9 } } }, config);
      return [roc, dist];
    });

  // counts[k][sex][band] = [cases, controls], as reports/explorer.py phenotype_details ships them
  Explorer.details.counts = (x, i, k) => {
    const D = x.D, bands = D.age_bands, counts = D.details.counts[k];
    return part("<h3>Stays by sex and age</h3>" + table(x, ["sex", ...bands.map((b) => `${b}: cases / controls`)],
      D.sexes.map((s, si) => [s, ...bands.map((_, b) => `${counts[si][b][0]} / ${counts[si][b][1]}`)])));
  };

  Explorer.details.coefficients = (x, i) => {
    const D = x.D, C = x.C;
    if (!D.coefficients || !D.coefficients[i]) return part("");
    return part(`<h3>The adjusted model (${x.esc(C.method[i])}, persons ${C.n_pos_patients[i]} cases / ${C.n_neg_patients[i]} controls)</h3>` +
      table(x, ["term", "coefficient (log odds)"],
            D.coefficient_names.map((n, c) => [n, D.coefficients[i][c] === null ? "not estimable (constant)" : D.coefficients[i][c]])));
  };
})();
