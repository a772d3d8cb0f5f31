#!/usr/bin/env bash
# Rebuild the push world model shipped in jepa_world_model/shipped_models/sim_push/ (load_encoder("push_default") /
# load_predictor("push_default")) with the project's own pipeline, offline:
#   1. record scripted pushes of the puck in the built-in MuJoCo sim (record_sim_episodes, task "push": random
#      push tasks from jepa_sim.push played by its noisy ScriptedPusher, table camera, /object_pose recorded too):
#      600 episodes of 30 steps of up to 2 cm per axis and 300 of up to 1 cm (finer moves near contact);
#   2. write the frozen encoder (ENCODER, default: the "tiny" preset randomly initialised with seed 0, 16 px
#      patches: 16 tokens of 64 features for a 64 px image) and the predictor architecture (width 96, depth 2,
#      4x4 token grid) as checkpoint directories. 8 px patches (64 tokens) planned 4-7x slower (with the earlier
#      straight-down camera an 8 px model trained the same way had a held-out rollout/no-motion ratio of 0.74
#      against 0.42 and pushed 0/20 on seed 0);
#   3. train the action-conditioned predictor on the encoder's features (`python -m jepa_world_model.training.train`);
#   4. copy the result into the package and check it closed-loop (jepa eval --offline --task push).
# Usage: scripts/make_push_model.sh [WORK_DIR]            (default WORK_DIR: artifacts/sim_push_build)
# Environment: PYTHON (default .venv/bin/python), THREADS (torch threads, default 1), STEPS (training steps,
# default 8000), ENCODER (an encoder checkpoint directory to use instead of the random tiny one, e.g. one made by
# `jepa pretrain`; it must make 64 px images into a token grid the predictor's GRID matches, GRID default 4),
# SKIP_EVAL=1 skips step 4's check. Recorded episodes already in WORK_DIR/data are reused.
# Measured 2026-12-01 on the project's 2 cores: recording the two sets at the same time took about 3 min,
# training 8000 steps 555 s on one core (feature caching included).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
WORK="$(mkdir -p "${1:-$ROOT/artifacts/sim_push_build}" && cd "${1:-$ROOT/artifacts/sim_push_build}" && pwd)"
DEST="$ROOT/jepa_world_model/models/sim_push"
THREADS="${THREADS:-1}"
STEPS="${STEPS:-8000}"
GRID="${GRID:-4}"
export MUJOCO_GL="${MUJOCO_GL:-osmesa}" OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
cd "$ROOT"
start=$(date +%s)

echo "== 1/4 recording scripted pushes into $WORK/data"
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

echo "== 2/4 encoder and predictor architecture"
"$PY" - "$WORK" "${ENCODER:-}" "$GRID" <<'EOF'
import sys
from jepa_world_model import load_encoder, load_predictor, save_checkpoint
work, encoder, grid = sys.argv[1], sys.argv[2], int(sys.argv[3])
save_checkpoint(f"{work}/encoder", encoder=load_encoder(encoder) if encoder else
                load_encoder("tiny", patch_size=16, seed=0))
save_checkpoint(f"{work}/predictor_arch", predictor=load_predictor("tiny", grid_size=(grid, grid), width=96,
                                                                   mlp_hidden=384, num_heads=4, seed=0))
EOF

echo "== 3/4 training the predictor"
rm -rf "$WORK/train"
"$PY" -m jepa_world_model.training.train "$WORK/data/push" "$WORK/data/fine" \
    --out "$WORK/train" --encoder "$WORK/encoder" --predictor "$WORK/predictor_arch" --steps "$STEPS" \
    --batch-size 32 --lr 1e-3 --start-lr 1e-4 --warmup 0.03 --decay 0.3 --clip-len 3 --rollout-steps 2 \
    --cache-dir "$WORK/feature_cache" --device cpu --checkpoint-every 1000 --no-progress

echo "== 4/4 installing into $DEST"
mkdir -p "$DEST"
cp "$WORK/train/model.safetensors" "$WORK/train/config.json" "$DEST/"
if [ "${SKIP_EVAL:-0}" != "1" ]; then
    "$PY" -m jepa_ros.cli eval --offline --task push --episodes 20 --seed 0 --threads 1 --json "$WORK/offline_push.json"
fi
echo "done in $(( $(date +%s) - start )) s: $DEST ($(du -sh "$DEST" | cut -f1))"
