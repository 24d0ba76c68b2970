#!/usr/bin/env bash
# Re-measure every benchmark and rewrite bench/RESULTS.md. Run from the repository root:
#   bash bench/run_all.sh            # all but the hour-long replicate-study FDR benchmark
#   bash bench/run_all.sh fdr        # that one (issue 6), and fdr_hard (issue 12's harder simulator)
#   bash bench/run_all.sh --record fdr_hard bench/out/fdr-hard.json   # record a run's JSON line
#   bash bench/run_all.sh loader auc_delong   # some
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" bench/write_results.py "$@"
