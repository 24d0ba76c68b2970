// The explorer's shared part (see reports/explorer.py and reports/pages.py): the page's data and
// its spec (D.page), formatting, hover text from the spec's templates, the filters, and the
// address that holds the view. Figures (figures.js) and detail panels (detail.js) are looked up
// by the names the spec lists; main.js wires the page.
const Explorer = { figures: {}, details: {} };

Explorer.base = function (D) {
  "use strict";
  const C = D.columns, P = D.page;
  const N = C[Object.keys(C)[0]].length;
  const has = (k) => C[k] !== undefined;
  const value = (k, i) => (has(k) ? C[k][i] : null);
  const fmt = (v, d = 3) => (v === null || v === undefined) ? "" :
    (typeof v === "number" ? (v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential(2) : v.toFixed(d)) : String(v));
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  // "{column}" as it is (escaped), "{column:f}" as a number to three decimals
  function fill(template, i) {
    return template.replace(/\{(\w+)(:f)?\}/g, (_, k, f) => {
      const v = value(k, i);
      return f ? fmt(v) : (v === null || v === undefined ? "" : esc(v));
    });
  }
  const shown = (k, i) => { const v = value(k, i); return v !== null && v !== undefined && v !== ""; };
  const hoverText = (i) => P.hover.filter(([, when]) => !when || shown(when, i)).map(([t]) => fill(t, i)).join("");

  const state = { search: "", filters: {}, auc: null, detail: null };
  function matches(i) {
    if (state.search) {
      const text = P.search.filter(has).map((k) => C[k][i]).join(" ").toLowerCase();
      if (!text.includes(state.search)) return false;
    }
    for (const f of P.filters) {
      if (!state.filters[f.name]) continue;
      const v = value(f.column, i);
      if (f.equals !== null ? v !== f.equals : !(v !== null && v <= D.alpha)) return false;
    }
    if (state.auc !== null && P.auc.length) {
      const auc = Math.max(...P.auc.map((k) => C[k][i]));
      if (!(auc >= state.auc)) return false;
    }
    return true;
  }

  function writeHash() {
    const q = new URLSearchParams();
    if (state.search) q.set("search", state.search);
    for (const f of P.filters) if (state.filters[f.name]) q.set(f.name, "1");
    if (state.auc !== null) q.set("auc", state.auc);
    if (state.detail !== null) q.set("detail", C[P.key][state.detail]);
    history.replaceState(null, "", q.toString() ? "#" + q.toString() : location.pathname);
  }
  // the state in the address; returns the detail it names (a value of the key column), or null
  function readHash(searchBox) {
    const q = new URLSearchParams(location.hash.slice(1));
    state.search = (q.get("search") || "").toLowerCase();
    searchBox.value = state.search;
    for (const f of P.filters) {
      state.filters[f.name] = q.get(f.name) === "1";
      const box = document.getElementById("filter-" + f.name);
      if (box) box.checked = state.filters[f.name];
    }
    const auc = parseFloat(q.get("auc"));
    state.auc = isNaN(auc) ? null : auc;
    const aucBox = document.getElementById("filter-auc");
    if (aucBox && state.auc !== null) aucBox.value = state.auc;
    return q.get("detail");
  }

  return { D, C, P, N, all: [...Array(N).keys()], has, fmt, esc, fill, hoverText, state, matches, writeHash,
           readHash, plots: [], openDetail: null };
};
