"""Where weight-space transfer loses the task between the zoo's families: at the output side, or inside the target.

    .venv/bin/python benchmarks/transfer_zoo_stitch.py [--micro] [--steps 400] [--pairs qwen2-s:qwen2-m,...]

Per pair: the source's own LoRA (`transfer_zoo.py`'s recipe and task, seed 0) and `align-act`'s ridge map M from
the source's last-layer hidden states to the target's, fitted exactly as the transfer fits it (paired token
boundaries on the task's training text, then the corpus). Each category question is scored by the log-probability
of the first token of each choice (the first token where prompt + choice leaves the prompt's tokens; chance 25%):

- source + LoRA: the source's own prediction (what a transfer could at best carry);
- stitched: the source + LoRA's last hidden state, mapped by M, read by the target's final norm and head: the
  output side alone, as if everything below the head had been carried perfectly;
- target + mapped change: the target's own last hidden state plus M·(h_source+LoRA − h_source): the change an
  adapter moved into the target would have to produce there;
- the target's base.

Also the size of the LoRA's change on text that is not the task (the corpus): ‖Δh‖/‖h‖ of the source's last
hidden state, and the mean KL(source + LoRA ‖ source) of its next-token distributions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer_quality import mc_docs  # noqa: E402
from transfer_zoo import train_lora  # noqa: E402

from paw.data.synthetic import generate_alpaca, write_jsonl  # noqa: E402


class Reader:
    """A model's last-layer hidden state (before the final norm) and next-token log-probabilities at a prefix."""

    def __init__(self, model_dir: Path, adapter: Path | None = None):
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        self.model = (
            PeftModel.from_pretrained(model, str(adapter)).merge_and_unload() if adapter else model
        ).eval()

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def choice_prefix(self, prompt: str, choice: str) -> tuple[list[int], int]:
        """The ids before the choice's first token, and that token."""
        whole, context = self.ids(prompt + choice), self.ids(prompt)
        common = next(
            (i for i, (a, b) in enumerate(zip(whole, context, strict=False)) if a != b), len(context)
        )
        return whole[:common], whole[common]

    def last_state(self, ids: list[int]):
        import torch

        seen = []
        hook = self.model.model.layers[-1].register_forward_hook(
            lambda module, args, output: seen.append(
                (output[0] if isinstance(output, tuple) else output)[0, -1]
            )
        )
        try:
            with torch.no_grad():
                logits = self.model(torch.tensor([ids])).logits[0, -1]
        finally:
            hook.remove()
        return seen[0], torch.log_softmax(logits.float(), -1)

    def head(self, state):
        """Log-probabilities the model's final norm and head give a last-layer state (soft-capping is monotone)."""
        import torch

        with torch.no_grad():
            return torch.log_softmax(self.model.lm_head(self.model.model.norm(state)).float(), -1)


def study(source_dir: Path, target_dir: Path, lora: Path, train_file: Path, docs) -> dict[str, float]:
    import torch

    from paw.transfer.api import TransferOptions
    from paw.transfer.cka import calibration_texts
    from paw.transfer.linalg import ridge_fit
    from paw.transfer.methods import align_act
    from paw.transfer.weights import WeightStore

    options = TransferOptions(method="align-act", calibration_data=str(train_file))
    context = align_act.prepare(WeightStore(source_dir, "source"), WeightStore(target_dir, "target"), options)
    M = ridge_fit(context["source"]["out"][-1], context["target"]["out"][-1], align_act.RIDGE)
    source, adapted, target = Reader(source_dir), Reader(source_dir, lora), Reader(target_dir)
    hits = dict.fromkeys(("source + LoRA", "stitched", "target + mapped change", "target base"), 0)
    for prompt, choices, gold in docs:
        scores: dict[str, list[float]] = {name: [] for name in hits}
        for choice in choices:
            ids_s, token_s = adapted.choice_prefix(prompt, choice)
            ids_t, token_t = target.choice_prefix(prompt, choice)
            h_adapted, logp_adapted = adapted.last_state(ids_s)
            h_source, _ = source.last_state(ids_s)
            h_target, logp_target = target.last_state(ids_t)
            scores["source + LoRA"].append(float(logp_adapted[token_s]))
            scores["stitched"].append(float(target.head(M @ h_adapted)[token_t]))
            scores["target + mapped change"].append(
                float(target.head(h_target + M @ (h_adapted - h_source))[token_t])
            )
            scores["target base"].append(float(logp_target[token_t]))
        for name, values in scores.items():
            hits[name] += int(max(range(len(values)), key=values.__getitem__) == gold)
    result = {name: hits[name] / len(docs) for name in hits}
    ratios, kls = [], []
    for text in calibration_texts(64):
        ids = source.ids(text)[:128]
        if len(ids) < 2:
            continue
        for position in range(1, len(ids), 8):  # every 8th position of each corpus line
            h_adapted, logp_adapted = adapted.last_state(ids[: position + 1])
            h_source, logp_source = source.last_state(ids[: position + 1])
            ratios.append(float((h_adapted - h_source).norm() / h_source.norm()))
            kls.append(float((logp_adapted.exp() * (logp_adapted - logp_source)).sum()))
    result["corpus ‖Δh‖/‖h‖ (median)"] = float(torch.tensor(ratios).median())
    result["corpus KL nats (mean)"] = sum(kls) / len(kls)
    result["paired positions"] = context["paired_positions"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro", action="store_true", help="the micro-zoo (what the tests build)")
    parser.add_argument("--steps", type=int, default=400, help="the source LoRA's training steps")
    parser.add_argument("--pairs", default="qwen2-s:qwen2-m,llama:qwen2-s,gemma2:llama")
    args = parser.parse_args()

    from paw.models.zoo import build_zoo, zoo_root

    started = time.perf_counter()
    build_zoo(micro=args.micro, log=lambda line: print(line, file=sys.stderr))
    models = zoo_root(args.micro) / "models"
    work = Path(tempfile.mkdtemp(prefix="paw-transfer-zoo-stitch-"))
    train_file = write_jsonl(generate_alpaca(800, seed=0, subtasks=("category",)), work / "train.jsonl")
    docs = mc_docs(seed=99)
    loras: dict[str, Path] = {}
    print(
        "| pair | source + LoRA | stitched | target + mapped change | target base | corpus ‖Δh‖/‖h‖ | corpus KL |"
    )
    print("|---|---|---|---|---|---|---|")
    for source, target in (pair.split(":") for pair in args.pairs.split(",")):
        if source not in loras:
            loras[source] = train_lora(models / source, train_file, work / "exp", source, args.steps, 0)
        r = study(models / source, models / target, loras[source], train_file, docs)
        print(
            f"| {source} → {target} | {r['source + LoRA']:.3f} | {r['stitched']:.3f} | "
            f"{r['target + mapped change']:.3f} | {r['target base']:.3f} | {r['corpus ‖Δh‖/‖h‖ (median)']:.2f} | "
            f"{r['corpus KL nats (mean)']:.2f} |",
            flush=True,
        )
    print(
        f"zoo: {zoo_root(args.micro)}; LoRA steps {args.steps}; {len(docs)} questions; "
        f"first-token scoring; {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
