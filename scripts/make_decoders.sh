#!/usr/bin/env bash
# Rebuild the picture decoders shipped with the sim models,
# jepa_world_model/shipped_models/{sim_reach,sim_push}/decoder/ (find_decoder("default"), find_decoder("push_default")),
# with the project's own pipeline, offline:
#   1. record sim episodes with `jepa record --sim`, both tasks at the same time: reach (random play, the reach
#      model's step mix) and push (the noisy scripted pusher, table camera), EPISODES training episodes of each on
#      one seed and HELD_OUT episodes on another seed for the measurement;
#   2. train a decoder on each model's encoder (`jepa train-decoder --model default|push_default`, STEPS steps of 32
#      frames, one thread each, the two at the same time; 5 % of the training episodes are held out for its PSNR
#      verdict). It runs in WORK_DIR with relative paths, so config.json's metadata names the data "data/reach",
#      "data/push" and the encoder by its shipped name, no path of this machine;
#   3. copy each into <model dir>/decoder/ and measure it: `jepa eval-offline --pictures` on the held-out episodes
#      (PSNR of the decoded predictions per horizon step against "no motion" and "mean frame", PNG strips) into
#      WORK_DIR/eval_{reach,push}.json and WORK_DIR/pictures_{reach,push}/.
# Usage: scripts/make_decoders.sh [WORK_DIR]              (default WORK_DIR: artifacts/decoders_build)
# Environment: PYTHON (default .venv/bin/python), EPISODES (default 240), HELD_OUT (default 24), STEPS (default
# 3000), HORIZON (eval-offline steps, default 8), SKIP_EVAL=1 skips the measurement. Recorded episodes already in
# WORK_DIR/data are reused.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
WORK="$(mkdir -p "${1:-$ROOT/artifacts/decoders_build}" && cd "${1:-$ROOT/artifacts/decoders_build}" && pwd)"
MODELS="$ROOT/jepa_world_model/shipped_models"
EPISODES="${EPISODES:-240}"
HELD_OUT="${HELD_OUT:-24}"
STEPS="${STEPS:-3000}"
HORIZON="${HORIZON:-8}"
export MUJOCO_GL="${MUJOCO_GL:-osmesa}" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
JEPA=("$PY" -m jepa_ros.cli)
cd "$WORK"
start=$(date +%s)

record() {  # record TASK NAME EPISODES STEPS SEED
    if [ "$(find "data/$2" -name 'episode_*.mcap' 2>/dev/null | wc -l)" != "$3" ]; then
        rm -rf "data/$2"
        "${JEPA[@]}" record --sim --task "$1" --episodes "$3" --steps "$4" --seed "$5" --out "data/$2"
    fi
}

echo "== 1/3 recording into $WORK/data"
(record reach reach "$EPISODES" 20 41 && record reach reach_held "$HELD_OUT" 20 42) & reach_pid=$!
(record push push "$EPISODES" 30 51 && record push push_held "$HELD_OUT" 30 52) & push_pid=$!
wait "$reach_pid"
wait "$push_pid"

echo "== 2/3 training the decoders"
train() {  # train MODEL DATA OUT
    rm -rf "$3"
    "${JEPA[@]}" train-decoder "$2" --out "$3" --model "$1" --steps "$STEPS" --batch-size 32 \
        --cache-dir feature_cache --device cpu --no-progress > "$3.log" 2>&1
    tail -1 "$3.log"
}
train default data/reach train_reach & reach_pid=$!
train push_default data/push train_push & push_pid=$!
wait "$reach_pid"
wait "$push_pid"

echo "== 3/3 installing and measuring"
for pair in default:sim_reach:reach push_default:sim_push:push; do
    IFS=: read -r model dir task <<< "$pair"
    rm -rf "$MODELS/$dir/decoder"
    mkdir -p "$MODELS/$dir/decoder"
    cp "train_$task/model.safetensors" "train_$task/config.json" "$MODELS/$dir/decoder/"
    if [ "${SKIP_EVAL:-0}" != "1" ]; then
        rm -rf "pictures_$task"
        "${JEPA[@]}" eval-offline "data/${task}_held" --checkpoint "$model" --horizon "$HORIZON" \
            --cache-dir feature_cache --pictures "pictures_$task" --json "eval_$task.json"
    fi
done
echo "done in $(( $(date +%s) - start )) s:" $(du -sh "$MODELS/sim_reach/decoder" "$MODELS/sim_push/decoder")
