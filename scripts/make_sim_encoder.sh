#!/usr/bin/env bash
# Rebuild the pretrained sim encoder shipped in jepa_world_model/shipped_models/sim_encoder/ (model name
# "pretrained_sim") with `jepa pretrain`, then probe it against a random encoder and raw pixels:
#   1. record the push task's scripted pushes (the same 400 episodes as scripts/make_push_model.sh's "push" set,
#      table camera, with /object_pose) plus two probe sets (fit / held out);
#   2. pretrain the tiny ViT (64 px, 8 px patches, 4-frame clips) for 1800 steps (about 11 min on 2 shared cores),
#      in WORK_DIR with relative paths, so config.json's metadata names the data "push" and no path of this machine;
#   3. linear probes of end-effector and object position on the held-out set, flat and mean-pooled features.
# Usage: scripts/make_sim_encoder.sh [WORK_DIR]        (default WORK_DIR: artifacts/sim_encoder_build)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-$ROOT/.venv/bin}"
WORK="$(mkdir -p "${1:-$ROOT/artifacts/sim_encoder_build}" && cd "${1:-$ROOT/artifacts/sim_encoder_build}" && pwd)"
DEST="$ROOT/jepa_world_model/shipped_models/sim_encoder"
export MUJOCO_GL="${MUJOCO_GL:-osmesa}" OMP_NUM_THREADS="${THREADS:-2}"
cd "$ROOT"

echo "== 1/3 recordings into $WORK"
"$BIN/python" - "$WORK" <<'PY'
import sys
from pathlib import Path
from jepa_episodes.sim_recording import SimRecordingConfig, record_sim_episodes
work = Path(sys.argv[1])
for name, episodes, steps, seed, config in (
        ("push", 400, 30, 11, SimRecordingConfig(task="push", max_step=0.02, push_noise=0.003, random_prob=0.15)),
        ("probe_fit", 40, 30, 31, SimRecordingConfig(task="push", max_step=0.02)),
        ("probe_held_out", 15, 30, 32, SimRecordingConfig(task="push", max_step=0.02))):
    if len(list((work / name).glob("episode_*.mcap"))) != episodes:
        record_sim_episodes(work / name, episodes, steps=steps, seed=seed, config=config)
PY

echo "== 2/3 pretraining"
rm -rf "$WORK/run"
(cd "$WORK" && "$BIN/jepa" pretrain push --out run --steps 1800 --checkpoint-every 300 --no-progress)
mkdir -p "$DEST"
cp "$WORK/run/model.safetensors" "$WORK/run/config.json" "$DEST/"

echo "== 3/3 probes (held-out RMSE: this encoder, a random one of the same architecture, 16x16 pixels)"
for pool in flat mean; do
    "$BIN/jepa" eval-offline "$WORK/probe_held_out" --probe "$WORK/probe_fit" --encoder "$DEST" \
        --probe-pool "$pool" --json "$WORK/probe_$pool.json"
done
