"""Optional ``refine`` stage: a short LoRA fine-tune on the target starting from the transferred adapter, always
run beside its control — the same budget (examples, steps, rank, alpha, target modules, LR, seed) from the
standard initialisation — so the report shows what the transfer adds over simply training that little
(LoRASuite's small-data refit). Modules the transfer did not write (layers a shallower source has no match for,
refused units) start from the standard initialisation in the refined run too, so both runs train the same
parameters.

The start is guarded: between independently trained models a moved adapter can be a large perturbation that
training from it does not undo (benchmarks/RESULTS.md, the zoo's size pair: 0.244 against the control's 0.481
after 400 steps). So the moved weights are first scaled by each of ``SCALES`` and the scale with the lowest loss
on (up to ``GUARD_EXAMPLES`` of) the refine's own training examples is kept; at scale 0 the moved adapter is
dropped and the refined run is its control. The losses go into the report.

The guard is not enough: a start with a lower training loss can still end below the control (RESULTS.md, the
pipeline's refine stage across the zoo). Both runs are trained anyway, so the result names the one to use (``kept``):
the refined run only where its loss on the refine's validation rows is below the control's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from paw.errors import PawError

LABELS = ("data", "source")  # what the refine trains on: the data's answers or the source adapter's


@dataclass(frozen=True)
class RefineOptions:
    data_file: str
    examples: int = 100
    steps: int = 50
    learning_rate: float = 3e-3
    val_ratio: float = 0.2
    seed: int = 0
    models_dir: str | None = None  # paths.models_dir: where a hub model's local copy is looked for
    # more of the runs' data section (a pipeline's: columns, format, prompt_template, max_length, ...)
    data_settings: dict[str, Any] = field(default_factory=dict)


def _train_file(data_file: str) -> str:
    """A built-in dataset's name as given (the training recipe generates it), any other file as an absolute path."""
    from paw.data.builtin import is_builtin

    return data_file if is_builtin(data_file) else str(Path(data_file).resolve())


