// The explorer's figures, by the names that a page spec lists (reports/pages.py). Each builder
// takes the shared context (base.js) and returns the promises of the plots it adds.
(function () {
  "use strict";
  const config = { displaylogo: false, responsive: true, toImageButtonOptions: { format: "svg" } };
  const neglog = (p) => (p === null || p <= 0) ? null : -Math.log10(Math.max(p, 1e-300));
  Explorer.plotConfig = config;

  function byChapter(x, rows, xOf, yOf, extra = () => ({})) {
    const traces = [], traceRows = [];
    for (const ch of x.D.chapters) {
      const rs = rows.filter((i) => x.C.chapter[i] === ch);
      if (!rs.length) continue;
      traces.push(Object.assign({
        type: "scatter", mode: "markers", name: ch, x: rs.map(xOf), y: rs.map(yOf), customdata: rs,
        text: rs.map(x.hoverText), hoverinfo: "text", marker: { color: x.D.colours[ch], size: 6 },
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
  // the Bonferroni and FDR lines, computed with the table (reports/figures.py significance_lines)
  const significance = (x) => x.D.significance.map((l) => hline(neglog(l.p), l.colour, l.label, l.dash));

  function addPlot(x, title, traces, traceRows, layout, size = 6) {
    const div = document.createElement("div");
    div.className = "plot";
    document.getElementById("plots").appendChild(div);
    const lines = layout.lines || [];
    delete layout.lines;
    const full = Object.assign({
      title: { text: title, font: { size: 14 } }, hovermode: "closest", height: 420,
      margin: { l: 60, r: 20, t: 40, b: 60 }, legend: { font: { size: 9 } },
      shapes: lines.map((l) => l.shape), annotations: lines.map((l) => l.annotation),
    }, layout);
    const done = Plotly.newPlot(div, traces, full, config).then(() => {
      div.on("plotly_click", (ev) => { if (ev.points.length) x.openDetail(ev.points[0].customdata); });
    });
    x.plots.push({ div, rows: traceRows, size });
    return done;
  }

  function chapterAxis(x) {
    const ticks = x.D.chapters.map((ch) => {
      const rs = x.all.filter((i) => x.C.chapter[i] === ch);
      return rs.length ? [ch, rs[Math.floor(rs.length / 2)]] : null;
    }).filter(Boolean);
    return { tickvals: ticks.map((t) => t[1]), ticktext: ticks.map((t) => t[0]), tickangle: -45, tickfont: { size: 9 } };
  }
  const tested = (x) => (x.has("p_value") ? x.all.filter((i) => x.C.p_value[i] !== null) : []);
  const withOddsRatio = (x) => tested(x).filter((i) => x.C.or_per_sd[i] !== null);

  Explorer.figures.auc_by_phecode = (x) => {
    const [tr, rows] = byChapter(x, x.all, (i) => i, (i) => x.C.auc[i]);
    return [addPlot(x, "AUC by phecode (held-out; click a point for its detail)", tr, rows, {
      xaxis: chapterAxis(x), yaxis: { title: "AUC" },
      lines: x.D.thresholds.map((t) => hline(t, "#555", String(t), "dot")) })];
  };

  Explorer.figures.association = (x) => {
    const rs = tested(x);
    if (!rs.length) return [];
    const [tr, rows] = byChapter(x, rs, (i) => i, (i) => neglog(x.C.p_value[i]));
    return [addPlot(x, `Association beyond ${x.D.adjusted_for} (-log10 p)`, tr, rows, {
      xaxis: chapterAxis(x), yaxis: { title: "-log10 p" }, lines: significance(x) })];
  };

  Explorer.figures.volcano = (x) => {
    if (!tested(x).length) return [];
    const [tr, rows] = byChapter(x, withOddsRatio(x), (i) => Math.log(x.C.or_per_sd[i]), (i) => neglog(x.C.p_value[i]));
    return [addPlot(x, "Volcano: effect against evidence", tr, rows, {
      xaxis: { title: "log odds ratio per SD of the score", zeroline: true }, yaxis: { title: "-log10 p" },
      lines: significance(x) })];
  };

  Explorer.figures.forest = (x) => {
    if (!tested(x).length) return [];
    const C = x.C;
    const top = withOddsRatio(x).filter((i) => C.or_ci_low[i] !== null)
      .sort((a, b) => C.p_value[a] - C.p_value[b]).slice(0, 30).reverse();
    const forest = [{
      type: "scatter", mode: "markers", x: top.map((i) => C.or_per_sd[i]), customdata: top,
      y: top.map((i) => `${C.phecode[i]} ${String(C.description[i]).slice(0, 40)}`),
      error_x: { type: "data", symmetric: false, array: top.map((i) => C.or_ci_high[i] - C.or_per_sd[i]),
                 arrayminus: top.map((i) => C.or_per_sd[i] - C.or_ci_low[i]), thickness: 1 },
      marker: { color: top.map((i) => x.D.colours[C.chapter[i]]), size: 7 }, text: top.map(x.hoverText),
      hoverinfo: "text", showlegend: false }];
    return [addPlot(x, "Forest: the strongest associations (odds ratio per SD, 95% CI)", forest, [top], {
      xaxis: { title: "odds ratio per SD of the score", type: "log" }, height: Math.max(420, 16 * top.length + 100),
      yaxis: { automargin: true, tickfont: { size: 9 } },
      shapes: [{ type: "line", x0: 1, x1: 1, yref: "paper", y0: 0, y1: 1, line: { color: "#888", dash: "dot" } }] }, 7)];
  };

  // per pair of models: one AUC against the other, and the difference with its interval
  Explorer.figures.pairs = (x) => {
    const C = x.C, jobs = [];
    for (const [a, b] of x.D.pairs) {
      const rs = x.all.filter((i) => C.model_a[i] === a && C.model_b[i] === b);
      let [tr, rows] = byChapter(x, rs, (i) => C.auc_b[i], (i) => C.auc_a[i]);
      jobs.push(addPlot(x, `AUC: ${a} against ${b} (click a point for both ROC curves)`, tr, rows, {
        xaxis: { title: `AUC ${b}` }, yaxis: { title: `AUC ${a}`, scaleanchor: "x" },
        shapes: [{ type: "line", x0: 0.3, y0: 0.3, x1: 1, y1: 1, line: { color: "#888", dash: "dot" } }] }));
      [tr, rows] = byChapter(x, rs, (i) => i, (i) => C.auc_diff[i], (ts) => ({
        error_y: { type: "data", symmetric: false, array: ts.map((i) => C.diff_ci_high[i] - C.auc_diff[i]),
                   arrayminus: ts.map((i) => C.auc_diff[i] - C.diff_ci_low[i]), thickness: 0.6, width: 0 } }));
      jobs.push(addPlot(x, `AUC difference ${a} - ${b} (95% CI)`, tr, rows, {
        xaxis: { showticklabels: false, title: "phecodes by chapter" }, yaxis: { title: "AUC difference" },
        lines: [hline(0, "#555", "")] }));
    }
    return jobs;
  };

  // per main metric: each task's value by encoder, side by side, with its interval
  Explorer.figures.metric_by_task = (x) => {
    const C = x.C, jobs = [];
    for (const metric of x.D.main_metrics) {
      const rs = x.all.filter((i) => C.metric[i] === metric && C.value[i] !== null);
      if (!rs.length) continue;
      const traces = [], traceRows = [];
      for (const enc of x.D.encoders) {
        const es = rs.filter((i) => C.encoder[i] === enc);
        if (!es.length) continue;
        traces.push({
          type: "scatter", mode: "markers", name: enc, x: es.map((i) => C.value[i]), y: es.map((i) => C.task[i]),
          offsetgroup: enc, orientation: "h",
          customdata: es, text: es.map(x.hoverText), hoverinfo: "text", marker: { size: 9 },
          error_x: { type: "data", symmetric: false, array: es.map((i) => (C.ci_high[i] ?? C.value[i]) - C.value[i]),
                     arrayminus: es.map((i) => C.value[i] - (C.ci_low[i] ?? C.value[i])), thickness: 1 } });
        traceRows.push(es);
      }
      jobs.push(addPlot(x, `${metric} by task and encoder (95% CI; click for the task)`, traces, traceRows, {
        xaxis: { title: metric }, yaxis: { automargin: true, type: "category" }, scattermode: "group",
        height: Math.max(300, 60 * new Set(rs.map((i) => C.task[i])).size + 120) }, 9));
    }
    return jobs;
  };
})();
