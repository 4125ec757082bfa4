"""``paw zoo build|list``: the zoo of small models pretrained here (paw/models/zoo.py) for the transfer study."""

from __future__ import annotations

from typing import Annotated

import typer

from paw.cli.edge import cli_errors

zoo_app = typer.Typer(help="The zoo: small models of several families pretrained here.", no_args_is_help=True)


@zoo_app.command("build")
@cli_errors
def build(
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Build only this model (repeatable); default all.")
    ] = None,
    micro: Annotated[
        bool,
        typer.Option("--micro", help="The micro-zoo the tests use (a corpus slice, narrow models; ~1 min)."),
    ] = False,
) -> None:
    """Pretrain the zoo into paw's cache (about 45 minutes on 2 CPU cores; a stopped build resumes where it was)."""
    from paw.cli.consoles import console
    from paw.models.zoo import build_zoo

    out = console()
    summary = build_zoo(only, micro, log=out.print)
    out.print(f"[green]ok[/] {len(summary['models'])} model(s) in {summary['root']}")


@zoo_app.command("list")
@cli_errors
def list_zoo(
    micro: Annotated[bool, typer.Option("--micro", help="The micro-zoo.")] = False,
) -> None:
    """Each zoo model: family, tokenizer, size, held-out perplexity, or 'not built'."""
    import json

    from rich.table import Table

    from paw.cli.consoles import console
    from paw.models.zoo import PREFIX, zoo_root, zoo_spec

    table = Table(title=f"the zoo ({zoo_root(micro)})", title_justify="left")
    for column in ("name", "family", "tokenizer", "parameters", "held-out ppl", "unigram ppl", "build s"):
        table.add_column(column, no_wrap=column == "name")
    for name, spec in zoo_spec()["models"].items():
        record = zoo_root(micro) / "models" / name / "zoo_model.json"
        if record.is_file():
            r = json.loads(record.read_text(encoding="utf-8"))
            cells = [
                f"{r['parameters']:,}",
                f"{r['heldout']['perplexity']:.1f}",
                f"{r['unigram_perplexity']:.1f}",
            ]
            cells.append(f"{r['seconds']:.0f}")
        else:
            cells = ["-", "not built", "-", "-"]
        table.add_row(PREFIX + name, spec["family"], spec["tokenizer"], *cells)
    console(stderr=False, piped_width=120).print(table)
