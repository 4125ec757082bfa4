"""How much of an adapter ``align`` carries between the pairs our users name, on depth-cut real-shape stand-ins.

For each pair: an r=16 all-linear LoRA with random non-zero A and B on the source stand-in (what a trained one
looks like to the maps: every unit has an update), ``paw transfer --method align`` with the gate opened
(``--similarity-threshold 0 --chance-multiple 0``: between random stand-ins the gate would refuse everything,
rightly; this measures whether every unit *has* a map), then the result loaded with plain
``peft.PeftModel.from_pretrained`` on the target and run once. Prints units transferred, seconds and peak RSS.

    python benchmarks/transfer_coverage.py                      # both pairs at depth 2 (about 6 minutes, ~8 GB)
    python benchmarks/transfer_coverage.py --pairs gemma-2-2b:qwen2.5-1.5b --depth 4

Not a test and not a speed comparison: a coverage check with the figures it measured (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

PAIRS = ("gemma-2-2b:qwen2.5-1.5b", "llama-3-8b:qwen2.5-7b")

CHILD = r"""
import json, sys, time, resource, torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM
from paw.models.resolve import resolve_model
from paw.transfer.api import TransferOptions, transfer

source, target, work = sys.argv[1], sys.argv[2], sys.argv[3]
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(resolve_model(source).location, dtype=torch.float32)
lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
get_peft_model(model, lora).save_pretrained(f"{work}/source_lora")
del model
started = time.perf_counter()
report = transfer(
    f"{work}/source_lora", target, f"{work}/target_lora",
    options=TransferOptions(method="align", tau=0.0, chance_multiple=0.0),
)
seconds = time.perf_counter() - started
base = AutoModelForCausalLM.from_pretrained(resolve_model(target).location, dtype=torch.float32)
ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
with torch.no_grad():
    before = base(ids).logits
    loaded = PeftModel.from_pretrained(base, f"{work}/target_lora")
    after = loaded(ids).logits
print(json.dumps({
    "units": report["units"], "transferred": report["transferred"], "skipped": report["skipped"],
    "shared_tokens": report.get("shared_tokens"), "transfer_s": round(seconds, 1),
    "loaded_with_peft": type(loaded).__name__, "max_logit_change": float((after - before).abs().max()),
    "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 1),
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), help="source:target stand-in names")
    parser.add_argument("--depth", type=int, default=2, help="layers of each stand-in")
    args = parser.parse_args()
    print(
        f"| pair (stand-ins @{args.depth}) | units transferred | shared tokens | transfer s | peak RSS GiB |"
    )
    print("|---|---|---|---|---|")
    for pair in args.pairs:
        source, target = (f"paw-shape/{name}@{args.depth}" for name in pair.split(":"))
        with tempfile.TemporaryDirectory() as work:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, source, target, work], capture_output=True, text=True
            )
        if done.returncode != 0:
            print(f"| {pair} | failed: {done.stderr.strip().splitlines()[-1]} | | | |")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {pair} | {row['transferred']}/{row['units']} (loads with {row['loaded_with_peft']}, "
            f"max logit change {row['max_logit_change']:.2f}) | {row['shared_tokens']} | {row['transfer_s']} | "
            f"{row['peak_rss_gib']} |"
        )


if __name__ == "__main__":
    main()
