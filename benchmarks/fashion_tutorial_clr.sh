#!/usr/bin/env bash
# Fashion-MNIST experiment of TensorFlow's cyclical-LR tutorial, reproduced with the shipped configs:
# cnn28 + SGD, batch 64, 10 epochs, constant LR 0.01 vs triangular2 CLR between 1e-4 and 1e-2
# (step size 2 epochs). One seed (42, as the tutorial); prints test accuracy after every epoch.
#   benchmarks/fashion_tutorial_clr.sh [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/fashion_tutorial}
CADENCE=${CADENCE:-.venv/bin/cadence}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for config in fashion_cnn28_no_clr fashion_cnn28_triangular2; do
  "$CADENCE" train "configs/$config.toml" --set train.progress=off --run-dir "$RUNS/$config"
done
for config in fashion_cnn28_no_clr fashion_cnn28_triangular2; do
  echo "$config test accuracy per epoch:"
  grep '"kind": "eval"' "$RUNS/$config/metrics.jsonl" \
    | sed -E 's/.*"epoch": ([0-9.]+).*"val_accuracy": ([0-9.]+).*/  epoch \1: \2/'
done
