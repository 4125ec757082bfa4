#!/usr/bin/env bash
# GLUE MRPC with a LoRA sequence classifier (configs/glue_mrpc.yaml: RoBERTa-base, LoRA on query/value).
# As written it runs offline in seconds on a tiny model and built-in data; REAL=1 runs the real config
# (needs the hub or a local RoBERTa under paths.models_dir). Extra arguments are config overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
PAW=${PAW:-paw}
if [[ "${REAL:-0}" == 1 ]]; then
  $PAW train configs/glue_mrpc.yaml "$@"
else
  $PAW train configs/glue_mrpc.yaml model.name_or_path=paw-tiny/qwen2 peft.target_modules=all-linear \
    data.hub_dataset=null data.hub_val_split=null data.text_fields=null data.train_file=paw-synth/sentiment \
    data.val_ratio=0.1 training.max_steps=20 training.eval_steps=20 "$@"
fi
