"""Transfer quality between independently pretrained models: the zoo (`paw zoo build`), every ordered pair.

    .venv/bin/python benchmarks/transfer_zoo.py [--micro] [--seeds 3] [--steps 300] [--pairs qwen2-s:gemma2,...]

Task: the synthetic category question of `transfer_quality.py` (a word -> its category, four choices, chance 25%),
scored by log-likelihood. Every zoo model gets its own LoRA per seed (r=16, all linear layers, `--steps`); each
source LoRA is moved to every other zoo model with `direct` (where shapes allow), `project`, `align`, and `align`
followed by a short refine (`--refine-steps`, default 10% of `--steps`) beside its same-budget control from the
standard initialisation (paw's refine guard picks the moved adapter's start scale, 0 = dropped; `--refine-shuffled`
refines the shuffled-layer adapter too; `--calibrate` fits `align-act`'s maps on the task's text first); plus the
shuffled-layer control (`align`, depth reversed, gate open) and an unrelated
target (a random-initialised copy of the target's architecture and tokenizer). The similarity gate is paw's
default unless `--open-gate`. Recovery ratio RR = (acc_moved - acc_base) / (acc_target_lora - acc_base), pooled
over seeds, with a paired bootstrap 95% CI over questions; "refine vs control" is the accuracy difference with its
CI. Figures: benchmarks/RESULTS.md ("Transfer between the zoo's families").
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer_quality import correctness, mc_docs  # noqa: E402

from paw.data.synthetic import generate_alpaca, write_jsonl  # noqa: E402
from paw.errors import PawError  # noqa: E402


def train_lora(model_dir: Path, train_file: Path, root: Path, name: str, steps: int, seed: int) -> Path:
    from paw.config.loader import validate_dict
    from paw.train.recipe import run_training

    config = {
        "model": {"name_or_path": str(model_dir)},
        "peft": {"r": 16, "alpha": 32, "target_modules": "all-linear"},
        "data": {"train_file": str(train_file), "max_length": 256, "seed": seed},
        "training": {
            "max_steps": steps,
            "learning_rate": 3e-3,
            "schedule": "cosine",
            "warmup_steps": max(1, steps // 20),
            "per_device_train_batch_size": 8,
            "logging_steps": max(1, steps // 4),
            "seed": seed,
        },
        "tracking": {"backends": []},
        "experiment": {"root": str(root)},
    }
    return run_training(validate_dict(config, "transfer_zoo"), name=name).experiment.final_model


def random_copy(model_dir: Path, out: Path) -> Path:
    """The unrelated control: ``model_dir``'s architecture and tokenizer with freshly initialised weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(12345)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir)).save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


def pooled_ci(base: list[int], lora: list[list[int]], moved: list[list[int]], n_boot: int, seed: int = 0):
    """RR pooled over seeds and its paired-bootstrap 95% CI (questions resampled alike for every seed)."""

    def rr(idx):
        acc_base = sum(base[i] for i in idx) / len(idx)
        acc_lora = sum(run[i] for run in lora for i in idx) / (len(idx) * len(lora))
        acc_moved = sum(run[i] for run in moved for i in idx) / (len(idx) * len(moved))
        gain = acc_lora - acc_base
        return None if gain <= 0 else (acc_moved - acc_base) / gain

    return _ci(rr, len(base), n_boot, seed)


def diff_ci(first: list[list[int]], second: list[list[int]], n_boot: int, seed: int = 0):
    """Accuracy of ``first`` minus ``second`` pooled over seeds, with a paired-bootstrap 95% CI."""

    def diff(idx):
        return sum(a[i] - b[i] for a, b in zip(first, second, strict=True) for i in idx) / (
            len(idx) * len(first)
        )

    return _ci(diff, len(first[0]), n_boot, seed)


def _ci(statistic, n: int, n_boot: int, seed: int):
    rng = random.Random(seed)
    point = statistic(range(n))
    samples = sorted(
        v for v in (statistic([rng.randrange(n) for _ in range(n)]) for _ in range(n_boot)) if v is not None
    )
    if point is None or not samples:
        return point, None, None
    return point, samples[int(0.025 * len(samples))], samples[int(0.975 * len(samples)) - 1]


def fmt(ci) -> str:
    point, low, high = ci
    if point is None:
        return "undefined (no LoRA gain)"
    return f"{point:.2f} [{low:.2f}, {high:.2f}]" if low is not None else f"{point:.2f}"


def significant_gain(base: list[int], lora: list[list[int]], n_boot: int) -> bool:
    _, low, _ = diff_ci(lora, [base] * len(lora), n_boot)
    return low is not None and low > 0


