#!/usr/bin/env bash
# Data-parallel training: one process per GPU through torchrun (accelerate launch works the same way); rank 0
# writes the experiment. As written it runs 2 CPU processes (gloo) on a tiny model offline; on a server:
# NPROC=4 REAL=1 ./examples/train_multi_gpu.sh (the commonsense recipe with the server profile).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCHRUN=${TORCHRUN:-torchrun}
NPROC=${NPROC:-2}
if [[ "${REAL:-0}" == 1 ]]; then
  $TORCHRUN --nproc_per_node "$NPROC" -m paw train configs/commonsense_qwen2.5_0.5b.yaml --profile server "$@"
else
  $TORCHRUN --nproc_per_node "$NPROC" -m paw train configs/commonsense_qwen2.5_0.5b.yaml \
    model.name_or_path=paw-tiny/qwen2 data.train_file=paw-synth/instructions data.max_length=96 \
    training.schedule='[{steps: 8, lr: 1.0e-3}, {steps: 4, lr: 1.0e-4}]' training.save='{start_step: 8, every: 2}' "$@"
fi
