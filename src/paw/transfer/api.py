"""``paw transfer`` as a function: source adapter + source base + target base → a PEFT adapter for the target,
plus ``transfer_report.json`` and ``transfer_report.md``.

Per unit (one projection of one layer): map the layer, read the two base weights (streamed, fp32), take their
top-k singular subspaces, and gate on the **chance-relative subspace similarity**: the unit transfers only when
``φ_out ≥ max(τ, c·k/d_out)`` and ``φ_in ≥ max(τ, c·k/d_in)`` (``k/d`` is what two unrelated bases give). Then
the method maps ΔW, the result is re-balanced to rank ≤ r, and units are assembled into target modules.
When no unit passes, only the report is written (and a rerun may replace it); otherwise the output dir must
not exist.
"""

from __future__ import annotations

import resource
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from paw.errors import PawError
from paw.models.chat import carry_prompt_spec
from paw.transfer import linalg
from paw.transfer.adapter_io import LoraAdapter, LoraModule, read_lora, write_lora
from paw.transfer.mapping import Unit, adapter_units, base_weight, layer_map, target_modules
from paw.transfer.methods import CALIBRATED, FIT_METHOD, Method, SkipUnit, load_method, pick
from paw.transfer.weights import WeightStore, local_model_dir
from paw.utils.io import apply_umask, atomic_write_json, atomic_write_text, check_writable

# Defaults, from benchmarks/transfer_quality.py on the tiny pairs: related bases give φ ≈ 1, unrelated ones
# φ ≈ k/d; a unit must be 3× above chance and at least 0.2.
DEFAULT_TAU = 0.2
DEFAULT_CHANCE_MULTIPLE = 3.0


@dataclass(frozen=True)
class TransferOptions:
    method: str = "auto"
    depth: str = "name"
    k: float | None = (
        None  # rank of the subspaces: an int, or an energy fraction in (0, 1); None: 4r capped at d/4
    )
    tau: float = DEFAULT_TAU
    chance_multiple: float = DEFAULT_CHANCE_MULTIPLE
    calibration_data: str | None = None  # align-act, align-fit: a data file whose text they are fitted on


