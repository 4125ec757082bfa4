#!/usr/bin/env bash
# Generation with paw infer: one prompt streamed to the terminal, then a batch from a .jsonl file into
# results.json. As written it uses the tiny built-in model offline; pass MODEL=... (and ADAPTER=...) for yours.
set -euo pipefail
cd "$(dirname "$0")/.."
PAW=${PAW:-paw}
MODEL=${MODEL:-paw-tiny/qwen2}
ADAPTER_ARGS=()
if [[ -n "${ADAPTER:-}" ]]; then ADAPTER_ARGS=(--adapter "$ADAPTER"); fi
OUT=$(mktemp -d)
$PAW infer --model "$MODEL" "${ADAPTER_ARGS[@]}" --input-text "Name the category of the word." --max-new-tokens 16
cat > "$OUT/inputs.jsonl" <<'JSONL'
{"instruction": "Give the opposite of the word.", "input": "hot"}
{"prompt": "Question: Which of these is a kind of fruit?\nAnswer:"}
{"messages": [{"role": "user", "content": "Is this review positive or negative? The soup was superb."}]}
JSONL
$PAW infer --model "$MODEL" "${ADAPTER_ARGS[@]}" --input-file "$OUT/inputs.jsonl" --output-file "$OUT/results.json" \
  --max-new-tokens 16 --temperature 0.7 --top-p 0.9
echo "results: $OUT/results.json"
