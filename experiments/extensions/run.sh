#!/usr/bin/env bash
# The extensions benchmark: CartPole-v1, 5 seeds per variant, each run stopped when its
# 10-episode evaluation mean reaches 475 or at 50k agent steps. The baseline is
# experiments/cartpole_dqn.yaml; every variant adds one switch, rainbow_lite adds all four.
# Two runs at a time (each uses one CPU thread). Then: compare.py draws curves.png and the table.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python}
{
  for seed in 0 1 2 3 4; do
    echo "+experiment=cartpole_dqn seed=$seed"
    for variant in "double algo.double=true" "dueling model=dueling_mlp" "n_step3 algo.n_step=3" \
                   "prioritized buffer=prioritized" \
                   "rainbow_lite algo.double=true model=dueling_mlp algo.n_step=3 buffer=prioritized"; do
      set -- $variant
      name=$1; shift
      echo "+experiment=cartpole_dqn seed=$seed logger.group=cartpole_extensions logger.tags=[$name] $*"
    done
  done
} | xargs -P 2 -I{} sh -c "$PY train.py {} progress=false > /dev/null 2>&1 || echo 'failed: {}'"
$PY compare.py group=cartpole_dqn,cartpole_extensions \
  by=algo.double,model.dueling,algo.n_step,buffer.sampler out=experiments/extensions
$PY compare.py group=cartpole_dqn out=experiments/results/cartpole_dqn
