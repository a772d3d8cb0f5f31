#!/usr/bin/env bash
# Rebuild the default world model shipped in jepa_world_model/shipped_models/sim_reach/ (load_encoder("default") /
# load_predictor("default")) with the project's own pipeline, offline:
#   1. record random-play episodes of the built-in MuJoCo arm (jepa_episodes.sim_recording.record_sim_episodes):
#      1200 episodes of 20 steps, random end-effector displacements of up to 4 cm (two sets), 1.5 cm and 0.5 cm
#      per axis, so that the model is accurate for large moves and for the fine ones near a goal;
#   2. train the action-conditioned predictor (`python -m jepa_world_model.training.train`, width 96, depth 2) on
#      the features of the frozen encoder: the "tiny" preset randomly initialised with seed 0, 16 px patches (16
#      tokens of 64 features for a 64 px image), named by preset and overrides, not by a file. It runs in WORK_DIR
#      with relative paths, so config.json's metadata names the data "data/large", ... and no path of this machine;
#   3. copy the result into the package and check it closed-loop (jepa eval --offline, the whole budget: --tolerance 1e-9).
# Usage: scripts/make_default_model.sh [WORK_DIR]          (default WORK_DIR: artifacts/sim_reach_build)
# Environment: PYTHON (default .venv/bin/python), THREADS (torch threads, default 1: the shipped model was trained
# with 1; other counts give a numerically different but equivalent model), SKIP_EVAL=1 skips step 3's check.
# Recorded episodes already in WORK_DIR/data are reused. About 25 min of recording and 30-40 min of training on
# one free CPU core.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
WORK="$(mkdir -p "${1:-$ROOT/artifacts/sim_reach_build}" && cd "${1:-$ROOT/artifacts/sim_reach_build}" && pwd)"
DEST="$ROOT/jepa_world_model/shipped_models/sim_reach"
THREADS="${THREADS:-1}"
export MUJOCO_GL="${MUJOCO_GL:-osmesa}" OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
cd "$ROOT"
start=$(date +%s)

echo "== 1/3 recording random-play episodes into $WORK/data"
"$PY" - "$WORK/data" <<'EOF'
import sys
from pathlib import Path
from jepa_episodes.sim_recording import SimRecordingConfig, record_sim_episodes
out = Path(sys.argv[1])
for name, episodes, seed, max_step in (("large", 300, 1, 0.04), ("large2", 300, 4, 0.04), ("small", 300, 2, 0.015),
                                       ("tiny", 300, 3, 0.005)):
    if len(list((out / name).glob("episode_*.mcap"))) != episodes:
        record_sim_episodes(out / name, episodes, steps=20, seed=seed, config=SimRecordingConfig(max_step=max_step))
EOF

echo "== 2/3 training the predictor"
rm -rf "$WORK/train"
(cd "$WORK" && "$PY" -m jepa_world_model.training.train data/large data/large2 data/small data/tiny --out train \
    --encoder tiny --encoder-override patch_size=16 --encoder-override seed=0 --predictor tiny --steps 14000 \
    --batch-size 32 --lr 1e-3 --start-lr 1e-4 --warmup 0.03 --decay 0.3 --clip-len 2 --rollout-steps 1 \
    --cache-dir feature_cache --device cpu --checkpoint-every 2000 --no-progress)

echo "== 3/3 installing into $DEST"
mkdir -p "$DEST"
cp "$WORK/train/model.safetensors" "$WORK/train/config.json" "$DEST/"
if [ "${SKIP_EVAL:-0}" != "1" ]; then
    "$PY" -m jepa_ros.cli eval --offline --task reach --episodes 20 --seed 0 --threads 1 --tolerance 1e-9 \
        --json "$WORK/offline_reach.json"
fi
echo "done in $(( $(date +%s) - start )) s: $DEST ($(du -sh "$DEST" | cut -f1))"
