"""``align-fit``: move a LoRA by fitting the target's adapter, in closed form, to what the source adapter does.

The weight-space methods carry ΔW through maps fitted on the two base models. Between independently trained models
the moved adapter leaves the target's answers where they were, although the source + LoRA's last hidden state,
mapped into the target, does make the target's head answer (benchmarks/RESULTS.md, "Where the weight-space methods
lose the task"): the loss is in making the change from the target's own activations. So this method carries the
adapter's *effect* and lets least squares decide how the target makes it:

1. Both tokenizations of the calibration text (the first ``FIT_TEXTS`` rows of ``calibration_data``, the task the
   adapter was trained for; without it, corpus lines) are paired where their tokens end at the same character
   (``align-act``'s pairing; different tokenizers are fine).
2. The source base and the source + adapter read it: per layer, the change Δ_s the adapter makes to the residual
   stream at those positions.
3. Per matched layer pair (``--depth``; where several source layers fall on one target layer, the deepest), a ridge
   map M from the source's residual stream to the target's, fitted on the two bases' states, says where the target's
   stream should be: its own state plus ``M Δ_s``.
4. The target, with the layers fitted so far already changed, reads the text; what its stream still misses there is
   fitted by ridge least squares from the layer's MLP activations (what ``down_proj`` reads) and cut to the adapter's
   rank r by reduced-rank regression (the r output directions that carry most of the fitted change), giving that
   layer's ``down_proj`` LoRA ``B A``. Through a norm after the MLP (Gemma-2's ``post_feedforward_layernorm``) the
   missing change is taken back through the norm's scale first. The unit's ``fit_r2`` is the share of the change
   (1 − ‖miss‖²/‖change‖²) that the same fit, made without one text in ``HELD_OUT_EVERY`` (chosen by content, so a
   repeated row is never on both sides), reproduces on those texts; the gate compares it with
   ``--similarity-threshold``.

The written adapter holds ``down_proj`` modules only, whatever the source adapter targeted. No gradient step and no
label is used: the only teacher is the source adapter's effect on the text. Models load one at a time in float32 on
CPU: the source once (it reads the text, then reads it again with the adapter merged in), then the target, kept. No
pass runs past the last layer it needs (never the head). The target reads the text once, then walks it layer by
layer: each layer runs on the states from the layer below, once to be read and once more after its fit, so the cost
is linear in depth (reading up to each fitted layer from the embeddings again would be quadratic).
"""

from __future__ import annotations

from typing import Any

from paw.errors import PawError
from paw.transfer.adapter_io import LoraAdapter, LoraModule
from paw.transfer.linalg import ridge_fit
from paw.transfer.mapping import Unit
from paw.transfer.methods import FIT_METHOD as METHOD

FIT_TEXTS = 256
MAX_POSITIONS = 8192
MIN_POSITIONS = 64
RIDGE = 1e-3  # as align-act's maps; a larger one fits held-out words better and the task worse (RESULTS.md)
HELD_OUT_EVERY = 5