def _k_for(weight_s, weight_t, r: int, k: float | None) -> int:
    """Subspace rank: None -> the gate's rank (4r capped at d/4); an int; or an energy fraction of W_t."""
    smallest = min(*weight_s.shape, *weight_t.shape)
    if k is None:
        return max(1, min(4 * r, smallest // 4))
    if 0 < k < 1:
        return min(linalg.rank_for_energy(weight_t, k, cap=min(512, smallest)), smallest)
    return max(1, min(int(k), smallest))


def _unit_record(unit: Unit, target: Unit | None, source_path: str, module: LoraModule) -> dict[str, Any]:
    return {
        "unit": f"layer {unit.layer} {unit.kind}",
        "source_module": source_path,
        "source_layer": unit.layer,
        "target_layer": target.layer if target else None,
        "kind": unit.kind,
        "adapter_shape": list(module.shape),
        "rank": module.rank,
    }


@dataclass(frozen=True)
class _Run:
    """What every unit of one transfer shares."""

    lora: LoraAdapter
    source: str
    store_s: WeightStore
    store_t: WeightStore
    options: TransferOptions
    method: Method | None  # the method asked for; None for auto (picked per unit)
    context: dict[str, Any]  # what that method precomputed for every unit (align: the residual maps)


def transfer(
    adapter: str | Path,
    target: str,
    output: str | Path,
    source: str | None = None,
    options: TransferOptions = TransferOptions(),
    models_dir: str | None = None,
) -> dict[str, Any]:
    """Transfer a LoRA adapter to ``target``; returns the report (also written next to the adapter)."""
    started = time.perf_counter()
    if options.calibration_data is not None and options.method not in CALIBRATED:
        raise PawError(
            f"--calibration-data is read by --method {' and '.join(CALIBRATED)} only (this run: --method "
            f"{options.method})"
        )
    if options.k is not None and options.method == FIT_METHOD:
        raise PawError(
            f"--k sets the rank of the subspaces the weight-space methods compare and map through; --method "
            f"{FIT_METHOD} has none (its adapter takes the source adapter's rank): drop --k"
        )
    output = Path(output)
    if output.exists() and not _only_a_failed_report(output):
        raise PawError(
            f"--output {output} already exists; choose a new dir (paw never overwrites an adapter)"
        )
    check_writable(output, "--output")  # before any weight is read
    fitted = options.method == FIT_METHOD
    method = None if options.method == "auto" or fitted else load_method(options.method)
    lora = read_lora(adapter)
    source = _source_of(lora, source, models_dir)
    store_s = WeightStore(local_model_dir(source, models_dir, "source"), "source")
    store_t = WeightStore(local_model_dir(target, models_dir, "target"), "target")
    run = _Run(
        lora,
        source,
        store_s,
        store_t,
        options,
        method,
        method.prepare(store_s, store_t, options) if method else {},
    )
    mapping, cka_scores = _layer_mapping(store_s, store_t, options.depth)
    if fitted:
        from paw.transfer.fit import fit_adapter

        collected, records, figures = fit_adapter(adapter, lora, store_s, store_t, mapping, options)
        run.context.update(figures)
    else:
        collected, records = _moved_units(run, mapping)
    passed = sum(1 for r in records if r["status"] == "transferred")
    report = {
        "status": "transferred" if collected else "failed",
        "adapter": str(adapter),
        "source": source,
        "target": target,
        "options": asdict(options),
        "layer_map": {str(k): v for k, v in mapping.items()},
        "cka": [[round(v, 4) for v in row] for row in cka_scores] if cka_scores else None,
        "shared_tokens": run.context.get("shared_tokens"),
        "ambiguous_tokens": run.context.get("ambiguous_tokens"),
        # align-act's and align-fit's calibration positions
        "paired_positions": run.context.get("paired_positions"),
        "calibration_rows": run.context.get("calibration_rows"),  # of them, rows of --calibration-data
        "units": len(records),
        "transferred": passed,
        "skipped": len(records) - passed,
        "energy_kept_mean": round(
            sum(r.get("energy_kept", 0.0) for r in records if r["status"] == "transferred") / max(passed, 1),
            4,
        ),
        # align-fit: the held-out share of the wanted change its fits reproduce, mean over the matched layers
        "fit_r2_mean": round(sum(r["fit_r2"] for r in records) / len(records), 4)
        if fitted and records
        else None,
        "seconds": round(time.perf_counter() - started, 3),
        "peak_host_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "modules": records,
    }
    staging = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    if collected:
        write_lora(staging, target_modules(collected, store_t), lora.r, target)
        carry_prompt_spec(
            adapter, local_model_dir(target, models_dir, "target"), staging
        )  # prompted as trained
    _write_report(staging, report)
    shutil.rmtree(output, ignore_errors=True)  # only ever a failed report (checked above)
    staging.rename(output)
    if not collected:
        hint = (
            "a lower --similarity-threshold (the held-out fit R² a layer must reach) or another --depth may help"
            if fitted
            else "a lower --similarity-threshold/--chance-multiple or another --depth may help; φ near chance "
            "means the bases are unrelated"
        )
        raise PawError(
            f"no module passed the transfer checks, so no adapter was written: {top_reasons(records)}. "
            f"Per-unit figures: {output / 'transfer_report.md'} ({hint})"
        )
    return report


def _moved_units(
    run: _Run, mapping: dict[int, int | None]
) -> tuple[dict[Unit, LoraModule], list[dict[str, Any]]]:
    """Every unit of the adapter moved by the run's method: the target modules and a record per unit."""
    records, collected = [], {}
    for unit, (path, module) in sorted(adapter_units(run.lora.modules, run.store_s).items(), key=_unit_order):
        target_unit, record, moved = _transfer_unit(unit, path, module, mapping.get(unit.layer), run)
        records.append(record)
        if moved is not None:  # proportional depth: several source layers on one target layer are summed
            collected[target_unit] = _summed(collected.get(target_unit), moved, run.lora.r)
    return collected, records


def _unit_order(item: tuple[Unit, Any]) -> tuple[int, str]:
    return item[0].layer, item[0].kind


def _source_of(lora: LoraAdapter, source: str | None, models_dir: str | None) -> str:
    """The source base: the one the adapter names; a --source naming another model is refused."""
    if source and lora.base_model:
        from paw.models.resolve import same_model

        if same_model(source, lora.base_model, models_dir) is False:
            raise PawError(
                f"--source {source} is not the base the adapter was trained on ({lora.base_model}, its "
                "adapter_config.json): the subspaces would be compared against the wrong weights; drop --source"
            )
    source = source or lora.base_model
    if not source:
        raise PawError("--source: the adapter config names no base model; pass --source")
    return source


def _layer_mapping(
    store_s: WeightStore, store_t: WeightStore, depth: str
) -> tuple[dict[int, int | None], list[list[float]] | None]:
    """Source layer -> target layer (None: no counterpart), and the CKA matrix when ``depth`` is cka."""
    if depth == "cka":
        from paw.transfer.cka import cka_layer_map

        return cka_layer_map(store_s.dir, store_t.dir)
    return layer_map(store_s.num_layers, store_t.num_layers, depth), None


def _transfer_unit(
    unit: Unit, path: str, module: LoraModule, target_layer: int | None, run: _Run
) -> tuple[Unit | None, dict[str, Any], LoraModule | None]:
    """One unit: map its layer, gate on subspace similarity, move ΔW with the method. Returns the target unit,
    the unit's report record and the moved factors (None when skipped, the reason in the record)."""
    w_s = base_weight(run.store_s, unit)
    if module.shape != tuple(w_s.shape):
        raise PawError(
            f"--source {run.source} is not this adapter's base: {path} ({unit.kind}) is {module.shape} in the "
            f"adapter but {tuple(w_s.shape)} in the source model"
        )
    target = Unit(target_layer, unit.kind) if target_layer is not None else None
    record = _unit_record(unit, target, path, module)
    if target is None:
        record.update(status="skipped", reason=f"target has {run.store_t.num_layers} layers")
        return None, record, None
    w_t = base_weight(run.store_t, target)
    name = pick(run.options.method, tuple(w_s.shape) == tuple(w_t.shape))
    method = run.method or load_method(name)
    # The gate always compares the dominant subspaces (small k, so chance k/d stays low); --k sets the rank of
    # the subspaces `project` maps through. A method may compare in the target's frame (align: Ũ_s = M U_s).
    k = _k_for(w_s, w_t, run.lora.r, None)
    (U_s, V_s), (U_t, V_t) = linalg.top_singular(w_s, k), linalg.top_singular(w_t, k)
    # what a method's hooks may ask of this unit: the run's context and the unit with its counterpart
    context = {**run.context, "source_unit": unit, "target_unit": target}
    record.update(target_shape=list(w_t.shape), k=k, method=name)
    try:
        out_basis, in_basis = method.frame(unit.kind, U_s, V_s, context)
    except SkipUnit as reason:
        record.update(status="skipped", reason=str(reason))
        return target, record, None
    if not _passes_gate(record, (out_basis, U_t), (in_basis, V_t), k, run.options):
        return target, record, None
    k_map = _k_for(w_s, w_t, run.lora.r, run.options.k)
    if k_map != k:
        (U_s, V_s), (U_t, V_t) = linalg.top_singular(w_s, k_map), linalg.top_singular(w_t, k_map)
    record["k_map"] = k_map
    bases = {
        "U_s": U_s,
        "V_s": V_s,
        "U_t": U_t,
        "V_t": V_t,
        "target_shape": tuple(w_t.shape),
        "kind": unit.kind,
    }
    try:
        A_t, B_t = method.transfer_unit(module.A, module.B, {**bases, **context})
    except SkipUnit as reason:
        record.update(status="skipped", reason=str(reason))
        return target, record, None
    B_t, A_t = linalg.rebalance(B_t, A_t, run.lora.r)
    kept = linalg.factor_norm(B_t, A_t) / max(linalg.factor_norm(module.B, module.A), 1e-12)
    record.update(status="transferred", energy_kept=round(kept, 4))
    return target, record, LoraModule(A=A_t, B=B_t)


def _passes_gate(record: dict[str, Any], out_pair, in_pair, k: int, options: TransferOptions) -> bool:
    """φ_out ≥ max(τ, c·k/d_out) and φ_in ≥ max(τ, c·k/d_in); the figures go into the unit's record."""
    (out_basis, U_t), (in_basis, V_t) = out_pair, in_pair
    phi_out, phi_in = linalg.subspace_similarity(out_basis, U_t), linalg.subspace_similarity(in_basis, V_t)
    chance_out, chance_in = k / U_t.shape[0], k / V_t.shape[0]
    need_out = max(options.tau, options.chance_multiple * chance_out)
    need_in = max(options.tau, options.chance_multiple * chance_in)
    record.update(
        phi_out=round(phi_out, 4),
        phi_in=round(phi_in, 4),
        chance_out=round(chance_out, 4),
        chance_in=round(chance_in, 4),
    )
    if phi_out < need_out or phi_in < need_in:
        record.update(
            status="skipped",
            reason=f"subspace similarity below threshold ({need_out:.3f} out, {need_in:.3f} in)",
        )
        return False
    return True


def _summed(previous: LoraModule | None, moved: LoraModule, r: int) -> LoraModule:
    import torch

    if previous is None:
        return moved
    B, A = linalg.rebalance(
        torch.cat([previous.B, moved.B], dim=1), torch.cat([previous.A, moved.A], dim=0), r
    )
    return LoraModule(A=A, B=B)


def _only_a_failed_report(output: Path) -> bool:
    """An --output left by a failed transfer holds its report and nothing else: a rerun may replace it."""
    import json

    report = output / "transfer_report.json"
    if not output.is_dir() or {p.name for p in output.iterdir()} != {
        "transfer_report.json",
        "transfer_report.md",
    }:
        return False
    try:
        return json.loads(report.read_text(encoding="utf-8")).get("status") == "failed"
    except (OSError, ValueError):
        return False


def top_reasons(records: list[dict[str, Any]], shown: int = 3) -> str:
    """The commonest reasons units were skipped, with counts and, for the similarity gate, the median φ seen."""
    from collections import Counter
    from statistics import median

    skipped = [r for r in records if r["status"] != "transferred"]
    counts = Counter(r.get("reason", "skipped").split(" (")[0] for r in skipped)
    parts = [f"{n} × {reason}" for reason, n in counts.most_common(shown)]
    phis = [(r["phi_out"], r["phi_in"], r["chance_out"], r["chance_in"]) for r in skipped if "phi_out" in r]
    if phis:
        parts.append(
            f"median φ out/in {median(p[0] for p in phis):.3f}/{median(p[1] for p in phis):.3f} "
            f"vs chance {median(p[2] for p in phis):.3f}/{median(p[3] for p in phis):.3f}"
        )
    return f"{len(skipped)} of {len(records)} units skipped: " + "; ".join(parts)


def _write_report(directory: Path, report: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(directory / "transfer_report.json", report)
    atomic_write_text(directory / "transfer_report.md", markdown(report))
    apply_umask(directory)


def attach_refine(output: Path, refined: dict[str, Any]) -> None:
    """Add the refine stage (and its control) to the written report."""
    import json

    report = json.loads((output / "transfer_report.json").read_text(encoding="utf-8"))
    report["refine"] = refined
    atomic_write_json(output / "transfer_report.json", report)
    atomic_write_text(output / "transfer_report.md", markdown(report))


def kept_text(report: dict[str, Any]) -> str:
    """How much of the adapter the moved one keeps: energy for the weight-space methods, the held-out fit for
    align-fit."""
    if report.get("fit_r2_mean") is not None:
        return f"mean held-out fit R² {report['fit_r2_mean']}"
    return f"mean energy kept {report['energy_kept_mean']}"


def _kept_sentence(refine: dict[str, Any]) -> str:
    kept = refine.get("kept")
    if kept is None:
        return ""
    which = "the refined run" if kept == "transferred_init" else "the control"
    return f" Use {which} (the lower validation loss): `{refine[kept]['adapter']}`."


def markdown(report: dict[str, Any]) -> str:
    failed = report.get("status") == "failed"
    lines = [
        f"# Transfer of `{report['adapter']}`"
        + (" — failed: no unit passed, no adapter written" if failed else ""),
        "",
        f"{report['source']} → {report['target']}; method {report['options']['method']}, depth "
        f"{report['options']['depth']}; {report['transferred']} of {report['units']} units transferred; "
        f"{kept_text(report)}; {report['seconds']} s.",
        "",
        "| unit | target layer | shape (adapter → target) | φ out / chance | φ in / chance | method | status |",
        "|---|---|---|---|---|---|---|",
    ]
    if failed:
        lines[3:3] = [f"Why: {top_reasons(report['modules'])}.", ""]
    if report.get("refine"):
        ref = report["refine"]
        scale = ref.get("start", {}).get("scale", 1.0)
        start = (
            "the transferred adapter was dropped by the guard (it raised the training loss at every scale), so "
            "the refined run is the control"
            if scale == 0
            else f"the transferred adapter scaled by {scale} (the guard's pick by training loss)"
        )
        labels = ref.get("labels") or {}
        answers = (
            " Labels: the source adapter's answers to the data's prompts"
            + (f", sampled at temperature {labels['temperature']}" if labels.get("temperature") else "")
            + f" ({labels['agree_with_data']} of "
            f"{labels['rows']} equal to the data's own answers; `{labels['file']}`)."
            if labels.get("labels") == "source"
            else ""
        )
        lines[3:3] = [
            f"Refine ({ref['examples']} examples, {ref['steps']} steps, lr {ref['learning_rate']}): validation loss "
            f"{ref['transferred_init']['val_loss']} from {start} vs "
            f"{ref['standard_init']['val_loss']} from the standard init (control).{answers}"
            + _kept_sentence(ref),
            "",
        ]
    for r in report["modules"]:
        phi_out = f"{r.get('phi_out', '')} / {r.get('chance_out', '')}" if "phi_out" in r else ""
        phi_in = f"{r.get('phi_in', '')} / {r.get('chance_in', '')}" if "phi_in" in r else ""
        status = r["status"] + (f": {r['reason']}" if r.get("reason") else "")
        if "fit_r2" in r:
            status += f" (held-out fit R² {r['fit_r2']})"
        lines.append(
            f"| {r['unit']} | {r['target_layer']} | {r['adapter_shape']} → {r.get('target_shape', '')} | "
            f"{phi_out} | {phi_in} | {r.get('method', '')} | {status} |"
        )
    return "\n".join(lines) + "\n"
