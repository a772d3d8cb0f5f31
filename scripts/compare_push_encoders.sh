#!/usr/bin/env bash
# The push predictor recipe on two 8 px-patch encoders (random tiny vs pretrained_sim), same data/steps
# Needs the recordings of scripts/make_push_model.sh (artifacts/sim_push_build/data) and writes artifacts/push_enc/.
# Usage: scripts/compare_push_encoders.sh        (STEPS: training steps per model, default 2500)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."; . .venv/bin/activate
export MUJOCO_GL=osmesa OMP_NUM_THREADS=1
D=artifacts/sim_push_build/data
for name in random pretrained; do
  W=artifacts/push_enc/$name; mkdir -p $W
  python - $W $name <<'PY'
import sys
from jepa_world_model import load_encoder, load_predictor, save_checkpoint
w, name = sys.argv[1], sys.argv[2]
enc = load_encoder("tiny", seed=0) if name == "random" else load_encoder("pretrained_sim")
save_checkpoint(f"{w}/encoder", encoder=enc)
save_checkpoint(f"{w}/predictor_arch", predictor=load_predictor("tiny", grid_size=(8, 8), width=96, mlp_hidden=384,
                                                                num_heads=4, seed=0))
PY
  date +%s > $W/t0
  python -m jepa_world_model.training.train $D/push $D/fine --out $W/train --encoder $W/encoder --predictor $W/predictor_arch \
      --steps ${STEPS:-2500} --batch-size 32 --lr 1e-3 --start-lr 1e-4 --warmup 0.03 --decay 0.3 --clip-len 3 \
      --rollout-steps 2 --cache-dir $W/feature_cache --device cpu --checkpoint-every 1000 --no-progress > $W/train.log 2>&1
  date +%s > $W/t1
done
for name in random pretrained; do
  W=artifacts/push_enc/$name
  python -m jepa_ros.cli eval --offline --task push --encoder $W/train --predictor $W/train --episodes 10 --seed 0 --threads 1 \
      --json $W/offline_push.json > $W/offline_push.txt 2>&1
done