def fit_adapter(
    adapter: Any, lora: LoraAdapter, store_s: Any, store_t: Any, mapping: dict[int, int | None], options: Any
) -> tuple[dict[Unit, LoraModule], list[dict[str, Any]], dict[str, Any]]:
    """The fitted target modules (one ``down`` unit per matched target layer that passes the gate), a report record
    per matched target layer, and the figures the report adds (paired positions, calibration rows)."""
    import torch

    from paw.transfer.cka import calibration_texts
    from paw.transfer.methods.align_act import (
        TEXTS,
        capture,
        load_model,
        merge_adapter,
        paired_positions,
        task_texts,
    )

    texts = task_texts(options.calibration_data, FIT_TEXTS)
    rows = len(texts)
    texts = texts or calibration_texts(TEXTS)
    # every position, repeats included: a row the data holds twice weighs twice, as it did in training
    at_s, at_t, count = paired_positions(store_s.dir, store_t.dir, texts, MAX_POSITIONS, once=False)
    if count < MIN_POSITIONS:
        raise PawError(f"--method {METHOD}: the two tokenizations share only {count} token boundaries")
    held = torch.tensor(
        [out for text, kept in zip(texts, at_t, strict=True) for out in [_held_out(text)] * len(kept)]
    )
    if held.all() or not held.any():  # too few distinct texts to hold some out: every fifth position instead
        held = torch.arange(count) % HELD_OUT_EVERY == 0
    deepest: dict[int, int] = {}  # target layer -> the deepest source layer mapped onto it
    for layer_s, layer_t in sorted(mapping.items()):
        if layer_t is not None:
            deepest[layer_t] = layer_s
    # each pass stops after the last layer it needs: the head, a large part of a pass at real vocabularies, never runs
    last_s, last_t = max(deepest.values(), default=0), max(deepest, default=0)
    model, tokenizer = load_model(store_s.dir)  # once: the adapter is merged into it after the base's pass
    source = capture(model, tokenizer, texts, at_s, upto=last_s, keys=("out",))["out"]
    model = merge_adapter(model, adapter)
    adapted = capture(model, tokenizer, texts, at_s, upto=last_s, keys=("out",))["out"]
    del model
    model, tokenizer = load_model(store_t.dir)
    walk = _Walk(model, tokenizer, texts, at_t, last_t)
    base = walk.base
    collected: dict[Unit, LoraModule] = {}
    records = []
    for layer_t, layer_s in sorted(deepest.items()):
        M = ridge_fit(source[layer_s][~held], base[layer_t][~held], RIDGE)
        wanted = base[layer_t] + (adapted[layer_s] - source[layer_s]) @ M.T
        now = walk.read(layer_t, ("neurons", "mlp_out", "out"))
        block = model.model.layers[layer_t]
        missing = wanted - now["out"]
        norm = getattr(block, "post_feedforward_layernorm", None)
        if norm is not None:
            missing = _through_norm(norm, now["mlp_out"], missing)
        B, A, r2 = _reduced_rank_fit(now["neurons"], missing, held, lora.r)
        record = {
            "unit": f"layer {layer_t} down (fitted)",
            "source_module": f"the adapter's effect after source layer {layer_s}",
            "source_layer": layer_s,
            "target_layer": layer_t,
            "kind": "down",
            "adapter_shape": list(block.mlp.down_proj.weight.shape),
            "target_shape": list(block.mlp.down_proj.weight.shape),
            "rank": lora.r,
            "method": METHOD,
            "fit_r2": round(r2, 4),
            "change_norm": round(float((wanted - base[layer_t]).norm() / base[layer_t].norm()), 4),
        }
        if r2 < options.tau:
            record.update(
                status="skipped",
                reason=f"the fit reproduces {r2:.3f} of the held-out change, below {options.tau}",
            )
        else:
            record.update(status="transferred")
            with torch.no_grad():  # the next layers are fitted on top of this one
                block.mlp.down_proj.weight += B @ A
            collected[Unit(layer_t, "down")] = LoraModule(A=A.contiguous(), B=B.contiguous())
        records.append(record)
    return collected, records, {"paired_positions": count, "calibration_rows": rows}


