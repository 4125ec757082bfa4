"""``paw infer``: CLI glue over ``paw.infer.api``."""

from __future__ import annotations

import sys
from pathlib import Path

from paw.cli import consoles
from paw.errors import PawError


def infer(
    model: str | None,
    adapter: str | None,
    input_text: str | None,
    input_file: Path | None,
    output_file: Path | None,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    batch_size: int,
    template: str,
    dtype: str,
    other_base: bool = False,
) -> None:
    from paw.infer.api import infer as run
    from paw.infer.inputs import InferInput, read_inputs
    from paw.models.generate import Sampling

    if (input_text is None) == (input_file is None):
        raise PawError("give exactly one of --input-text TEXT or --input-file FILE")
    if output_file is not None and output_file.exists():
        raise PawError(f"--output-file {output_file} already exists; choose another path")
    if output_file is not None:
        from paw.utils.io import check_writable

        check_writable(output_file.parent, "--output-file")
    inputs = [InferInput(text=input_text)] if input_text is not None else read_inputs(input_file)
    sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    single = input_text is not None
    results = run(
        inputs,
        model,
        adapter,
        sampling,
        template,
        batch_size,
        output_file,
        stream=single,
        dtype=dtype,
        other_base=other_base,
    )
    console = consoles.console()
    if not single:
        for row in results["results"][:3]:
            console.print(f"[bold]>[/] {row['prompt'][-80:]!r}\n  {row['output']!r}", markup=True)
    empty = sum(1 for row in results["results"] if not row["output"].strip())
    if empty:  # an empty answer looks like a hang or a bug unless it is named
        console.print(
            f"note: {empty} of {len(results['results'])} generation(s) stopped at the first token (the model "
            "produced an end-of-sequence/stop token first); check --template and the adapter's prompt format",
        )
    console.print(
        f"{len(results['results'])} output(s), template {results['template']}, "
        f"{results['new_tokens_per_s']} new tokens/s"
        + (f"; written to {output_file}" if output_file else ""),
    )
    sys.stdout.flush()
