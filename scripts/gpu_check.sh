#!/usr/bin/env bash
# GPU check: measure the official-size models (ViT-L / ViT-g encoders, the 300 M action-conditioned predictor, CEM
# planning at the paper's and the shipped setting, one `jepa train` and one `jepa pretrain` step) on the device
# this machine has, with random weights, and write ONE JSON: ${OUT:-.}/gpu_check.json (docs/GPU_CHECK.md).
# It needs no network: nothing is downloaded, every model is built from its preset.
#
# Usage, from anywhere (it runs from the repository root):
#   bash scripts/gpu_check.sh                 # the full check on CUDA (at most ~8 min: budget 400 s, timeout 470 s)
#   bash scripts/gpu_check.sh --smoke         # tiny models, about a minute on a CPU: checks the script itself
#   OUT=/some/dir bash scripts/gpu_check.sh   # where the JSON goes (the device machine sets OUT)
# Further arguments go to `python -m jepa_episodes.gpu_check` (--device, --budget-s, --sections, --encoders,
# --threads); the last --budget-s given wins. Python: .venv/bin/python when present, else python3 (PYTHON overrides).
# The JSON is rewritten after every section, so a run cut short by the timeout still leaves what it measured.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -n "${PYTHON:-}" ]]; then
  PY="$PYTHON"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then
  PY="$ROOT/.venv/bin/python"
else
  PY="python3"
fi
DEST="${OUT:-.}"
mkdir -p "$DEST"
JSON="$DEST/gpu_check.json"
export HF_HUB_OFFLINE=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

rc=0
timeout 470 "$PY" -m jepa_episodes.gpu_check --out "$JSON" --budget-s 400 "$@" || rc=$?
if [[ -f "$JSON" ]]; then
  echo "== summary ($JSON)"
  "$PY" -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))["summary"]))' "$JSON"
else
  echo "no JSON was written ($JSON)" >&2
fi
if [[ $rc -eq 124 ]]; then
  echo "timed out after 470 s: the JSON holds the sections finished before (finished: false)" >&2
fi
exit "$rc"
