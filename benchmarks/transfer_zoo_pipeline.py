"""`paw demo --zoo`'s pipeline over zoo pairs: `align`, then a refine beside its same-budget control.

    .venv/bin/python benchmarks/transfer_zoo_pipeline.py [--pairs a:b,...] [--labels source|data]
        [--refine-steps 200] [--refine-examples 200] [--json FILE]

Per pair, `paw pipeline paw:pipeline/quick_test.yaml` with the overrides `paw demo --zoo` uses (`paw/cli/demo.py`:
the HellaSwag-style synthetic task, one right ending per context; both LoRAs 400 steps, 3 seeds; `align` with
proportional depth and the gate open; the refine stage, by default 200 steps on the source adapter's greedy answers
to 200 training prompts), each pipeline in its own process. The product computes everything printed here (its
`pipeline_results.json`): RR of the moved adapter and of the refined one (paired bootstrap over questions, seeds
pooled), the refined − control accuracy difference with its CI, and the refine guard's kept scale per seed
(0: dropped, the refined run is the control). Default pairs: every ordered pair of different zoo models.
Figures: benchmarks/RESULTS.md ("The pipeline's refine stage across the zoo").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_pair(pair: str, root: Path, extra: list[str]) -> dict:
    from paw.cli.demo import DEMO_CONFIG, zoo_overrides

    name = pair.replace(":", "_to_")
    command = [sys.executable, "-m", "paw", "pipeline", str(DEMO_CONFIG), "--name", name]
    command += [f"experiment.root={root}", *zoo_overrides(pair), *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        return {"pair": pair, "error": done.stderr.strip().splitlines()[-1:]}
    results = json.loads((root / name / "results" / "pipeline_results.json").read_text())
    (task,) = results["tasks"].values()
    return {"pair": pair, "seconds": round(time.perf_counter() - started, 1), **task}


def ci(entry: dict | None, scale: float = 1.0, signed: bool = False) -> str:
    if not entry or entry.get("value") is None:
        return (entry or {}).get("reason") or "n/a"
    sign = "+" if signed else ""
    v, lo, hi = (scale * entry[k] for k in ("value", "low", "high"))
    return f"{v:{sign}.2f} [{lo:{sign}.2f}, {hi:{sign}.2f}]"


def main() -> None:
    from paw.models.zoo import names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", help="source:target,... (default: every ordered pair of zoo models)")
    parser.add_argument("--labels", choices=("source", "data"), default="source")
    parser.add_argument("--refine-steps", type=int, default=200)
    parser.add_argument("--refine-examples", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write every pair's results here")
    args = parser.parse_args()
    pairs = args.pairs.split(",") if args.pairs else [f"{s}:{t}" for s in names() for t in names() if s != t]
    extra = [
        f"transfer.refine.labels={args.labels}",
        f"transfer.refine.steps={args.refine_steps}",
        f"transfer.refine.examples={args.refine_examples}",
    ]
    rows = []
    print(
        "| pair | own LoRA gain | RR align | RR align + refine | refined − control (points) | kept scales | s |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="paw-zoo-pipeline-") as tmp:
        for pair in pairs:
            row = run_pair(pair, Path(tmp), extra)
            rows.append(row)
            if "error" in row:
                print(f"| {pair} | failed: {row['error']} | | | | | |", flush=True)
                continue
            gain = row["models"]["target_lora"]["delta_vs_base"]
            print(
                f"| {pair} | {ci(gain, 100, True)} | {ci(row.get('recovery_ratio'))} | "
                f"{ci(row.get('recovery_ratio_refined'))} | {ci(row.get('refined_vs_control'), 100, True)} | "
                f"{row.get('refine_start_scales')} | {row['seconds']} |",
                flush=True,
            )
    if args.json:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "pairs": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
