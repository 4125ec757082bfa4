"""Read experiments back for ``paw exp list|show|compare``: only the files each run wrote (metadata.json,
config.yaml, results/*.json), never the models.

A summary is a flat, ordered mapping ``row name -> value`` so runs of any kind line up in one comparison table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from paw.errors import PawError
from paw.experiment.layout import continue_command
from paw.utils.io import read_json_or_none


def _read(path: Path) -> Any:
    if path.suffix != ".yaml":
        return read_json_or_none(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def experiment_dirs(root: str | Path) -> list[Path]:
    """Experiments directly under ``root`` (dirs with a metadata.json), oldest first."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise PawError(
            f"--root {root}: no such directory (experiments live in experiment.root, default experiments/)"
        )
    found = [p.parent for p in root.glob("*/metadata.json")]
    return sorted(found, key=lambda p: ((_read(p / "metadata.json") or {}).get("created") or "", p.name))


def find(ref: str, root: str | Path) -> Path:
    """An experiment by dir path or by name under ``root``."""
    path = Path(ref).expanduser()
    if not (path / "metadata.json").is_file():
        path = Path(root).expanduser() / ref
    if not (path / "metadata.json").is_file():
        raise PawError(f"no experiment '{ref}' (looked for {ref}/metadata.json and {path}/metadata.json)")
    return path


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}" if isinstance(value, (int, float)) else ""


def _pipeline_rows(exp: Path, meta: dict[str, Any]) -> dict[str, Any]:
    rows: dict[str, Any] = {
        "model": f"{meta.get('source')} → {meta.get('target')}",
        "task": ",".join(meta.get("tasks") or []),
    }
    results = _read(exp / "results" / "pipeline_results.json") or {}
    best = None
    for task, entry in (results.get("tasks") or {}).items():
        for name, row in entry["models"].items():
            rows[f"{task} {name} %"] = _pct(row["value"])
        rr = (entry.get("recovery_ratio") or {}).get("value")
        if "recovery_ratio" in entry:
            rows[f"{task} recovery ratio"] = f"{rr:.2f}" if rr is not None else "undefined"
        if "recovery_ratio_refined" in entry:
            refined = entry["recovery_ratio_refined"].get("value")
            rows[f"{task} RR refined"] = f"{refined:.2f}" if refined is not None else "undefined"
        if best is None and rr is not None:
            best = f"RR {rr:.2f} ({task})"
        elif best is None and "transferred" in entry["models"]:
            best = f"transferred {_pct(entry['models']['transferred']['value'])}% ({task})"
    rows["best"] = best or ""
    return rows


def _train_rows(exp: Path, meta: dict[str, Any]) -> dict[str, Any]:
    config = _read(exp / "config.yaml") or {}
    report = _read(exp / "results" / "training_report.json") or {}
    train_file = (
        (config.get("data") or {}).get("train_file") or (config.get("data") or {}).get("hub_dataset") or ""
    )
    peft = config.get("peft") or {}
    rows: dict[str, Any] = {
        "model": (config.get("model") or {}).get("name_or_path", ""),
        "task": Path(train_file).stem if train_file else "",
        "peft": f"{peft.get('method', '')} r={peft.get('r', '')}" if peft else "",
    }
    steps = report.get("steps") or []
    losses = [s["loss"] for s in steps if s.get("loss") is not None]
    evals = [e["eval_loss"] for e in report.get("evals") or [] if e.get("eval_loss") is not None]
    if steps:
        rows["steps"] = steps[-1]["step"]
    if losses:
        rows["train loss"] = f"{losses[0]:.4f} → {losses[-1]:.4f}"
    if evals:
        rows["best eval loss"] = f"{min(evals):.4f}"
    if report.get("tokens_per_s"):
        rows["tokens/s"] = report["tokens_per_s"]
    best = f"eval_loss {min(evals):.4f}" if evals else (f"loss {losses[-1]:.4f}" if losses else "")
    evaluated = _read(exp / "results" / "eval_results.json") or {}
    for task, metrics in (evaluated.get("tasks") or {}).items():
        for metric, value in metrics.items():
            if (
                isinstance(value, float)
                and not metric.endswith("_stderr")
                and metric not in ("seconds", "items_per_s", "tokens_per_s")
            ):
                rows[f"{task} {metric} %"] = _pct(value)
                if best.startswith(("eval_loss", "loss")):
                    best = f"{metric} {_pct(value)}% ({task})"
    rows["best"] = best
    return rows


def status(exp: Path, meta: dict[str, Any]) -> str:
    """The recorded status, except that a run recorded ``running`` whose writer is gone shows as ``killed``."""
    from paw.experiment.lock import live_holder

    recorded = meta.get("status", "?")
    if recorded == "running" and live_holder(exp) is None:
        return "killed"
    return recorded


def resume_command(exp: Path, meta: dict[str, Any]) -> str | None:
    """How to continue a run that stopped before the end (None: it finished, or is still running)."""
    if status(exp, meta) not in ("killed", "interrupted", "failed", "partial"):
        return None
    return meta.get("resume_command") or continue_command(
        exp, "pipeline" if meta.get("kind") == "pipeline" else "train"
    )


def summarize(exp: Path) -> dict[str, Any]:
    """Name, kind, status, model, task, best metric, time, then the kind's own rows."""
    meta = _read(exp / "metadata.json") or {}
    kind = meta.get("kind", "train")
    rows = _pipeline_rows(exp, meta) if kind == "pipeline" else _train_rows(exp, meta)
    seconds = meta.get("seconds") or meta.get("train_seconds")
    head = {
        "name": exp.name,
        "kind": kind,
        "status": status(exp, meta) + (f" at {meta['failed_step']}" if meta.get("failed_step") else ""),
        "model": rows.pop("model", ""),
        "task": rows.pop("task", ""),
        "best": rows.pop("best", ""),
        "time": f"{seconds:.0f} s" if isinstance(seconds, (int, float)) else "",
        "created": (meta.get("created") or "")[:19].replace("T", " "),
    }
    return {**head, **rows}
