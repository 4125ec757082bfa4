"""Moving a LoRA between the zoo's families through its answers (`paw transfer --refine-labels source`).

    .venv/bin/python benchmarks/transfer_zoo_distill.py [--micro] [--seeds 3] [--steps 400] [--pairs a:b,...]
        [--controls a:b,...] [--json FILE]

The task and the own LoRAs are `transfer_zoo.py`'s (the category question, 4 choices, chance 25%; r=16 on every
linear layer, `--steps` steps, one LoRA per model and seed). Per source and seed, the source's LoRA answers the
800 training prompts (greedy; `paw.transfer.distill.source_answers`); per pair and seed, the target gets a LoRA
trained with the same recipe and budget on those answers in place of the true ones. RR = (acc − base) /
(acc_own_LoRA − base), pooled over seeds, with a paired-bootstrap 95% CI over questions (only where the target's
own gain is significant). Control (`--controls`): the same with the answers of the source *base* (its adapter with
every lora_B set to 0), so a gain that the adapter does not carry shows up there. Figures: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer_quality import correctness, mc_docs  # noqa: E402
from transfer_zoo import fmt, pooled_ci, significant_gain, train_lora, zoo_pairs  # noqa: E402

from paw.data.synthetic import generate_alpaca, write_jsonl  # noqa: E402
from paw.errors import PawError  # noqa: E402


def silenced(adapter: Path, out: Path) -> Path:
    """``adapter`` with every lora_B set to 0: the source base's own answers, prompted the same way."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(adapter, out)
    weights = load_file(str(out / "adapter_model.safetensors"))
    save_file(
        {k: v * 0 if "lora_B" in k else v for k, v in weights.items()}, str(out / "adapter_model.safetensors")
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro", action="store_true", help="the micro-zoo (what the tests build)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=400, help="every LoRA's training steps")
    parser.add_argument("--pairs", help="source:target,... (default: every ordered pair of zoo models)")
    parser.add_argument("--controls", default="", help="pairs that also get the no-adapter-teacher control")
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write every accuracy and CI here")
    args = parser.parse_args()

    from paw.models.zoo import zoo_root
    from paw.transfer.distill import source_answers

    started = time.perf_counter()
    models, pairs = zoo_pairs(args.micro, args.pairs)
    controls = {tuple(p.split(":")) for p in args.controls.split(",") if p}
    work = Path(tempfile.mkdtemp(prefix="paw-transfer-zoo-distill-"))
    rows = generate_alpaca(800, seed=0, subtasks=("category",))
    train_file = write_jsonl(rows, work / "train.jsonl")
    docs = mc_docs(seed=99)
    seeds = list(range(args.seeds))
    needed = sorted({m for pair in pairs for m in pair})
    base = {m: correctness(models[m], None, docs) for m in needed}

    def lora(model: str, data: Path, name: str, seed: int) -> Path:
        return train_lora(models[model], data, work / "exp", name, args.steps, seed)

    own = {(m, s): lora(m, train_file, f"{m}-{s}", s) for m in needed for s in seeds}
    own_acc = {m: [correctness(models[m], own[m, s], docs) for s in seeds] for m in needed}
    gains = {m: significant_gain(base[m], own_acc[m], args.boot) for m in needed}
    record = {"lora": {m: [sum(r) / len(r) for r in own_acc[m]] for m in needed}, "pairs": {}, "answers": {}}
    answers: dict[tuple[str, int, str], Path | None] = {}

    def answered(source: str, seed: int, teacher: str) -> Path | None:
        """The training prompts with the source's answers (teacher: 'adapter' or 'base'), written once."""
        if (source, seed, teacher) not in answers:
            adapter = own[source, seed]
            if teacher == "base":
                adapter = silenced(adapter, work / "silenced" / f"{source}-{seed}")
            out = work / "answers" / f"{source}-{seed}-{teacher}.jsonl"
            try:
                done = source_answers(str(models[source]), adapter, str(train_file), out, len(rows))
            except PawError as err:  # the source answered nothing: the target keeps its base answers
                done, out = {"rows": 0, "agree_with_data": 0, "error": str(err)}, None
            record["answers"][f"{source}-{seed}-{teacher}"] = done
            print(
                f"{source} seed {seed} ({teacher}): {done['agree_with_data']}/{done['rows']} answers right",
                file=sys.stderr,
            )
            answers[source, seed, teacher] = out
        return answers[source, seed, teacher]

    lines = ["| pair | teacher | answers right | acc | RR [95% CI] |", "|---|---|---|---|---|"]
    for source, target in pairs:
        pair = f"{source} → {target}"
        record["pairs"][pair] = {}
        for teacher in ("adapter", "base") if (source, target) in controls else ("adapter",):
            accs, right = [], []
            for seed in seeds:
                data = answered(source, seed, teacher)
                right.append(record["answers"][f"{source}-{seed}-{teacher}"]["agree_with_data"] / len(rows))
                if data is None:
                    accs.append(base[target])
                    continue
                trained = lora(target, data, f"{source}-{target}-{teacher}-{seed}", seed)
                accs.append(correctness(models[target], trained, docs))
            ci = (
                pooled_ci(base[target], own_acc[target], accs, args.boot)
                if gains[target]
                else (None, None, None)
            )
            acc = sum(map(sum, accs)) / (len(docs) * len(accs))
            shown = ", ".join(f"{r:.2f}" for r in right)
            lines.append(f"| {pair} | {teacher} | {shown} | {acc:.3f} | {fmt(ci)} |")
            record["pairs"][pair][teacher] = {"acc": acc, "answers_right": right, "rr": ci, "per_seed": accs}
            print(lines[-1], flush=True)
    for m in needed:
        accs = ", ".join(f"{sum(r) / len(r):.2f}" for r in own_acc[m])
        print(f"{m}: base {sum(base[m]) / len(docs):.3f}, own LoRA {accs} (gain significant: {gains[m]})")
    print("\n".join(lines))
    print(
        f"zoo: {zoo_root(args.micro)}; seeds {seeds}; LoRA steps {args.steps}; {len(docs)} questions; "
        f"{time.perf_counter() - started:.0f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
