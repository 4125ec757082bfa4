"""``paw transfer``: CLI glue over ``paw.transfer.api``."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from paw.errors import PawError


def run_transfer(adapter, target, output: Path, source, method, depth, k, tau, chance_multiple) -> None:
    from paw.transfer.api import TransferOptions, transfer
    from paw.transfer.mapping import DEPTH_MODES

    if depth not in DEPTH_MODES:
        raise PawError(f"--depth '{depth}' is unknown; choose from {', '.join(DEPTH_MODES)}")
    if k is not None and (k <= 0 or (k > 1 and k != int(k))):
        raise PawError(f"--k must be a positive integer or a fraction in (0, 1), got {k}")
    options = TransferOptions(method=method, depth=depth, k=k, tau=tau, chance_multiple=chance_multiple)
    report = transfer(adapter, target, output, source, options)
    console = Console(highlight=False)
    console.print(
        f"[green]transferred[/] {report['transferred']} of {report['units']} units "
        f"({report['source']} → {report['target']}), mean energy kept {report['energy_kept_mean']}, "
        f"{report['seconds']} s"
    )
    console.print(f"adapter: {output}  report: {output / 'transfer_report.md'}")
