"""``align-act``: ``align`` with its maps fitted on the two models' activations instead of their weights.

``align`` fits one residual map from the shared tokens' input embeddings and pairs MLP neurons one-to-one by weight
cosine. Between two independently trained models neither holds: on the zoo's qwen2-s → qwen2-m the embedding map
explains 16–48% of held-out hidden-state variance at layers 1–4 (a map fitted on hidden states: 68–74%), and the
target's gate-projection outputs predicted from the source's through the one-to-one pairing do worse than their
mean (R² −0.3 … −1.5) while a dense least-squares map explains 86–90%. So both models read the same calibration
text; positions where both tokenizations end a token at the same character are paired (different tokenizers are
fine); and per matched layer pair ridge least squares fits, as model-stitching work fits maps on activations:

- ``N_attn``/``M_attn`` (target → source / source → target) on what attention reads, for q/k/v's input side;
- ``N_mlp``/``M_mlp`` on what the MLP reads, for gate/up's input side;
- ``M`` on the residual stream after the layer, for what o and down write;
- a dense map between the two MLPs' neurons on their activations after the nonlinearity (what down reads), for
  gate/up's output side and down's input side, in place of the one-to-one pairing (fitted after the nonlinearity,
  where the activations span every neuron, so a model and a copy of it get the identity).

Attention heads keep ``align``'s pairing (paw/transfer/inner_map.py), seen through ``N_attn``, so per-head
attention stays per head. Both models run once, on CPU, in float32; at most ``MAX_POSITIONS`` positions are kept
per layer (a 7B model: 28 layers × (3 × 3584 + 18944) floats each, ~7 GB; with fewer positions than
dimensions, as there, the ridge decides the directions the text does not reach).
"""

from __future__ import annotations

from typing import Any

from paw.transfer.linalg import ridge_fit
from paw.transfer.methods import align

TEXTS = 128
MAX_TOKENS = 128
MAX_POSITIONS = 2048  # paired positions kept per layer
MIN_POSITIONS = 64
RIDGE = 1e-3
KEYS = ("attn", "mlp", "neurons", "out")  # what prepare captures


def _ends(model_dir: Any, texts: list[str]) -> list[list[int]]:
    """Each text's token end offsets (characters) under the model's tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoded = tokenizer(
        texts, return_offsets_mapping=True, truncation=True, max_length=MAX_TOKENS, add_special_tokens=False
    )
    return [[end for _, end in offsets] for offsets in encoded["offset_mapping"]]


def load_model(model_dir: Any, adapter: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) in float32 on CPU, in eval mode; with ``adapter``, that PEFT LoRA merged in."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        model = merge_adapter(model, adapter)
    return model.eval(), AutoTokenizer.from_pretrained(model_dir)


def merge_adapter(model: Any, adapter: Any) -> Any:
    """``model`` with the PEFT LoRA in ``adapter`` merged into its weights (in place: the model is changed)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval()


def watch(layer: Any, keys: tuple[str, ...], record: Any) -> list[Any]:
    """Hooks on one decoder layer that call ``record(key, tensor)`` as it runs, for each of ``keys``: what attention
    reads (``attn``), what the MLP reads (``mlp``), the MLP's activations after its nonlinearity (``neurons``), what
    the MLP's down projection writes (``mlp_out``), the layer's output (``out``). Returns the hook handles."""
    handles = []
    for key in keys:
        if key == "attn":  # attention's input may come as a keyword

            def attn_in(module, args, kwargs):
                record("attn", kwargs["hidden_states"] if "hidden_states" in kwargs else args[0])

            handles.append(layer.self_attn.register_forward_pre_hook(attn_in, with_kwargs=True))
        elif key in ("mlp", "neurons"):

            def read(module, args, key=key):
                record(key, args[0])

            module = layer.mlp if key == "mlp" else layer.mlp.down_proj
            handles.append(module.register_forward_pre_hook(read))
        else:
            module = layer.mlp.down_proj if key == "mlp_out" else layer

            def written(module, args, output, key=key):
                record(key, output[0] if isinstance(output, tuple) else output)

            handles.append(module.register_forward_hook(written))
    return handles


def capture(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    positions: list[list[int]],
    upto: int | None = None,
    keys: tuple[str, ...] = ("attn", "mlp", "neurons", "mlp_out", "out"),
) -> dict[str, list[Any]]:
    """Per layer, at the given positions of each text, what ``watch`` sees (rows stacked over texts). With
    ``upto``, only layers up to that one (the forward stops there); with ``keys``, only those."""
    import torch

    layers = model.model.layers[: None if upto is None else upto + 1]
    seen: dict[str, list[list[Any]]] = {k: [[] for _ in layers] for k in keys}
    keep: list[int] = []
    hooks = []
    for index, layer in enumerate(layers):

        def record(key: str, tensor: Any, index: int = index) -> None:
            seen[key][index].append(tensor[0, keep].clone())

        hooks += watch(layer, keys, record)
    if upto is not None:

        def stop(module, args, output):
            raise _Reached

        hooks.append(layers[-1].register_forward_hook(stop))
    try:
        with torch.no_grad():
            for text, wanted in zip(texts, positions, strict=True):
                if not wanted:
                    continue
                keep[:] = wanted
                try:  # no cache: a layer's keywords hold no state another call could grow
                    model(encode(tokenizer, text), use_cache=False)
                except _Reached:
                    pass
    finally:
        for hook in hooks:
            hook.remove()
    return {key: [torch.cat(parts) for parts in per_layer] for key, per_layer in seen.items()}


