"""``paw demo``: the whole transfer study offline in about a minute on a CPU.

Runs the quick-test pipeline (``paw/pipeline/quick_test.yaml``): builds ``paw-tiny/qwen2`` and its further-trained
"upgrade", generates synthetic ARC-style data, then the seven steps — eval the source base, train a LoRA on it,
transfer the LoRA to the upgrade, eval the upgrade's base, eval the transferred adapter, train the upgrade's own
LoRA, eval it — and prints the results table and where the report is. Everything lands in ``--workdir``.

``--zoo SOURCE:TARGET`` runs the same steps between two models of the zoo (``paw zoo build``): pretrained here,
independently, in different families with different tokenizers, on the HellaSwag-style synthetic task (one right
ending per context). The adapter is moved with ``align`` (proportional depth, the similarity gate opened: it
refuses every unit between these models so far), then refined for 200 steps on the source adapter's answers to 200
training prompts, beside the same-budget control from the standard init (steps 8 and 9). The ARC-style task of
the default demo has many right words per question, and the source's greedy answers teach only the likeliest one
(docs/transfer.md).
"""

from __future__ import annotations

import time
from pathlib import Path

from paw.cli import consoles

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "pipeline" / "quick_test.yaml"


def zoo_overrides(pair: str) -> list[str]:
    """The quick-test pipeline's overrides for a transfer between two zoo models (both must be built)."""
    from paw.errors import PawError
    from paw.models.zoo import PREFIX, zoo_model_dir

    source, _, target = pair.partition(":")
    if not source or not target:
        raise PawError(f"--zoo {pair}: give SOURCE:TARGET, e.g. --zoo gemma2:qwen2-s")
    for name in (source, target):
        zoo_model_dir(name)  # built, or one line saying how
    # Between independently trained models paw's gate refuses every unit so far (benchmarks/RESULTS.md, the zoo
    # study): the demo opens it, so the pipeline runs to the end and shows what align carries, RR included.
    return [
        f"source.name_or_path={PREFIX}{source}",
        f"target.name_or_path={PREFIX}{target}",
        "transfer.method=align",
        "transfer.depth=proportional",
        "transfer.similarity_threshold=0",
        "transfer.chance_multiple=0",
        # align alone carries nothing between these families; the source adapter's answers do (RESULTS.md)
        "transfer.refine.steps=200",
        "transfer.refine.examples=200",
        "transfer.refine.labels=source",
        "data.train_file=paw-synth/hellaswag-train",
        "eval.tasks=[hellaswag]",
        "eval.data_files={hellaswag: paw-synth/hellaswag}",
        "data.max_length=128",
    ]


def run_demo(workdir: Path, zoo: str | None = None) -> None:
    from paw.cli.pipeline_cmd import results_table
    from paw.config.loader import load_config
    from paw.config.pipeline_schema import PipelineConfig
    from paw.pipeline.report import delta_text, kept_text, rr_text
    from paw.pipeline.scheduler import run_pipeline
    from paw.utils.hf import quiet_hf
    from paw.utils.io import read_json

    console = consoles.console(stderr=False, piped_width=120)
    started = time.perf_counter()
    quiet_hf()
    root = (workdir / "experiments").resolve()
    overrides = [f"experiment.root={root}", *(zoo_overrides(zoo) if zoo else [])]
    config = load_config(DEMO_CONFIG, overrides, schema=PipelineConfig)
    kind = "models pretrained here, align with the gate open, then a refine" if zoo else "tiny models"
    console.print(
        f"[bold]paw demo[/]: transfer a LoRA from {config.source.name_or_path} to {config.target.name_or_path} "
        f"(offline, {kind}, synthetic {'HellaSwag' if zoo else 'ARC'}-style questions; config {DEMO_CONFIG})"
    )
    result = run_pipeline(
        config, name=f"demo_{time.strftime('%Y%m%d-%H%M%S')}", config_stem="quick_test", command="paw demo"
    )
    exp = result.experiment
    results = read_json(exp.results / "pipeline_results.json")
    console.print(results_table(results))
    for task, entry in results["tasks"].items():
        models = entry["models"]
        rr = entry.get("recovery_ratio") or {}
        console.print(
            f"{task}: the source LoRA lifts {config.source.name_or_path} from {models['source_base']['value']:.1%} "
            f"to {models['source_lora']['value']:.1%}; moved to {config.target.name_or_path} without training it "
            f"scores {models['transferred']['value']:.1%}, against {models['target_lora']['value']:.1%} for a "
            f"LoRA trained there"
            + (f" (recovery ratio {rr['value']:.2f})" if rr.get("value") is not None else "")
        )
        if "refined" in models:
            refine = config.transfer.refine
            gain = entry["refined_vs_control"]
            console.print(
                f"{task}: refined for {refine.steps} steps on "
                + (
                    f"the source adapter's {'sampled' if refine.temperature else 'greedy'} answers to "
                    if refine.labels == "source"
                    else ""
                )
                + f"{refine.examples} training prompts it scores {models['refined']['value']:.1%} (recovery ratio "
                f"{rr_text(entry.get('recovery_ratio_refined'))}); the same budget from the standard init "
                f"{models['refine_control']['value']:.1%} (refined − control {delta_text(gain)} points; "
                f"{kept_text(entry['refine_start_scales'])})"
            )
        kept = entry.get("refine_kept")
        if kept is not None:
            console.print(
                f"{task}: keeping per seed the run with the lower validation loss ({', '.join(kept['runs'])}) "
                f"scores {kept['value']:.1%} ({delta_text(kept['vs_control'])} points against the control)"
            )
    console.print(f"report: {exp.report}")
    console.print(f"tables: {exp.results / 'pipeline_results.md'} (.json, .csv); plots: {exp.plots}")
    console.print(f"done in {time.perf_counter() - started:.0f} s")
