"""``paw transfer``: CLI glue over ``paw.transfer.api``."""

from __future__ import annotations

from pathlib import Path

from paw.cli import consoles
from paw.errors import PawError


def run_transfer(
    adapter,
    target,
    output: Path,
    source,
    method,
    depth,
    k,
    tau,
    chance_multiple,
    calibration_data=None,
    refine_data=None,
    refine_examples=100,
    refine_steps=50,
    refine_labels="data",
    refine_temperature=0.0,
) -> None:
    from paw.data.builtin import resolve_data_file
    from paw.transfer.api import TransferOptions, kept_text, transfer
    from paw.transfer.mapping import DEPTH_MODES
    from paw.transfer.methods import CALIBRATED

    if depth not in DEPTH_MODES:
        raise PawError(f"--depth '{depth}' is unknown; choose from {', '.join(DEPTH_MODES)}")
    if k is not None and (k <= 0 or (k > 1 and k != int(k))):
        raise PawError(f"--k must be a positive integer or a fraction in (0, 1), got {k}")
    from paw.transfer.refine import LABELS, check_inputs

    if refine_labels not in LABELS:
        raise PawError(f"--refine-labels '{refine_labels}' is unknown; choose {' or '.join(LABELS)}")
    if refine_temperature and refine_labels != "source":
        raise PawError(
            "--refine-temperature samples the source adapter's answers: add --refine-labels source"
        )
    if refine_data is None and refine_labels == "source":
        raise PawError("--refine-labels source answers the prompts of --refine-data; pass --refine-data")
    if calibration_data is not None and not resolve_data_file(calibration_data).is_file():
        raise PawError(f"--calibration-data {calibration_data}: file not found")
    if refine_data is not None:  # refused before anything is written
        check_inputs(refine_data, refine_examples, refine_labels)
    if method in CALIBRATED and calibration_data is None:  # the task's text, where the fits matter
        calibration_data = refine_data
    options = TransferOptions(
        method=method,
        depth=depth,
        k=k,
        tau=tau,
        chance_multiple=chance_multiple,
        calibration_data=calibration_data,
    )
    report = transfer(adapter, target, output, source, options)
    console = consoles.console(stderr=False)
    console.print(
        f"[green]transferred[/] {report['transferred']} of {report['units']} units "
        f"({report['source']} → {report['target']}), {kept_text(report)}, "
        f"{report['seconds']} s"
    )
    console.print(f"adapter: {output}  report: {output / 'transfer_report.md'}")
    if refine_data is not None:
        from paw.transfer.refine import RefineOptions, refine_transferred

        budget = RefineOptions(refine_data, refine_examples, refine_steps)
        refined = refine_transferred(
            report["source"], Path(adapter), output, target, budget, refine_labels, refine_temperature
        )
        labels = refined["labels"]
        if labels["labels"] == "source":
            console.print(
                f"source answers: {labels['rows']} prompts of --refine-data answered by the source adapter "
                f"({labels['agree_with_data']} equal to the data's own answers)"
            )
        scale = refined["start"]["scale"]
        start = "dropped by the guard" if scale == 0 else f"scaled by {scale}"
        console.print(
            f"refine ({refine_examples} examples, {refine_steps} steps): val loss from the transferred init "
            f"({start}) {refined['transferred_init']['val_loss']:.4f} vs the standard init "
            f"{refined['standard_init']['val_loss']:.4f}"
        )
        if refined["kept"] is not None:
            which = "the refined" if refined["kept"] == "transferred_init" else "the control (standard init)"
            console.print(
                f"use: {refined[refined['kept']]['adapter']} ({which} run: the lower validation loss)"
            )