class _Walk:
    """The target's forward pass over the calibration texts, one layer at a time. A first pass records what the model
    hands each layer (the first layer's input; every layer's mask and position embeddings) and the base model's
    output of every layer at the paired positions (``base``). Each layer then runs on every text's hidden states
    from the layer below, so a layer's fit reads the states the earlier fits give without the layers before it
    running again: the model's own computation, one layer per pass instead of every layer up to the fitted one."""

    def __init__(
        self, model: Any, tokenizer: Any, texts: list[str], positions: list[list[int]], last: int
    ) -> None:
        from paw.transfer.methods.align_act import capture

        self.layers = model.model.layers[: last + 1]
        self.positions = [wanted for wanted in positions if wanted]
        self.hidden: list[Any] = []  # per text: the full hidden states entering layer ``self.at``
        self.calls: list[dict[int, dict[str, Any]]] = []  # per text, per layer: the keywords the model passed
        self.at = 0
        handles = []
        for index, layer in enumerate(self.layers):

            def enter(module, args, kwargs, index=index):
                if index == 0:  # a new text
                    self.hidden.append((args[0] if args else kwargs["hidden_states"]).clone())
                    self.calls.append({})
                self.calls[-1][index] = {k: v for k, v in kwargs.items() if k != "hidden_states"}

            handles.append(layer.register_forward_pre_hook(enter, with_kwargs=True))
        try:
            self.base = capture(model, tokenizer, texts, positions, upto=last, keys=("out",))["out"]
        finally:
            for handle in handles:
                handle.remove()

    def read(self, index: int, keys: tuple[str, ...]) -> dict[str, Any]:
        """What ``watch`` sees at layer ``index`` (rows at the paired positions, stacked over texts) on the states
        the layers below give with their weights as they are now (each runs once, when the walk first passes it:
        after its own fit). The walk stays at ``index``: a later read runs it again, with its weights as they are
        then."""
        while self.at < index:
            self._run(self.at, (), advance=True)
            self.at += 1
        return self._run(index, keys, advance=False)

    def _run(self, index: int, keys: tuple[str, ...], advance: bool) -> dict[str, Any]:
        import torch

        from paw.transfer.methods.align_act import watch

        seen: dict[str, list[Any]] = {key: [] for key in keys}
        keep: list[int] = []

        def record(key, tensor):
            seen[key].append(tensor[0, keep].clone())

        layer = self.layers[index]
        handles = watch(layer, keys, record)
        try:
            with torch.no_grad():
                for text, (hidden, calls, wanted) in enumerate(
                    zip(self.hidden, self.calls, self.positions, strict=True)
                ):
                    keep[:] = wanted
                    out = layer(hidden, **calls[index])
                    if advance:
                        self.hidden[text] = out[0] if isinstance(out, tuple) else out
        finally:
            for handle in handles:
                handle.remove()
        return {key: torch.cat(rows) for key, rows in seen.items()}


def _held_out(text: str) -> bool:
    """Whether ``text`` is among the held-out rows: by its content, so a repeated row is never on both sides."""
    import hashlib

    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % HELD_OUT_EVERY == 0


def _through_norm(norm: Any, written: Any, missing: Any) -> Any:
    """The change to what the MLP writes (``written``, before ``norm``) that moves the norm's output by
    ``missing``: an RMS norm scales each row by ``g / rms(row)``, so at the current scale the change is
    ``(norm(written) + missing) · rms / g − written``."""
    import torch

    with torch.no_grad():
        gain = norm(torch.ones(1, written.shape[1]))[0]  # g: the norm of a row of ones is its gain
        eps = float(getattr(norm, "eps", getattr(norm, "variance_epsilon", 1e-6)))
        rms = (written.pow(2).mean(-1, keepdim=True) + eps).sqrt()
        return (norm(written) + missing) * rms / gain - written


def _reduced_rank_fit(X: Any, Y: Any, held: Any, rank: int) -> tuple[Any, Any, float]:
    """(B, A, held-out R²): ``X (BA)ᵀ ≈ Y`` with BA of rank ≤ ``rank``, fitted on every row; R² is that of the same
    fit made without the held-out rows, on them."""
    B, A = _cut(ridge_fit(X[~held], Y[~held], RIDGE), X[~held], rank)
    miss = Y[held] - X[held] @ (B @ A).T
    r2 = 1 - float(miss.pow(2).sum() / Y[held].pow(2).sum().clamp_min(1e-12))
    return (*_cut(ridge_fit(X, Y, RIDGE), X, rank), r2)


def _cut(W: Any, X: Any, rank: int) -> tuple[Any, Any]:
    """``W`` (out × in) kept on the ``rank`` output directions its fitted values ``X Wᵀ`` vary most along."""
    import torch

    _, _, Vh = torch.linalg.svd((X @ W.T).double(), full_matrices=False)
    B = Vh[:rank].T.float()
    return B, B.T @ W