def zoo_pairs(micro: bool, pairs: str | None) -> tuple[dict[str, Path], list[tuple[str, ...]]]:
    """The zoo's model dirs (built first when missing) and the ``source:target,...`` pairs asked for (default:
    every ordered pair)."""
    from paw.models.zoo import build_zoo, names, zoo_root

    build_zoo(micro=micro, log=lambda line: print(line, file=sys.stderr))
    models = {name: zoo_root(micro) / "models" / name for name in names()}
    if pairs:
        return models, [tuple(p.split(":")) for p in pairs.split(",")]
    return models, [(s, t) for s in models for t in models if s != t]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro", action="store_true", help="the micro-zoo (what the tests build)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300, help="each LoRA's training steps")
    parser.add_argument("--refine-steps", type=int, help="the refine budget (default: 10%% of --steps)")
    parser.add_argument("--pairs", help="source:target,... (default: every ordered pair of zoo models)")
    parser.add_argument(
        "--open-gate",
        action="store_true",
        help="transfer every unit whatever its subspace similarity (--similarity-threshold 0 --chance-multiple 0)",
    )
    parser.add_argument(
        "--align",
        default="align",
        choices=("align", "align-act"),
        help="the align variant of the align rows, the refine and the controls: maps fitted on embeddings (align) "
        "or on hidden states (align-act)",
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="align-act: also fit its maps on the task's training text (--calibration-data)",
    )
    parser.add_argument(
        "--refine-shuffled",
        action="store_true",
        help="also refine the shuffled-layer control's adapters (is a refine's gain the transfer's?)",
    )
    parser.add_argument(
        "--skip-raw", action="store_true", help="skip direct and project (raw-coordinate methods)"
    )
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write every accuracy vector and CI here")
    args = parser.parse_args()

    from paw.models.zoo import zoo_root
    from paw.transfer.api import TransferOptions, transfer
    from paw.transfer.refine import RefineOptions, refine

    started = time.perf_counter()
    models, pairs = zoo_pairs(args.micro, args.pairs)
    refine_steps = args.refine_steps or max(1, args.steps // 10)
    work = Path(tempfile.mkdtemp(prefix="paw-transfer-zoo-"))
    train_file = write_jsonl(generate_alpaca(800, seed=0, subtasks=("category",)), work / "train.jsonl")
    docs = mc_docs(seed=99)
    seeds = list(range(args.seeds))
    needed = sorted({m for pair in pairs for m in pair})
    base = {m: correctness(models[m], None, docs) for m in needed}
    loras = {
        (m, s): train_lora(models[m], train_file, work / "exp", f"{m}-{s}", args.steps, s)
        for m in needed
        for s in seeds
    }
    lora_acc = {m: [correctness(models[m], loras[m, s], docs) for s in seeds] for m in needed}
    gains = {m: significant_gain(base[m], lora_acc[m], args.boot) for m in needed}
    for m in needed:
        accs = [sum(run) / len(run) for run in lora_acc[m]]
        print(
            f"{m}: base {sum(base[m]) / len(docs):.3f}, own LoRA {accs} (gain significant: {gains[m]})",
            file=sys.stderr,
        )

    def moved_acc(source: str, target: Path, options: TransferOptions, tag: str, seed: int):
        """The moved adapter (None when nothing passed) and "passed/units" with the commonest skip reason."""
        out = work / "moved" / f"{tag}-{seed}"
        try:
            transfer(loras[source, seed], str(target), out, source=str(models[source]), options=options)
        except PawError as err:
            if not (out / "transfer_report.json").is_file():
                return None, str(err).splitlines()[0][:80]
        report = json.loads((out / "transfer_report.json").read_text())
        reasons = Counter(
            m.get("reason", "").split(" (")[0] for m in report["modules"] if m["status"] != "transferred"
        )
        note = f" ({reasons.most_common(1)[0][0]})" if reasons else ""
        moved = out if report["transferred"] else None
        return moved, f"{report['transferred']}/{report['units']}{note}"

    rows, record = [], {"pairs": {}, "lora": {m: [sum(r) / len(r) for r in lora_acc[m]] for m in needed}}
    unrelated_of: dict[str, tuple[Path, list[int]]] = {}  # target -> its random copy and that copy's base

    def refined(
        source: str, target: str, adapters: list[Path | None], tag: str
    ) -> tuple[list[list[int]], list[list[int]], list[dict[str, Any]]]:
        """Moved adapters (one per seed) refined beside their control: (accuracies, the control's, what the
        refine guard measured and picked)."""
        accs, controls, starts = [], [], []
        for seed, out in zip(seeds, adapters, strict=True):
            options = RefineOptions(data_file=str(train_file), examples=400, steps=refine_steps, seed=seed)
            if out is None:
                accs.append(base[target])
                controls.append(base[target])
                starts.append({"scale": "-"})
                continue
            where = work / "refine" / f"{source}-{target}-{tag}-{seed}"
            done = refine(str(models[target]), out, options, where)
            starts.append(done["start"])  # the guard's pick (0: dropped, the run is the control), its losses
            accs.append(correctness(models[target], Path(done["transferred_init"]["adapter"]), docs))
            controls.append(correctness(models[target], Path(done["standard_init"]["adapter"]), docs))
        return accs, controls, starts

    for source, target in pairs:
        depth = "proportional"
        gate = {"tau": 0.0, "chance_multiple": 0.0} if args.open_gate else {}
        raw = (
            {}
            if args.skip_raw
            else {
                "direct": TransferOptions(method="direct", depth=depth, **gate),
                "project": TransferOptions(method="project", depth=depth, **gate),
            }
        )
        calibration = str(train_file) if args.calibrate else None
        methods = {
            **raw,
            "align": TransferOptions(method=args.align, depth=depth, calibration_data=calibration, **gate),
            "shuffled-layer control": TransferOptions(
                method=args.align,
                depth="reversed",
                tau=0.0,
                chance_multiple=0.0,
                calibration_data=calibration,
            ),
        }
        pair = f"{source} → {target}"
        results, moved = {}, {}
        for label, options in methods.items():
            accs, units, moved[label] = [], [], []
            for seed in seeds:
                out, passed = moved_acc(
                    source, models[target], options, f"{source}-{target}-{label.split()[0]}", seed
                )
                units.append(passed)
                moved[label].append(out)
                accs.append(correctness(models[target], out, docs) if out is not None else base[target])
            results[label] = (accs, units)

        accs, controls, starts = refined(source, target, moved["align"], "align")
        units = [f"{u}, start ×{x['scale']}" for u, x in zip(results["align"][1], starts, strict=True)]
        results["align + refine"] = (accs, units)
        guard = {"align": starts}
        results["refine control (standard init)"] = (controls, ["-"] * len(seeds))
        if args.refine_shuffled:  # is a refine's gain the transfer's, or any small start's?
            accs, _, starts = refined(source, target, moved["shuffled-layer control"], "shuffled")
            units = [f"start ×{x['scale']}" for x in starts]
            results["shuffled + refine"] = (accs, units)
            guard["shuffled"] = starts
        if target not in unrelated_of:  # one random copy per target serves every source
            copy = random_copy(models[target], work / "random" / target)
            unrelated_of[target] = (copy, correctness(copy, None, docs))
        unrelated, unrelated_base = unrelated_of[target]
        unrelated_accs, unrelated_units = [], []
        for seed in seeds:
            out, passed = moved_acc(source, unrelated, methods["align"], f"{source}-{target}-unrelated", seed)
            unrelated_units.append(passed)
            unrelated_accs.append(correctness(unrelated, out, docs) if out is not None else unrelated_base)
        record["pairs"][pair] = {}
        for label, (accs, units) in results.items():
            ci = (
                pooled_ci(base[target], lora_acc[target], accs, args.boot)
                if gains[target]
                else (None, None, None)
            )
            acc = sum(map(sum, accs)) / (len(docs) * len(accs))
            rows.append(f"| {pair} | {label} | {', '.join(units)} | {acc:.3f} | {fmt(ci)} |")
            record["pairs"][pair][label] = {"acc": acc, "units": units, "rr": ci}
            print(rows[-1], flush=True)
        summary = len(rows)  # the rows below are printed together
        written = all(not u.startswith("0/") for u in results["align + refine"][1])
        refine_ci = (
            diff_ci(results["align + refine"][0], results["refine control (standard init)"][0], args.boot)
            if written
            else (None, None, None)
        )
        shown = (
            f"{refine_ci[0]:+.3f} | [{refine_ci[1]:+.3f}, {refine_ci[2]:+.3f}]"
            if written
            else "not run | align wrote nothing"
        )
        rows.append(f"| {pair} | align + refine − control | | {shown} |")
        record["pairs"][pair]["refine minus control"] = refine_ci
        record["pairs"][pair]["guard"] = guard
        if args.refine_shuffled:
            ci = diff_ci(
                results["shuffled + refine"][0], results["refine control (standard init)"][0], args.boot
            )
            rows.append(
                f"| {pair} | shuffled + refine − control | | {ci[0]:+.3f} | [{ci[1]:+.3f}, {ci[2]:+.3f}] |"
            )
            record["pairs"][pair]["shuffled refine minus control"] = ci
            ci = diff_ci(results["align + refine"][0], results["shuffled + refine"][0], args.boot)
            rows.append(
                f"| {pair} | align + refine − shuffled + refine | | {ci[0]:+.3f} | [{ci[1]:+.3f}, {ci[2]:+.3f}] |"
            )
            record["pairs"][pair]["refine minus shuffled refine"] = ci
        gain = sum(map(sum, unrelated_accs)) / (len(docs) * len(seeds)) - sum(unrelated_base) / len(docs)
        shown = ", ".join(unrelated_units)
        rows.append(f"| {pair} | unrelated target (align) | {shown} | {gain:+.3f} vs its base | |")
        record["pairs"][pair]["unrelated"] = {"acc_minus_base": gain, "units": unrelated_units}
        print("\n".join(rows[summary:]), flush=True)
    print(
        f"zoo: {zoo_root(args.micro)}; gate {'open' if args.open_gate else 'default'}; align: {args.align}"
        f"{' on the task text' if args.calibrate else ''}; "
        f"seeds {seeds}; "
        f"LoRA steps {args.steps}; refine steps {refine_steps}; "
        f"{len(docs)} questions; {time.perf_counter() - started:.0f} s"
    )
    for m in needed:
        print(
            f"- {m}: base {sum(base[m]) / len(docs):.3f}, own LoRA {record['lora'][m]}, gain significant {gains[m]}"
        )
    print("| pair | method | units passed (per seed) | acc | RR [95% CI] |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
