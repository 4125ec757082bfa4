"""Turn ``model.name_or_path`` into something loadable, without importing torch.

Order: a zoo model ``paw zoo build`` pretrained (``paw-zoo/<name>``) → built-in tiny model (``paw-tiny/<family>``)
→ stand-in of a published model (``paw-shape/<name>[@<layers>]``) → existing local dir → alias (local copy under
``paths.models_dir`` first, then its hub id) → a hub id (``org/name``). Anything else is a PawError.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml

from paw.errors import PawError
from paw.utils.suggest import did_you_mean


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model comes from. ``location`` is a local dir or a hub id."""

    name: str
    location: str
    kind: Literal["tiny", "shape", "local", "alias", "hub"]

    @property
    def is_local(self) -> bool:
        return Path(self.location).is_dir()

    @property
    def portable_name(self) -> str:
        """The name to record in what paw writes (an adapter's base): the name the user gave (a built-in, an
        alias, a hub id), a local dir made absolute; never the machine-local dir a built-in or a
        ``paths.models_dir`` copy was loaded from."""
        return str(Path(self.location).resolve()) if self.kind == "local" else self.name


@cache
def aliases() -> dict[str, str]:
    return yaml.safe_load(Path(__file__).with_name("aliases.yaml").read_text(encoding="utf-8"))


def _local_copy(alias: str, hub_id: str, models_dir: str | None) -> Path | None:
    if not models_dir:
        return None
    root = Path(models_dir).expanduser()
    for candidate in (root / alias, root / hub_id.split("/")[-1], root / hub_id):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def resolve_model(
    name: str, models_dir: str | None = None, build_tiny: bool = True, seed: int = 0
) -> ResolvedModel:
    """Resolve a model name; ``build_tiny=False`` checks a built-in name (tiny, stand-in or zoo) without building
    it or needing it built."""
    from paw.models import shape, tiny, zoo

    if name.startswith(zoo.PREFIX):  # pretrained by `paw zoo build`, never built here
        if not build_tiny:
            zoo.known(name)
            return ResolvedModel(name, name, "zoo")
        return ResolvedModel(name, str(zoo.zoo_model_dir(name)), "zoo")
    if name.startswith(tiny.PREFIX):
        tiny.family_of(name)
        location = str(tiny.tiny_model_dir(name, seed)) if build_tiny else name
        return ResolvedModel(name, location, "tiny")
    if name.startswith(shape.PREFIX):
        shape.parse_name(name)
        location = str(shape.stand_in_dir(name, seed)) if build_tiny else name
        return ResolvedModel(name, location, "shape")
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise PawError(f"{path}: not a model dir (no config.json)")
        return ResolvedModel(name, str(path), "local")
    if name in aliases():
        hub_id = aliases()[name]
        local = _local_copy(name, hub_id, models_dir)
        return ResolvedModel(name, str(local) if local else hub_id, "alias")
    if _looks_like_path(name):
        raise PawError(f"model.name_or_path: directory '{name}' does not exist")
    if name.count("/") == 1 and all(name.split("/")):
        local = _local_copy(name.split("/")[1], name, models_dir)
        return ResolvedModel(name, str(local) if local else name, "hub")
    known = (
        list(aliases())
        + [tiny.PREFIX + f for f in tiny.families()]
        + [shape.PREFIX + s for s in shape.shapes()]
        + [zoo.PREFIX + z for z in zoo.names()]
    )
    raise PawError(
        f"model.name_or_path: unknown model alias '{name}'{did_you_mean(name, known)}; "
        "use an alias from 'paw models', a hub id (org/name), a local dir, paw-tiny/<family> or paw-shape/<model>"
    )


def same_model(first: str, second: str, models_dir: str | None = None) -> bool | None:
    """Whether two model names mean the same weights: equal names, an alias and its hub id, a built-in and its
    cached dir, or two local dirs with the same files. None when either cannot be resolved on this machine (a dir
    on another machine), so the caller cannot tell."""
    if first == second:
        return True
    try:
        pair = [resolve_model(name, models_dir, build_tiny=False) for name in (first, second)]
    except PawError:
        return None
    keys = [aliases().get(r.name, r.name) if r.kind in ("alias", "hub") else r.name for r in pair]
    if keys[0] == keys[1]:
        return True
    # a built-in (or an alias's local copy) named once by its name and once by its dir: compare where they live
    built = [resolve_model(r.name, models_dir) if r.kind in ("tiny", "shape") else r for r in pair]
    if not all(r.is_local for r in built):
        return False
    places = [Path(r.location).resolve() for r in built]
    if places[0] == places[1]:
        return True
    from paw.utils.io import dir_fingerprint

    return dir_fingerprint(places[0]) == dir_fingerprint(places[1])