def encode(tokenizer: Any, text: str) -> Any:
    """``text``'s token ids as the capture reads them (one row, no special tokens, at most ``MAX_TOKENS``)."""
    return tokenizer(
        text, return_tensors="pt", truncation=True, max_length=MAX_TOKENS, add_special_tokens=False
    )["input_ids"]


class _Reached(Exception):
    """Raised by a hook at the last layer ``capture`` needs: the rest of the forward pass is not run."""


def task_texts(data_file: str | None, n: int = TEXTS) -> list[str]:
    """The first ``n`` rows of ``data_file`` as plain text (prompt and answer), in file order; none without one."""
    if data_file is None:
        return []
    from paw.data.formats import plain_text
    from paw.data.readers import read_rows

    return [plain_text(record.row, record.where) for record in read_rows(data_file)[:n]]


def paired_positions(
    dir_s: Any, dir_t: Any, texts: list[str], most: int, once: bool = True
) -> tuple[list[list[int]], list[list[int]], int]:
    """Per text, the source and target token positions that end at the same character (at most ``most`` in all,
    in text order), and their count. With ``once``, a prefix seen before (a prompt template's fixed words, a
    repeated row) gives the same states again and is kept once."""
    at_s, at_t, count, seen = [], [], 0, set()
    for text, source, target in zip(texts, _ends(dir_s, texts), _ends(dir_t, texts), strict=True):
        where = {end: j for j, end in enumerate(target)}
        pairs = [
            (i, where[end])
            for i, end in enumerate(source)
            if end in where and not (once and text[:end] in seen)
        ]
        pairs = pairs[: max(0, most - count)]
        if once:
            seen.update(text[: source[i]] for i, _ in pairs)
        count += len(pairs)
        at_s.append([i for i, _ in pairs])
        at_t.append([j for _, j in pairs])
    return at_s, at_t, count


def prepare(store_s: Any, store_t: Any, options: Any = None) -> dict[str, Any]:
    """Both models' hidden states on the calibration text, at the token boundaries both tokenizations share. With
    ``options.calibration_data`` its rows come first (the text the adapter acts on), then the corpus sentences;
    positions are taken in that order up to ``MAX_POSITIONS``."""
    from paw.errors import PawError
    from paw.transfer.cka import calibration_texts

    # align's head pairings read the stores and cache into inner_maps
    context: dict[str, Any] = {"stores": (store_s, store_t), "inner_maps": {}}
    task = task_texts(getattr(options, "calibration_data", None))
    texts = task + calibration_texts(TEXTS)
    at_s, at_t, count = paired_positions(store_s.dir, store_t.dir, texts, MAX_POSITIONS)
    if count < MIN_POSITIONS:
        raise PawError(f"--method align-act: the two tokenizations share only {count} token boundaries")
    context.update(  # no shared vocabulary needed: positions pair by the characters their tokens end at
        source=capture(*load_model(store_s.dir), texts, at_s, keys=KEYS),
        target=capture(*load_model(store_t.dir), texts, at_t, keys=KEYS),
        paired_positions=count,
        calibration_rows=len(task),
        layer_maps={},
    )
    return context


def _layer_maps(context: dict[str, Any]) -> dict[str, Any]:
    layers = (context["source_unit"].layer, context["target_unit"].layer)
    if layers not in context["layer_maps"]:
        s, t = context["source"], context["target"]
        maps: dict[str, Any] = {}
        # what attention and the MLP read, and the MLP's neurons: (N target -> source, M source -> target)
        for key in ("attn", "mlp", "neurons"):
            x_s, x_t = s[key][layers[0]], t[key][layers[1]]
            maps[key] = (ridge_fit(x_t, x_s, RIDGE), ridge_fit(x_s, x_t, RIDGE))
        maps["out"] = ridge_fit(s["out"][layers[0]], t["out"][layers[1]], RIDGE)  # what o and down write
        context["layer_maps"][layers] = maps
    return context["layer_maps"][layers]


def _with_maps(kind: str, context: dict[str, Any]) -> dict[str, Any]:
    """An attention unit's context with align's ``N`` and ``M`` replaced by this layer pair's fitted maps: heads
    are seen (and paired) through the attention-input map, q/k/v read through it, o writes through the residual
    map."""
    maps = _layer_maps(context)
    N, M_in = maps["attn"]
    return {**context, "N": N, "M": M_in if kind in align.READS_RESIDUAL else maps["out"]}


def frame(kind: str, U_s: Any, V_s: Any, context: dict[str, Any]) -> tuple[Any, Any]:
    if align.GROUP[kind] != "mlp":
        return align.frame(kind, U_s, V_s, _with_maps(kind, context))
    maps = _layer_maps(context)
    to_target = maps["neurons"][1]
    if kind == "down":
        return maps["out"] @ U_s, to_target @ V_s
    return to_target @ U_s, maps["mlp"][1] @ V_s


def transfer_unit(A: Any, B: Any, bases: dict[str, Any]) -> tuple[Any, Any]:
    """Attention units as ``align`` moves them (heads paired, residual sides through this layer's maps); MLP units
    through a dense map between the two MLPs' neurons, fitted on their activations after the nonlinearity."""
    kind = bases["kind"]
    if align.GROUP[kind] != "mlp":
        return align.transfer_unit(A, B, _with_maps(kind, bases))
    maps = _layer_maps(bases)
    to_source, to_target = maps["neurons"]
    if kind == "down":
        return A @ to_source, maps["out"] @ B
    return A @ maps["mlp"][0], to_target @ B