def _config(target: str, init_adapter: str | None, r: int, alpha: float, options: RefineOptions, root: Path):
    from paw.config.loader import validate_dict

    return validate_dict(
        {
            "model": {"name_or_path": target},
            "peft": {"r": r, "alpha": alpha, "target_modules": "all-linear", "init_adapter": init_adapter},
            "data": {
                **options.data_settings,
                "train_file": _train_file(options.data_file),
                "val_ratio": options.val_ratio,
                "max_samples": options.examples,
                "seed": options.seed,
            },
            "training": {
                "max_steps": options.steps,
                "learning_rate": options.learning_rate,
                "seed": options.seed,
                "logging_steps": max(1, options.steps // 5),
            },
            "tracking": {"backends": []},
            "experiment": {"root": str(root)},
            "paths": {"models_dir": options.models_dir},
        },
        "refine",
    )


def refine(target: str, adapter: Path, options: RefineOptions, root: Path) -> dict[str, Any]:
    """Train both runs; returns their final validation losses and experiment dirs."""
    from paw.train.recipe import run_training

    check_inputs(options.data_file, options.examples, "data")
    spec = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    r, alpha = int(spec["r"]), float(spec.get("lora_alpha") or spec["r"])
    config = _config(target, None, r, alpha, options, root)
    completed, start = complete_adapter(
        target,
        adapter,
        r,
        alpha,
        options.seed,
        root / ".transferred_init",
        guard_config=config,
        models_dir=options.models_dir,
    )
    results = {}
    for name, init in (("standard_init", None), ("transferred_init", completed)):
        if name == "transferred_init" and init is None:  # the guard dropped the moved weights: same run
            results[name] = {**results["standard_init"], "same_as": "standard_init"}
            continue
        result = run_training(
            _config(target, init and str(init), r, alpha, options, root),
            name=name,
            command="paw transfer --refine",
        )
        evals = result.report.get("evals") or [{}]
        results[name] = {
            "val_loss": evals[-1].get("eval_loss"),
            "experiment": str(result.experiment.dir),
            "adapter": str(result.experiment.final_model),
        }
    return {
        "examples": options.examples,
        "steps": options.steps,
        "learning_rate": options.learning_rate,
        "start": start,
        **results,
        "kept": kept_run(results),
    }


def kept_run(results: dict[str, Any]) -> str | None:
    """The run to use: ``transferred_init`` only where its validation loss is below the control's (a tie, or a
    start the guard dropped, keeps the control: the transfer has to earn its place); None without validation
    rows to judge by."""
    moved, control = results["transferred_init"].get("val_loss"), results["standard_init"].get("val_loss")
    if moved is None or control is None:
        return None
    return "transferred_init" if moved < control else "standard_init"


def check_inputs(
    data_file: str,
    examples: int,
    labels: str,
    flag: str = "--refine-data",
    data_settings: dict[str, Any] | None = None,
) -> None:
    """What a refine stage needs before anything is written: its data file, and with ``labels`` ``source`` rows
    that are prompts to answer (read with ``data_settings``' columns and format).

    Raises:
        PawError: a missing file, or (source) rows without a prompt, naming the file or row.
    """
    from paw.data.builtin import resolve_data_file

    if not resolve_data_file(data_file).is_file():
        raise PawError(f"{flag} {data_file}: file not found")
    if labels == "source":
        from paw.transfer.distill import prompt_rows

        settings = data_settings or {}
        prompt_rows(data_file, examples, _columns(settings), settings.get("format", "auto"))


def _columns(settings: dict[str, Any]) -> list[tuple[str, str]]:
    return list((settings.get("columns") or {}).items())


def refine_transferred(
    source: str,
    adapter: Path,
    output: Path,
    target: str,
    options: RefineOptions,
    labels: str = "data",
    temperature: float = 0.0,
) -> dict[str, Any]:
    """The refine stage of a transfer whose adapter is in ``output``: the labels (the data's own, or ``source``:
    the source base with its ``adapter`` answering the data's prompts, greedy or sampled at ``temperature``;
    ``paw.transfer.distill``), both runs under ``output/refine/``, and the result added to ``output``'s report.
    Returns that result (``refine``'s, plus ``labels``: what the source answered). ``paw transfer --refine-data``
    and the pipeline's refine stage both run this."""
    from paw.transfer.api import attach_refine

    answers = None
    if labels == "source":
        from paw.transfer.distill import source_answers

        answers = source_answers(
            source,
            Path(adapter),
            options.data_file,
            output / "refine" / "source_answers.jsonl",
            options.examples,
            models_dir=options.models_dir,
            temperature=temperature,
            seed=options.seed,
            columns=_columns(options.data_settings),
            data_format=options.data_settings.get("format", "auto"),
        )
        # the answered rows are written with paw's field names: no renaming when the refine reads them
        settings = {k: v for k, v in options.data_settings.items() if k != "columns"}
        options = replace(options, data_file=answers["file"], data_settings=settings)
    refined = {**refine(target, output, options, output / "refine"), "labels": answers or {"labels": "data"}}
    attach_refine(output, refined)
    return refined


SCALES = (0.0, 0.125, 0.25, 0.5, 1.0)
GUARD_EXAMPLES = 64


def _training_rows(config: Any) -> list[dict[str, list[int]]]:
    """Up to ``GUARD_EXAMPLES`` of the training examples ``config`` reads: the refine's own training split, never
    its validation rows."""
    from paw.data.sft import build_sft_data
    from paw.models.load import load_tokenizer
    from paw.models.resolve import resolve_model
    from paw.train.objectives import data_options

    tokenizer = load_tokenizer(resolve_model(config.model.name_or_path, config.paths.models_dir))
    return build_sft_data(data_options(config), tokenizer).train.examples[:GUARD_EXAMPLES]


def _mean_loss(model: Any, examples: list[dict[str, list[int]]]) -> float:
    """Mean token loss of ``model`` over ``examples`` (every answer token counts once)."""
    import torch

    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    with torch.no_grad():
        for example in examples:
            labels = torch.tensor([example["labels"]], device=device)
            counted = int((labels[:, 1:] != -100).sum())
            if counted:
                out = model(input_ids=torch.tensor([example["input_ids"]], device=device), labels=labels)
                total, tokens = total + float(out.loss) * counted, tokens + counted
    return total / max(tokens, 1)


def _guarded(model: Any, config: Any) -> tuple[float, dict[str, Any]]:
    """The scale of the moved weights (every ``lora_B``: the added modules' are 0) with the lowest loss on the
    refine's training rows, and each scale's loss; the model is left at that scale (on the CPU)."""
    import torch

    examples = _training_rows(config)
    model.eval()
    if torch.cuda.is_available():  # the forwards only; the adapter is saved from the CPU copy
        model.to("cuda")
    factors = [p for name, p in model.named_parameters() if "lora_B" in name]
    moved = [p.detach().clone() for p in factors]
    losses = {}
    for scale in SCALES:
        with torch.no_grad():
            for p, w in zip(factors, moved, strict=True):
                p.copy_(w * scale)
        losses[scale] = _mean_loss(model, examples)
    best = min(SCALES, key=lambda s: (losses[s], s))  # ties: the smaller scale
    with torch.no_grad():
        for p, w in zip(factors, moved, strict=True):
            p.copy_(w * best)
    model.to("cpu")
    return best, {"scale": best, "train_loss_by_scale": {str(s): round(v, 4) for s, v in losses.items()}}


def complete_adapter(
    target: str,
    adapter: Path,
    r: int,
    alpha: float,
    seed: int,
    out: Path,
    guard_config: Any = None,
    models_dir: str | None = None,
) -> tuple[Path | None, dict[str, Any]]:
    """``adapter`` widened to every linear module of ``target`` at rank ``r`` and ``alpha``: the standard LoRA
    initialisation (seeded; B = 0, so the added modules change nothing at the start), overwritten by the
    transferred update where it has one — re-factored to rank ≤ r (a fused module such as Phi-3's ``qkv_proj`` is
    written at 3r; its top r directions are kept) with the standard init's A rows filling a lower rank. So the
    refined run trains exactly the parameters its control trains. With ``guard_config`` (a refine's run config) the
    moved weights are scaled as the guard picks; returns the saved dir (None when the guard dropped them) and what
    the guard measured."""
    import torch
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    from paw.models.resolve import resolve_model
    from paw.transfer.adapter_io import PREFIX, read_lora
    from paw.transfer.linalg import rebalance

    moved = read_lora(adapter)  # its scale folded into B
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model(target, models_dir).location, dtype=torch.float32
    )
    torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules="all-linear", task_type="CAUSAL_LM")
    widened = get_peft_model(model, config)
    standard = get_peft_model_state_dict(widened)
    missing = [m for m in moved.modules if f"{PREFIX}{m}.lora_A.weight" not in standard]
    if missing:
        raise PawError(f"{adapter}: modules the target {target} does not have: {missing[:3]}")
    state = dict(standard)
    for module, factors in moved.modules.items():
        B, A = rebalance(factors.B, factors.A, r)
        keep = A.shape[0]
        a_key, b_key = f"{PREFIX}{module}.lora_A.weight", f"{PREFIX}{module}.lora_B.weight"
        state[a_key], state[b_key] = standard[a_key].clone(), torch.zeros_like(standard[b_key])
        state[a_key][:keep], state[b_key][:, :keep] = A, B * (r / alpha)  # the widened module scales by α/r
    set_peft_model_state_dict(widened, state)
    start: dict[str, Any] = {"scale": 1.0}
    if guard_config is not None:
        scale, start = _guarded(widened, guard_config)
        if scale == 0:
            return None, start
    widened.save_pretrained(str(out))
    return out, start
