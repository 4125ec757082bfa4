"""The ``paw`` command line. Commands import their heavy parts inside the function, so ``paw --help`` and config
errors never import torch.

Exit codes: 0 ok, 2 bad input (config/data/usage), 1 runtime failure.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from paw.cli.edge import _state, cli_errors
from paw.cli.exp_cmd import exp_app
from paw.cli.zoo_cmd import zoo_app
from paw.errors import PawError

app = typer.Typer(
    name="paw",
    help="PEFT fine-tuning, evaluation and LoRA weight transfer for LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    """Eager: `paw --version` works alone, before click asks for a command."""
    if value:
        from paw import __version__

        typer.echo(f"paw {__version__}")
        raise typer.Exit(0)


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    _state["debug"] = debug


app.add_typer(exp_app, name="exp")
app.add_typer(zoo_app, name="zoo")

ConfigArg = Annotated[Path | None, typer.Argument(help="Run config (YAML).", show_default=False)]
Overrides = Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. training.max_steps=10.")]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", help="Profile block to apply (e.g. local, server).")
]


# eval, infer and merge: an adapter on a base other than the one its config names is refused unless this is given
OtherBase = Annotated[
    bool,
    typer.Option("--other-base", help="Apply the adapter to --model although its config names another base."),
]


@app.command(context_settings={"allow_interspersed_args": True})
@cli_errors
def train(
    config: ConfigArg = None,
    overrides: Overrides = None,
    validate_only: Annotated[
        bool, typer.Option("--validate-only", help="Check everything, train nothing.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Build everything up to the first step, then stop.")
    ] = False,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue an experiment (dir or name) or a checkpoint dir.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Experiment name.")] = None,
    profile: ProfileOpt = None,
    resume_changed: Annotated[
        bool,
        typer.Option(
            "--resume-changed", help="Resume even though data, config, model or paw changed (recorded)."
        ),
    ] = False,
) -> None:
    """Train a PEFT adapter: paw train CONFIG, then optional key=value overrides."""
    from paw.cli import train_cmd

    train_cmd.train(
        config,
        overrides or [],
        validate_only,
        dry_run,
        resume,
        name,
        profile,
        " ".join(sys.argv),
        resume_changed,
    )


@app.command(name="eval")
@cli_errors
def eval_(
    experiment: Annotated[
        str | None,
        typer.Argument(help="An experiment (dir or name): evaluate its final adapter.", show_default=False),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Base model: alias, hub id, dir or paw-tiny/*.")
    ] = None,
    adapter: Annotated[str | None, typer.Option("--adapter", help="PEFT adapter dir to apply.")] = None,
    tasks: Annotated[str, typer.Option("--tasks", help="Comma-separated tasks, e.g. arc_easy,piqa.")] = "",
    data_file: Annotated[
        list[str] | None,
        typer.Option("--data-file", help="Local data: PATH (one task) or TASK=PATH; repeatable."),
    ] = None,
    sample_ratio: Annotated[
        float | None, typer.Option("--sample-ratio", min=0.0, max=1.0, help="Fraction (seeded).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most N examples per task (seeded).")
    ] = None,
    num_fewshot: Annotated[
        int, typer.Option("--num-fewshot", min=0, help="Solved examples in each prompt.")
    ] = 0,
    fewshot_file: Annotated[
        list[str] | None,
        typer.Option(
            "--fewshot-file",
            help="The task's training split, where few-shot examples come from: PATH or TASK=PATH; repeatable.",
        ),
    ] = None,
    batch_size: Annotated[
        str,
        typer.Option(
            "--batch-size",
            help="Rows per forward pass (a batch is also cut where its logits would pass 512 MiB), or 'auto': "
            "log-likelihood batches filling half the free memory by paw's estimate, 64 prompts on GPU (32 on CPU) "
            "for generation, halved on a GPU out-of-memory.",
        ),
    ] = "16",
    output: Annotated[
        Path | None, typer.Option("--output", help="Results dir (default: eval_results/<time>).")
    ] = None,
    log_samples: Annotated[bool, typer.Option("--log-samples", help="Write per-example JSONL.")] = False,
    backend: Annotated[
        str, typer.Option("--backend", help="native (paw's fast path) or lm-eval.")
    ] = "native",
    dtype: Annotated[str, typer.Option("--dtype", help="auto, bf16, fp16 or fp32.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed of --sample-ratio/--limit subsets.")] = 1234,
    other_base: OtherBase = False,
) -> None:
    """Evaluate a base model or base+adapter on benchmark tasks."""
    from paw.cli import eval_cmd

    eval_cmd.run(
        experiment,
        model,
        adapter,
        tasks,
        data_file or [],
        sample_ratio,
        limit,
        num_fewshot,
        batch_size,
        output,
        log_samples,
        backend,
        dtype,
        seed,
        other_base,
        fewshot_file or [],
    )


@app.command()
@cli_errors
def transfer(
    adapter: Annotated[str, typer.Option("--adapter", help="LoRA adapter dir trained on the source model.")],
    target: Annotated[
        str, typer.Option("--target", help="Target base model: alias, hub id, dir or paw-tiny/*.")
    ],
    output: Annotated[
        Path, typer.Option("--output", help="New dir for the target adapter (must not exist).")
    ],
    source: Annotated[
        str | None, typer.Option("--source", help="Source base model (default: the adapter's base).")
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="auto, direct, project, align, align-act or align-fit.")
    ] = "auto",
    depth: Annotated[str, typer.Option("--depth", help="Layer mapping: name, proportional or cka.")] = "name",
    k: Annotated[
        float | None,
        typer.Option("--k", help="Rank project maps through: an integer, or an energy fraction in (0, 1)."),
    ] = None,
    similarity_threshold: Annotated[
        float,
        typer.Option(
            "--similarity-threshold",
            min=0.0,
            max=1.0,
            help="The gate: minimum subspace similarity φ (tau); align-fit: minimum held-out fit R² per layer.",
        ),
    ] = 0.2,
    chance_multiple: Annotated[
        float,
        typer.Option(
            "--chance-multiple",
            min=0.0,
            help="φ must also be this many times the chance level k/d (not read by align-fit, which has no φ).",
        ),
    ] = 3.0,
    calibration_data: Annotated[
        str | None,
        typer.Option(
            "--calibration-data",
            help="align-act, align-fit: fit on this data's text (the task the adapter was trained for).",
        ),
    ] = None,
    refine_data: Annotated[
        str | None,
        typer.Option("--refine-data", help="Refine on this data (and train the same-budget control)."),
    ] = None,
    refine_examples: Annotated[
        int, typer.Option("--refine-examples", min=1, help="Training examples.")
    ] = 100,
    refine_steps: Annotated[int, typer.Option("--refine-steps", min=1, help="Optimizer steps.")] = 50,
    refine_labels: Annotated[
        str,
        typer.Option(
            "--refine-labels",
            help="data: refine on the data's answers; source: on the source adapter's answers to its prompts "
            "(no labels needed).",
        ),
    ] = "data",
    refine_temperature: Annotated[
        float,
        typer.Option(
            "--refine-temperature",
            min=0.0,
            help="With --refine-labels source: 0 answers greedily; above 0 samples one answer per row (for "
            "prompts with many right answers).",
        ),
    ] = 0.0,
) -> None:
    """Move a LoRA adapter from its source base model to a target base model."""
    from paw.cli.transfer_cmd import run_transfer

    run_transfer(
        adapter,
        target,
        output,
        source,
        method,
        depth,
        k,
        similarity_threshold,
        chance_multiple,
        calibration_data,
        refine_data,
        refine_examples,
        refine_steps,
        refine_labels,
        refine_temperature,
    )


@app.command()
@cli_errors
def validate(
    configs: Annotated[list[Path], typer.Argument(help="Config files to check.")],
    profile: ProfileOpt = None,
    schema_only: Annotated[
        bool, typer.Option("--schema-only", help="Check the config alone (no model/data).")
    ] = False,
) -> None:
    """Check configs: schema, paths, data format, model/LoRA compatibility, without training."""
    from paw.cli import train_cmd

    train_cmd.validate(configs, profile, schema_only)


@app.command()
@cli_errors
def doctor(
    output: Annotated[Path, typer.Option("--output", help="Where to write the report.")] = Path(
        "validation_report.json"
    ),
) -> None:
    """Check the environment (python, torch, CUDA, packages, disk, memory) → validation_report.json."""
    from paw.cli.doctor import run_doctor

    raise typer.Exit(run_doctor(output))


@app.command()
def models() -> None:
    """List model aliases, the built-in tiny models and the stand-ins of published models."""
    from rich.markup import escape
    from rich.table import Table

    from paw.cli.consoles import console
    from paw.models import shape, tiny
    from paw.models.resolve import aliases

    rows = []
    for family, spec in tiny.families().items():
        rows.append(
            (tiny.PREFIX + family, f"built locally (tiny {spec['model_type']}, like {spec['mirrors']})")
        )
    rows.append(
        (
            tiny.PREFIX + "<family>-<upgrade|deep|rotated>",
            "derived from the tiny model: trained further / twice as deep / rotated basis (transfer pairs)",
        )
    )
    for name, spec in shape.shapes().items():
        tokenizer = spec.get("tokenizer_note") or f"its real {spec['tokenizer']} tokenizer"
        rows.append(
            (
                f"{shape.PREFIX}{name}[@<layers>]",
                f"stand-in: {spec['mirrors']}'s shape ({spec['config']['num_hidden_layers']} layers), random "
                f"weights, {tokenizer}; needs `paw fetch-tokenizers` once",
            )
        )
    rows += list(aliases().items())
    table = Table()  # the names are typed next: never cut or wrapped; the descriptions wrap
    table.add_column("name", min_width=max(len(name) for name, _ in rows), no_wrap=True)
    table.add_column("resolves to", overflow="fold")
    for row in rows:
        table.add_row(*map(escape, row))  # `[@<layers>]` is text, not rich markup
    console(stderr=False).print(table)


@app.command(name="fetch-tokenizers")
@cli_errors
def fetch_tokenizers(
    sdist: Annotated[
        Path | None,
        typer.Option(
            "--sdist", help="A local copy of the pinned llama-cpp-python source archive (no download)."
        ),
    ] = None,
    index_url: Annotated[
        str | None, typer.Option("--index-url", help="Package index (default $PIP_INDEX_URL or PyPI).")
    ] = None,
) -> None:
    """Fetch the real tokenizers (Qwen2, Llama-3, Phi-3, Llama-2 SentencePiece) that paw-shape/* stand-ins use."""
    from paw.cli.consoles import console
    from paw.models.real_tokenizers import fetch_tokenizers as fetch

    for name, path in fetch(sdist, index_url).items():
        console().print(f"[green]ok[/] {name} → {path}")


@app.command(context_settings={"allow_interspersed_args": True})
@cli_errors
def pipeline(
    config: Annotated[
        Path, typer.Argument(help="Pipeline config (YAML), e.g. configs/pipeline/quick_test.yaml.")
    ],
    overrides: Overrides = None,
    quick_test: Annotated[
        bool, typer.Option("--quick-test", help="Shrink every step (pipeline.quick_test) for a smoke run.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the pipeline named by --name, else the newest one made from this config.",
        ),
    ] = False,
    steps: Annotated[
        str | None, typer.Option("--steps", help="Run only these steps, e.g. 1,3,5 or 4-7.")
    ] = None,
    seeds: Annotated[
        int | None, typer.Option("--seeds", min=1, help="Train (and transfer) with this many seeds.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Experiment name.")] = None,
    profile: ProfileOpt = None,
) -> None:
    """The transfer study: eval source base, train source LoRA, transfer, eval target base, eval transferred,
    train target LoRA, eval it; cached per step, resumable, with a report. Several GPUs:
    torchrun --nproc_per_node N -m paw pipeline CONFIG."""
    from paw.cli import pipeline_cmd

    pipeline_cmd.pipeline(
        config, overrides or [], quick_test, resume, steps, seeds, name, profile, " ".join(sys.argv)
    )


@app.command()
@cli_errors
def infer(
    model: Annotated[
        str | None, typer.Option("--model", help="Base or merged model (default: the adapter's base).")
    ] = None,
    adapter: Annotated[str | None, typer.Option("--adapter", help="PEFT adapter dir.")] = None,
    input_text: Annotated[
        str | None, typer.Option("--input-text", help="One prompt (streamed to the terminal).")
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input-file", help=".txt (a prompt per line) or .jsonl (prompt/instruction/messages)."
        ),
    ] = None,
    output_file: Annotated[
        Path | None, typer.Option("--output-file", help="Write results here (JSON).")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 128,
    temperature: Annotated[float, typer.Option("--temperature", min=0, help="0: greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option("--top-p", min=0, max=1)] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    template: Annotated[
        str,
        typer.Option(
            "--template",
            help="auto (as the adapter was trained, else chat if the model has a template), chat, alpaca or raw.",
        ),
    ] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="auto, bf16, fp16 or fp32.")] = "auto",
    other_base: OtherBase = False,
) -> None:
    """Generate with a base model (+ adapter): one --input-text, or a batch from --input-file."""
    from paw.cli.infer_cmd import infer as run

    run(
        model,
        adapter,
        input_text,
        input_file,
        output_file,
        max_new_tokens,
        temperature,
        top_p,
        seed,
        batch_size,
        template,
        dtype,
        other_base,
    )


@app.command()
@cli_errors
def export(
    source: Annotated[
        str, typer.Argument(help="An adapter dir, or an experiment (dir or name) with a final adapter.")
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="gguf (merged model + LoRA as GGUF, for llama.cpp), ollama (GGUF + Modelfile), vllm (the adapter, "
            "checked for vLLM, and its serve command) or merged (safetensors, as paw merge).",
        ),
    ],
    output: Annotated[Path, typer.Option("--output", help="New dir for the exported files.")],
    outtype: Annotated[str, typer.Option("--outtype", help="GGUF weights: f16, bf16, q8_0 or f32.")] = "f16",
    model: Annotated[
        str | None, typer.Option("--model", help="Base model (default: the adapter's base).")
    ] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="Merge in auto, bf16, fp16 or fp32.")] = "auto",
    other_base: OtherBase = False,
) -> None:
    """Export a trained adapter for serving: GGUF for llama.cpp, GGUF + Modelfile for Ollama, or merged weights."""
    from paw.cli.consoles import console
    from paw.export.api import export as run_export

    info = run_export(source, fmt, output, outtype, model, dtype, other_base)
    out = console()
    out.print(f"[green]exported[/] {info['source']} as {fmt} → {output}")
    for name in info["files"]:
        out.print(f"  {output / name}")
    if "adapter_gguf" in info:
        out.print(f"  [yellow]note:[/] adapter GGUF {info['adapter_gguf']}")
    if fmt == "ollama":
        out.print(f"  run: ollama create {output.name} -f {output / 'Modelfile'}")
    elif fmt == "gguf":
        out.print(f"  run: llama-cli -m {output / next(iter(info['files']))} -cnv")
    elif fmt == "vllm":
        if info["unfused"]:
            out.print(f"  Phi-3's fused {', '.join(info['unfused'])} split into their parts")
        out.print(f"  run: {info['serve']}")


@app.command()
@cli_errors
def merge(
    adapter: Annotated[str, typer.Option("--adapter", help="PEFT adapter dir (LoRA, DoRA, AdaLoRA, IA3).")],
    output: Annotated[Path, typer.Option("--output", help="New dir for the merged model.")],
    model: Annotated[
        str | None, typer.Option("--model", help="Base model (default: the adapter's base).")
    ] = None,
    dtype: Annotated[
        str, typer.Option("--dtype", help="auto, bf16, fp16 or fp32 (never quantized).")
    ] = "auto",
    max_shard_size: Annotated[str, typer.Option("--max-shard-size", help="e.g. 2GB, 500MB.")] = "2GB",
    unfused_adapter: Annotated[
        bool,
        typer.Option(
            "--unfused-adapter",
            help="Instead of merging: write the adapter with Phi-3's fused qkv_proj/gate_up_proj split into "
            "q/k/v/gate/up_proj (exact), for servers such as vLLM.",
        ),
    ] = False,
    other_base: OtherBase = False,
) -> None:
    """Merge an adapter into its base model and save a standalone model (safetensors) with its tokenizer."""
    from paw.cli.consoles import console
    from paw.models.merge import merge_adapter

    if unfused_adapter:
        from paw.transfer.unfuse import unfuse_adapter

        done = unfuse_adapter(adapter, output, model)
        console().print(f"[green]unfused[/] {done['from']} modules into {done['modules']} → {output}")
        return

    info = merge_adapter(adapter, output, model, dtype, max_shard_size, other_base=other_base)
    out = console()
    if other_base and info["adapter_trained_on"] not in (None, model):
        out.print(
            f"[yellow]warning:[/] the adapter was trained on {info['adapter_trained_on']}; merged into {model} "
            "(--other-base) because its modules fit"
        )
    out.print(
        f"[green]merged[/] {info['adapter_type']} adapter into {info['base']} ({info['dtype']}) → {output}"
    )


@app.command()
@cli_errors
def download(
    name: Annotated[str, typer.Argument(help="An alias (see paw models) or a hub id (org/name).")],
    models_dir: Annotated[
        Path, typer.Option("--models-dir", help="Where models live (paths.models_dir); default ./models.")
    ] = Path("models"),
    revision: Annotated[str | None, typer.Option("--revision", help="Branch, tag or commit.")] = None,
    allow_bin: Annotated[
        bool, typer.Option("--allow-bin", help="Also fetch pickled .bin weights (default: safetensors only).")
    ] = False,
) -> None:
    """Download a model into --models-dir/<name> (resumable); then set paths.models_dir to use it offline."""
    from paw.cli.consoles import console
    from paw.models.download import download as fetch

    result = fetch(name, models_dir, revision, allow_bin)
    console().print(
        f"[green]downloaded[/] {result['hub_id']} → {result['path']} ({len(result['files'])} files); "
        f"use it with paths.models_dir={models_dir}",
    )


@app.command()
@cli_errors
def synth(
    output: Annotated[Path, typer.Argument(help="Output .jsonl file.")],
    rows: Annotated[int, typer.Option("--rows", min=1, help="Number of rows.")] = 500,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    schema: Annotated[
        str,
        typer.Option(
            "--schema",
            help="alpaca (instructions), preference (chosen/rejected pairs: DPO), kto (completions labelled "
            "true/false), prompts (prompts with an answer: GRPO), or a task's native multiple-choice schema "
            "(arc_easy, piqa, ...).",
        ),
    ] = "alpaca",
) -> None:
    """Write synthetic data as JSONL: instructions, preference pairs, KTO rows, GRPO prompts, or multiple choice in
    a benchmark's schema; each with a rule a tiny model can learn."""
    from paw.data.synthetic import generate_alpaca, write_jsonl
    from paw.data.synthetic_mc import GENERATORS, generate_mc
    from paw.data.synthetic_preference import generate_kto, generate_preference_pairs, generate_prompts

    makers = {
        "alpaca": generate_alpaca,
        "preference": generate_preference_pairs,
        "kto": generate_kto,
        "prompts": generate_prompts,
    }
    if output.exists():
        raise PawError(f"{output}: already exists; choose another path")
    if schema not in makers and schema not in GENERATORS:
        from paw.utils.suggest import did_you_mean

        known = [*makers, *GENERATORS]
        raise PawError(
            f"--schema '{schema}' is unknown{did_you_mean(schema, known)}; choose from {', '.join(known)}"
        )
    write_jsonl(makers[schema](rows, seed) if schema in makers else generate_mc(schema, rows, seed), output)
    typer.echo(f"wrote {rows} rows to {output}")


@app.command()
@cli_errors
def demo(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where the demo writes its data and experiments.")
    ] = Path("demo_run"),
    zoo: Annotated[
        str | None,
        typer.Option(
            "--zoo",
            help="SOURCE:TARGET zoo models (after `paw zoo build`), e.g. gemma2:qwen2-s: a transfer between "
            "two families pretrained here.",
        ),
    ] = None,
) -> None:
    """Offline demo: the transfer pipeline end to end on tiny models (about a minute on a CPU)."""
    from paw.cli.demo import run_demo

    run_demo(workdir, zoo)


def run() -> None:
    try:
        app()
    except SystemExit as done:
        if not done.code:
            _close_process_group()
        raise
    _close_process_group()


def _close_process_group() -> None:
    """After a command that finished under torchrun/accelerate launch, tear the process group down before the
    interpreter exits: left to static destruction its background threads can abort a rank that had finished
    (SIGABRT, "terminate called without an active exception"), failing a run that succeeded."""
    torch = sys.modules.get("torch")  # a command that never imported torch started no process group
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
