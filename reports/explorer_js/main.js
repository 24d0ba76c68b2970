// The explorer's wiring: the page's figures and detail panels as its spec names them, the search
// box, the filters, the table's rows and the address.
function explorer() {
  "use strict";
  const body = document.body;
  const errors = [];
  window.addEventListener("error", (e) => { errors.push(String(e.message)); body.dataset.errors = errors.length; });
  body.dataset.errors = "0";
  const D = JSON.parse(document.getElementById("explorer-data").textContent);
  const x = Explorer.base(D);
  const { C, P, N, state } = x;
  const searchBox = document.getElementById("search");
  const tableRows = Array.from(document.querySelectorAll("table.sortable tbody tr"));

  function apply() {
    const hit = new Array(N);
    let shown = 0;
    for (let i = 0; i < N; i++) { hit[i] = x.matches(i); shown += hit[i]; }
    tableRows.forEach((tr) => { tr.hidden = !hit[+tr.dataset.row]; });
    document.getElementById("shown").textContent = `${shown} of ${N} ${P.noun} shown`;
    const active = shown < N;
    for (const p of x.plots) {
      const opacity = p.rows.map((rows) => rows.map((i) => (!active || hit[i]) ? 0.85 : 0.08));
      const size = p.rows.map((rows) => rows.map((i) => (active && hit[i]) ? p.size * 1.6 : p.size));
      Plotly.restyle(p.div, { "marker.opacity": opacity, "marker.size": size }, p.rows.map((_, t) => t));
    }
    x.writeHash();
    body.dataset.shown = shown;
  }

  const detail = document.getElementById("detail");
  const detailBody = document.getElementById("detail-body");
  function closeDetail() { detail.hidden = true; state.detail = null; delete body.dataset.detail; x.writeHash(); }
  document.getElementById("detail-close").addEventListener("click", closeDetail);
  detail.addEventListener("click", (e) => { if (e.target === detail) closeDetail(); });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && !detail.hidden) closeDetail(); });

  x.openDetail = function (i) {
    if (i === null || i === undefined) return;
    state.detail = i;
    x.writeHash();
    detail.hidden = false;
    const k = D.detail_index ? D.detail_index[i] : i;
    const parts = P.detail.map((name) => Explorer.details[name](x, i, k));
    detailBody.innerHTML = parts.map((p) => p.html).join("");
    const jobs = parts.filter((p) => p.draw).flatMap((p) => p.draw());
    Promise.all(jobs).then(() => { body.dataset.detail = C[P.key][i]; });
  };

  tableRows.forEach((tr) => tr.addEventListener("click", () => x.openDetail(+tr.dataset.row)));
  let timer = null;
  searchBox.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.search = searchBox.value.trim().toLowerCase(); apply(); }, 150);
  });
  for (const f of P.filters) {
    const box = document.getElementById("filter-" + f.name);
    if (box) box.addEventListener("change", () => { state.filters[f.name] = box.checked; apply(); });
  }
  const aucBox = document.getElementById("filter-auc");
  if (aucBox) aucBox.addEventListener("input", () => { const v = parseFloat(aucBox.value); state.auc = isNaN(v) ? null : v; apply(); });

  function openWanted(wanted) {
    if (wanted === null) return;
    const i = C[P.key].indexOf(wanted);
    if (i >= 0) x.openDetail(i);
  }
  window.addEventListener("hashchange", () => { const wanted = x.readHash(searchBox); apply(); openWanted(wanted); });

  const wanted = x.readHash(searchBox);
  const jobs = P.figures.flatMap((name) => Explorer.figures[name](x));
  Promise.all(jobs).then(() => {
    apply();
    body.dataset.rendered = String(x.plots.length);
    openWanted(wanted);
  }).catch((e) => { errors.push(String(e)); body.dataset.errors = errors.length; });
}
// the table comes after the explorer in the page: start once the whole document is parsed
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", explorer);
else explorer();
