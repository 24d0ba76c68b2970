#!/usr/bin/env bash
# The device checks, in one go, for a lent NVIDIA GPU (at most about 8 minutes on one H100/H200):
#   1. the tests marked `gpu` (resume on fewer devices, exact resume with --deterministic, float32
#      losses and heads under autocast, SyncBatchNorm on two processes, bf16 predictions recorded);
#   2. training throughput of AnyPPG's encoder, pretraining and fine-tuning, in fp32 eager, bf16 and
#      bf16 + torch.compile (bench/gpu_throughput.py: windows/s, peak memory, recompiles and graph
#      breaks), with TORCH_LOGS' recompile and graph-break lines kept in the log;
#   3. a two-process pretraining run when two GPUs are visible;
# then the figures, with the device's name, into bench/gpu_results.json and bench/RESULTS.md.
#
#   bash bench/gpu_check.sh              # on the GPU machine, from the repository root
#   bash bench/gpu_check.sh --dry-run    # tiny sizes on whatever device there is (the test suite's check)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DRY=0
OUT=bench/gpu_results.json
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT=$2; shift ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
LOG=$(mktemp -d)/gpu_check
mkdir -p "$(dirname "$LOG")"
start=$(date +%s)

tests="skipped (dry run)"
if [ "$DRY" = 0 ]; then
  if timeout 240 "$PY" -m pytest -m gpu -q -p no:cacheprovider tests > "$LOG.tests" 2>&1; then
    tests="passed: $(tail -1 "$LOG.tests")"
  else
    tests="FAILED: $(tail -1 "$LOG.tests")"
  fi
fi

THROUGHPUT_ARGS=(--out "$LOG.throughput.json")
[ "$DRY" = 1 ] && THROUGHPUT_ARGS+=(--dry-run)
TORCH_LOGS="recompiles,graph_breaks" timeout 360 "$PY" bench/gpu_throughput.py "${THROUGHPUT_ARGS[@]}" \
  > "$LOG.throughput" 2> "$LOG.torch_logs"

two="not run (fewer than two GPUs visible)"
gpus=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "$DRY" = 0 ] && [ "$gpus" -ge 2 ]; then
  if timeout 120 "$PY" -m pytest -q -p no:cacheprovider tests/encoder/test_gpu_readiness.py -m gpu \
      -k sync_batch_norm > "$LOG.two" 2>&1; then two="passed"; else two="FAILED"; fi
fi

"$PY" - "$LOG.throughput.json" "$OUT" "$tests" "$two" "$(( $(date +%s) - start ))" "$LOG.torch_logs" <<'EOF'
import json, sys
from pathlib import Path
figures = json.loads(Path(sys.argv[1]).read_text())
logs = Path(sys.argv[6]).read_text().splitlines()
figures |= {"gpu_tests": sys.argv[3], "two_processes": sys.argv[4], "seconds": int(sys.argv[5]),
            "torch_logs_recompile_lines": sum("Recompiling" in line for line in logs),
            "torch_logs_graph_break_lines": sum("Graph break" in line for line in logs),
            "command": "bash bench/gpu_check.sh"}
Path(sys.argv[2]).write_text(json.dumps(figures, indent=1))
print(json.dumps(figures))
EOF
if [ "$DRY" = 0 ]; then
  "$PY" bench/write_results.py --rewrite > /dev/null
fi
echo "gpu_check: figures in $OUT (log in $LOG.*)"
