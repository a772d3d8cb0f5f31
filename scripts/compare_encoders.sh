#!/usr/bin/env bash
# Three encoders for the push task, side by side on the same recordings, predictor recipe, planner and tasks:
#   random    the frozen random encoder of the shipped push model ("default": 16 tokens of 64 features), a predictor
#   pretrained  the shipped `jepa pretrain` encoder ("pretrained_sim", 8 px patches: 64 tokens), a predictor
#   joint     `jepa train --recipe joint`: a pooled encoder and the predictor trained together from pixels
#   joint_sigreg  the same with the normality term on (--sigreg-weight 1)
# then `jepa energy-weights` of each encoder and `jepa eval --offline` on push with two goal images, push from one
# goal image ("from anywhere") and push_from_behind (one goal image, the end effector behind the puck), 10 episodes
# of seed 0. Tolerances follow each model's calibration (jepa_episodes/tasks/push.py).
# Usage: scripts/compare_encoders.sh [WORK_DIR]   (default artifacts/compare_encoders; STEPS, JOINT_STEPS)
# Measured run and results: docs/RESULTS.md, "What the planning energy weighs (2026-12-07)".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-.venv/bin/python}"
W="${1:-artifacts/compare_encoders}"
STEPS="${STEPS:-1200}"
JOINT_STEPS="${JOINT_STEPS:-3000}"
export MUJOCO_GL="${MUJOCO_GL:-osmesa}"
mkdir -p "$W"

echo "== recording 300 scripted pushes into $W/data (the push model's first recording set)"
"$PY" - "$W/data" <<'EOF'
import sys
from pathlib import Path
from jepa_episodes.sim_recording import SimRecordingConfig, record_sim_episodes
out = Path(sys.argv[1])
if len(list(out.glob("episode_*.mcap"))) != 300:
    config = SimRecordingConfig(task="push", max_step=0.02, push_noise=0.003, random_prob=0.15)
    record_sim_episodes(out, 300, steps=30, seed=11, config=config)
EOF

train_frozen() {  # name encoder
  "$PY" -m jepa_world_model.training.train "$W/data" --out "$W/$1" --encoder "$2" --predictor tiny --steps "$STEPS" \
      --batch-size 32 --lr 1e-3 --start-lr 1e-4 --warmup 0.03 --decay 0.3 --clip-len 3 --rollout-steps 2 \
      --cache-dir "$W/feature_cache" --device cpu --checkpoint-every 400 --no-progress > "$W/$1.log" 2>&1
}
echo "== training"
[ -f "$W/random/model.safetensors" ] || train_frozen random default
[ -f "$W/pretrained/model.safetensors" ] || train_frozen pretrained pretrained_sim
train_joint() {  # name [extra options]
  local name="$1"; shift
  "$PY" -m jepa_world_model.training.train "$W/data" --out "$W/$name" --recipe joint --steps "$JOINT_STEPS" \
      --torch-threads 2 --checkpoint-every 1000 --no-progress "$@" > "$W/$name.log" 2>&1
}
[ -f "$W/joint/model.safetensors" ] || train_joint joint
[ -f "$W/joint_sigreg/model.safetensors" ] || train_joint joint_sigreg --sigreg-weight 1

for name in random pretrained joint joint_sigreg; do
  echo "== $name"
  "$PY" -m jepa_ros.cli energy-weights --encoder "$W/$name" --task push --json "$W/energy_weights_$name.json"
  for spec in "push 2" "push 1" "push_from_behind 1"; do
    set -- $spec
    "$PY" -m jepa_ros.cli eval --offline --task "$1" --goal-images "$2" --predictor "$W/$name" --episodes 10 --seed 0 \
        --json "$W/eval_${name}_$1_$2.json" | tail -1
  done
done
