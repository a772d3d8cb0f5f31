#!/usr/bin/env bash
# Rebuild the push world model shipped in jepa_world_model/shipped_models/sim_push/ (load_encoder("push_default") /
# load_predictor("push_default")) with the project's own pipeline, offline:
#   1. record scripted pushes of the puck in the built-in MuJoCo sim (record_sim_episodes, task "push": random
#      push tasks from jepa_sim.push played by its noisy ScriptedPusher, table camera, /object_pose recorded too):
#      600 episodes of 30 steps of up to 2 cm per axis and 300 of up to 1 cm (finer moves near contact);
#   2. train the action-conditioned predictor (`python -m jepa_world_model.training.train`, width 96, depth 2) on
#      the features of the frozen encoder ENCODER (default: "default", the shipped reach model's encoder: the
#      "tiny" preset randomly initialised with seed 0, 16 px patches, 16 tokens of 64 features for a 64 px image;
#      the predictor's token grid follows the encoder's). 8 px patches (64 tokens) planned 4-7x slower (with the
#      earlier straight-down camera an 8 px model trained the same way had a held-out rollout/no-motion ratio of
#      0.74 against 0.42 and pushed 0/20 on seed 0). It runs in WORK_DIR with relative paths, so config.json's
#      metadata names the data "data/push", "data/fine" and the encoder by name, no path of this machine;
#   3. copy the result into the package and check it closed-loop (jepa eval --offline --task push).
# Usage: scripts/make_push_model.sh [WORK_DIR]            (default WORK_DIR: artifacts/sim_push_build)
# Environment: PYTHON (default .venv/bin/python), THREADS (torch threads, default 1), STEPS (training steps,
# default 8000), ENCODER (an encoder to use instead: a shipped model name such as pretrained_sim, a preset or a
# checkpoint directory, e.g. one made by `jepa pretrain`), SKIP_EVAL=1 skips step 3's check. Recorded episodes
# already in WORK_DIR/data are reused.
# Measured 2026-12-01 on the project's 2 cores: recording the two sets at the same time took about 3 min,
# training 8000 steps 555 s on one core (feature caching included).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
WORK="$(mkdir -p "${1:-$ROOT/artifacts/sim_push_build}" && cd "${1:-$ROOT/artifacts/sim_push_build}" && pwd)"
DEST="$ROOT/jepa_world_model/shipped_models/sim_push"
THREADS="${THREADS:-1}"
STEPS="${STEPS:-8000}"
ENCODER="${ENCODER:-default}"
if [ -e "$ENCODER" ]; then ENCODER="$(realpath "$ENCODER")"; fi   # a path: absolute (training runs in WORK_DIR)
export MUJOCO_GL="${MUJOCO_GL:-osmesa}" OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
cd "$ROOT"
start=$(date +%s)

echo "== 1/3 recording scripted pushes into $WORK/data"
"$PY" - "$WORK/data" <<'EOF'
import sys
from pathlib import Path
from jepa_episodes.sim_recording import SimRecordingConfig, record_sim_episodes
out = Path(sys.argv[1])
for name, episodes, seed, max_step, noise, random_prob in (("push", 600, 11, 0.02, 0.003, 0.15),
                                                           ("fine", 300, 12, 0.01, 0.002, 0.3)):
    if len(list((out / name).glob("episode_*.mcap"))) != episodes:
        config = SimRecordingConfig(task="push", max_step=max_step, push_noise=noise, random_prob=random_prob)
        record_sim_episodes(out / name, episodes, steps=30, seed=seed, config=config)
EOF

echo "== 2/3 training the predictor"
rm -rf "$WORK/train"
(cd "$WORK" && "$PY" -m jepa_world_model.training.train data/push data/fine --out train --encoder "$ENCODER" \
    --predictor tiny --steps "$STEPS" --batch-size 32 --lr 1e-3 --start-lr 1e-4 --warmup 0.03 --decay 0.3 \
    --clip-len 3 --rollout-steps 2 --cache-dir feature_cache --device cpu --checkpoint-every 1000 --no-progress)

echo "== 3/3 installing into $DEST"
mkdir -p "$DEST"
cp "$WORK/train/model.safetensors" "$WORK/train/config.json" "$DEST/"
if [ "${SKIP_EVAL:-0}" != "1" ]; then
    "$PY" -m jepa_ros.cli eval --offline --task push --episodes 20 --seed 0 --threads 1 --json "$WORK/offline_push.json"
fi
echo "done in $(( $(date +%s) - start )) s: $DEST ($(du -sh "$DEST" | cut -f1))"
