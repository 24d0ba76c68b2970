#!/usr/bin/env bash
# Re-measure every benchmark and rewrite bench/RESULTS.md. Run from the repository root:
#   bash bench/run_all.sh            # all but the hour-long replicate-study FDR benchmark
#   bash bench/run_all.sh fdr        # that one, and fdr_hard (the harder simulator)
#   bash bench/run_all.sh --record fdr_hard bench/out/fdr-hard.json   # record a run's JSON line
#   bash bench/run_all.sh loader auc_delong   # some
#   bash bench/run_all.sh --rewrite  # RESULTS.md again from results.json, measuring nothing
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" bench/write_results.py "$@"
