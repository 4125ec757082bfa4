"""Training outputs: ``results/training_results.json``, ``results/training_report.json``, loss/lr plots and
``report.md``."""

from __future__ import annotations

import math
import resource
import sys
from typing import Any

from paw.config.schema import RunConfig
from paw.experiment.layout import Experiment
from paw.train.callbacks import RunRecorder
from paw.utils.io import atomic_write_json, atomic_write_text
from paw.utils.plan import plan_text


def peak_memory_mb(torch) -> dict[str, float]:
    """Peak host RSS, and peak CUDA memory allocated when on a GPU."""
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = {"host_rss_mb": round(rss_kb / (1024 if sys.platform != "darwin" else 1024**2), 1)}
    if torch.cuda.is_available():
        peak["cuda_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def steps_from_history(
    log_history: list[dict[str, Any]], recorder: RunRecorder
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-step records (with the objective's metrics, ``recorder.reported``) from the Trainer's log history,
    which a resumed run restores from its checkpoint, so the report covers the whole run; tokens/s is known for
    the steps this process ran."""
    speed = {s["step"]: s["tokens_per_s"] for s in recorder.steps}
    steps, evals = [], []
    for entry in log_history:
        if "loss" in entry:
            steps.append(
                {
                    "step": entry["step"],
                    "loss": _finite(entry["loss"]),
                    "lr": entry.get("learning_rate"),
                    "grad_norm": _finite(entry.get("grad_norm")),
                    "tokens_per_s": speed.get(entry["step"]),
                    "epoch": round(entry.get("epoch", 0.0), 4),
                }
                | {k: _finite(entry[k]) for k in recorder.reported if k in entry}
            )
        elif "eval_loss" in entry:
            evals.append({k: _finite(v) for k, v in entry.items() if k == "step" or k.startswith("eval_")})
    return steps, evals


def plot_curves(
    exp: Experiment, steps: list[dict[str, Any]], evals: list[dict[str, Any]], reported: tuple[str, ...] = ()
) -> list[str]:
    """Loss and LR curves as PNGs, and the objective's metrics (``reported``: reward accuracy and margins, mean
    reward and KL) in one more; returns the files written (none when matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    exp.plots.mkdir(parents=True, exist_ok=True)
    written = []
    xs = [s["step"] for s in steps]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(xs, [s["loss"] for s in steps], label="train loss")
    if evals:
        ax.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], "o-", label="val loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(exp.plots / "loss.png", dpi=100)
    plt.close(fig)
    written.append("plots/loss.png")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(xs, [s["lr"] for s in steps])
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(exp.plots / "lr.png", dpi=100)
    plt.close(fig)
    written.append("plots/lr.png")
    metrics = [k for k in reported if any(k in s for s in steps)]
    if metrics:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for key in metrics:
            points = [(s["step"], s[key]) for s in steps if s.get(key) is not None]
            ax.plot([p[0] for p in points], [p[1] for p in points], label=key)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(exp.plots / "objective.png", dpi=100)
        plt.close(fig)
        written.append("plots/objective.png")
    return written


def write_reports(
    exp: Experiment,
    *,
    config: RunConfig,
    recorder: RunRecorder,
    log_history: list[dict[str, Any]],
    train_metrics: dict[str, Any],
    final_eval: dict[str, Any],
    checkpoints: list[int],
    switches: list[int],
    seconds: float,
    peak_mb: dict[str, float],
    resumed_from: str | None,
    plan: dict[str, Any],
) -> dict[str, Any]:
    steps, evals = steps_from_history(log_history, recorder)
    tokens_per_s = round(recorder.tokens_seen / recorder.train_seconds, 1) if recorder.train_seconds else None
    results = {
        "train": {k: _finite(v) for k, v in train_metrics.items()},
        "final_eval": {k: _finite(v) for k, v in final_eval.items()},
        "final_model": str(exp.final_model),
    }
    atomic_write_json(exp.results / "training_results.json", results)
    from paw.train.checkpoint import list_checkpoints

    report = {
        "experiment": exp.name,
        "plan": plan,
        "steps": steps,
        "evals": evals,
        "lr_switch_steps": switches,
        "checkpoints_written": checkpoints,
        "checkpoints_on_disk": [step for step, _ in list_checkpoints(exp.checkpoints)],
        "resumed_from": resumed_from,
        "wall_seconds": round(seconds, 2),
        "tokens_seen": recorder.tokens_seen,
        "tokens_per_s": tokens_per_s,
        "peak_memory_mb": peak_mb,
        "objective": config.training.objective,
        "objective_metrics": list(recorder.reported),
    }
    report["plots"] = plot_curves(exp, steps, evals, recorder.reported)
    atomic_write_json(exp.results / "training_report.json", report)
    atomic_write_text(exp.report, _markdown(exp, config, report, results))
    return report


SMOOTH = 5  # logged steps averaged at each end of the loss summary


def loss_span(steps: list[dict[str, Any]]) -> str:
    """'2.3412 → 0.8120 (mean of the first/last 5 logged steps)': a run's loss as a person compares it; one
    logged step is noise."""
    losses = [s["loss"] for s in steps if isinstance(s.get("loss"), int | float)]
    if not losses:
        return "n/a"
    k = min(SMOOTH, max(1, len(losses) // 2))
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    return f"{first:.4f} → {last:.4f} (mean of the first/last {k} logged step{'s' if k > 1 else ''})"


def _memory(peak: dict[str, float]) -> str:
    names = {"host_rss_mb": "host RSS", "cuda_allocated_mb": "CUDA"}
    return "; ".join(f"{names.get(k, k)} {v:,.0f} MB" for k, v in peak.items()) or "n/a"


def _number(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else "n/a"


def _last_metrics(report: dict[str, Any]) -> str:
    """'; last logged: rewards/accuracies 0.9375, rewards/margins 1.2040' (the objective's metrics, if any)."""
    last = report["steps"][-1] if report["steps"] else {}
    shown = [f"{k} {_number(last.get(k), '.4f')}" for k in report["objective_metrics"] if k in last]
    return f"; last logged: {', '.join(shown)}" if shown else ""


def _markdown(exp: Experiment, config: RunConfig, report: dict[str, Any], results: dict[str, Any]) -> str:
    switches = report["lr_switch_steps"]
    lines = [
        f"# {exp.name}",
        "",
        f"- model: `{config.model.name_or_path}`; peft: {report['plan']['peft']}",
        f"- steps: {plan_text('max_steps', report['plan']['max_steps'])}; global batch "
        f"{plan_text('global_batch', report['plan']['global_batch'])}; "
        f"LR switches: {'at step ' + ', '.join(map(str, switches)) if switches else 'none'}",
        f"- objective: {config.training.objective}; loss: {loss_span(report['steps'])}",
        f"- validation loss: {_number(results['final_eval'].get('eval_loss'), '.4f')}{_last_metrics(report)}",
        f"- checkpoints written: {len(report['checkpoints_written'])}; on disk: {len(report['checkpoints_on_disk'])}",
        f"- throughput: {_number(report['tokens_per_s'], ',.0f')} tokens/s; peak memory: "
        f"{_memory(report['peak_memory_mb'])}",
        "- final adapter: `models/final_model`",
        "",
    ]
    lines += [f"![{p}]({p})" for p in report.get("plots", [])]
    return "\n".join(lines) + "\n"
