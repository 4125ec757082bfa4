#!/usr/bin/env bash
# MetaMathQA with LoRA r=16 on every linear layer (configs/metamath_qa.yaml: Llama-2-7B; MODEL=mistral-7b for
# Mistral). As written it runs offline in seconds on a tiny Llama and built-in instruction data; REAL=1 runs the
# real config on a GPU. Extra arguments are config overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
PAW=${PAW:-paw}
if [[ "${REAL:-0}" == 1 ]]; then
  $PAW train configs/metamath_qa.yaml model.name_or_path="${MODEL:-llama-2-7b}" "$@"
else
  $PAW train configs/metamath_qa.yaml model.name_or_path=paw-tiny/llama model.gradient_checkpointing=false \
    data.hub_dataset=null data.train_file=paw-synth/instructions data.columns={} training.max_steps=20 \
    training.eval_steps=20 "$@"
fi
