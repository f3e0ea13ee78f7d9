#!/usr/bin/env bash
# Issue 24's GPU check, prepared as one script for a lent GPU machine (the device tool), because
# such a machine is lent by chance, for 15 minutes of device time in all, and starts bare.
#
#   bash experiments/gpu_check.sh --fetch      # here, once: the wheels the GPU image lacks -> .whl/
#   device run, carry [".whl"], timeout_s 570:  bash experiments/gpu_check.sh
#
# On the GPU machine it installs those wheels beside the image's own torch and Lightning (no
# network there, and PyPI's torch would be several GB anyway), runs the GPU tests, then
# seed 0 of each Pong preset worth timing on a GPU, `python train.py <preset> trainer=gpu seed=0`
# for <preset> = env=pong (the default, fastest on a CPU) and +experiment=pong_n10 (the Nature
# CNN, whose larger update a GPU may make cheap),
# each with half of the time budget (BUDGET_S, default 510 s: the device's 10-minute limit less
# the start and the copies back). It writes what comes back under $OUT (at most 8 files, so one
# summary and one curve per run):
#   tests.txt, env.txt, <tag>-summary.json (steps and wall time to solve), <tag>-metrics.csv,
# where <tag> is pong or pong_n10.
# The image's python3 is 3.12 and holds torch, pytorch-lightning, numpy, opencv-headless, tqdm
# and pytest (the device image's package list); the rest of what train.py imports with
# logger=csv is below. W&B and Optuna are not needed for this check and stay behind.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=(gymnasium==1.4.0 farama-notifications==0.0.6 ale-py==0.12.1 hydra-core==1.3.8
  omegaconf==2.3.1 tensorboardX==2.6.5)

if [ "${1:-}" = --fetch ]; then
  mkdir -p .whl
  py=".venv/bin/python"; [ -x "$py" ] || py=python3
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}" || exit 1
  # antlr4's runtime (hydra's parser) is published as a source archive only: build its wheel
  "$py" -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3 || exit 1
  du -sh .whl && ls .whl
  exit 0
fi

OUT=${OUT:-outputs/gpu_check}
mkdir -p "$OUT" outputs/gpu_check
BUDGET_S=${BUDGET_S:-510}
start=$(date +%s)
left() { echo $((BUDGET_S - ($(date +%s) - start))); }

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || { echo "wheels did not install: run --fetch here first"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 WANDB_MODE=disabled
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
    torch.cuda.get_device_name(0))"
  python3 -c "import dqn_harness.perf as p; print('host CPU:', p.cpu_description())"
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_training.py \
  tests/test_augment.py >"$OUT/tests.txt" 2>&1
echo "GPU tests: rc $? ($(tail -1 "$OUT/tests.txt"))"

PRESETS=("env=pong" "+experiment=pong_n10")
share=$((BUDGET_S / ${#PRESETS[@]}))
for preset in "${PRESETS[@]}"; do
  tag=${preset#*=}
  budget=$(left)
  [ "$budget" -gt "$share" ] && budget=$share
  if [ "$budget" -lt 60 ]; then
    echo "$tag: not started, ${budget}s of the budget left"
    break
  fi
  run="outputs/gpu_check/$tag"
  timeout "$budget" python3 train.py "$preset" trainer=gpu seed=0 logger=csv progress=false \
    hydra.run.dir="$run" >"$run.log" 2>&1
  rc=$?
  cp "$run/summary.json" "$OUT/$tag-summary.json" 2>/dev/null
  cp "$run/csv/metrics.csv" "$OUT/$tag-metrics.csv" 2>/dev/null \
    || find "$run" -name "metrics.csv" -exec cp {} "$OUT/$tag-metrics.csv" \; -quit
  echo "$tag: rc $rc (124 = stopped by the budget); $(python3 -c "
import json, sys
try:
    s = json.load(open('$run/summary.json'))
except OSError:
    sys.exit(print('no summary.json; last lines:', open('$run.log').read()[-600:]))
print({k: s.get(k) for k in ('status', 'solved', 'solved_at_step', 'env_steps', 'wall_s', 'sps',
                             'best_eval_return')})")"
done
