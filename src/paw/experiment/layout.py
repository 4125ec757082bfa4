"""The experiment layout (DESIGN.md section 10) and safe experiment names.

```
experiments/<name>/
  config.yaml  metadata.json  logs/train_<time>.log  checkpoints/checkpoint-<step>/
  models/final_model/  results/  report.md  plots/  tensorboard/
```
Names are checked, never trusted: they cannot contain path separators or '..', so they cannot escape the root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from paw.errors import PawError

DEFAULT_ROOT = "experiments"  # as ExperimentConfig.root: where `--resume NAME` and `paw eval NAME` look
CHECKPOINT_INFO = "checkpoint_info.json"  # written last into a checkpoint dir: the mark of a complete one
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe single path component; otherwise a PawError saying what is allowed."""
    if not _NAME.match(name) or ".." in name:
        raise PawError(
            f"experiment name '{name}' is not allowed: use letters, digits, '.', '_', '-' or '+' "
            "(no '/', no '..', at most 128 characters, starting with a letter or digit)"
        )
    return name


def sanitize(text: str) -> str:
    """Turn free text (a config file stem) into a valid name part."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._-") or "run"
    return cleaned[:100]


def default_name(config_stem: str) -> str:
    return f"{sanitize(config_stem)}_{datetime.now().strftime('%Y%m%d-%H%M%S')}"


@dataclass(frozen=True)
class Experiment:
    root: Path
    name: str

    @property
    def dir(self) -> Path:
        return self.root / self.name

    config_file = property(lambda self: self.dir / "config.yaml")
    metadata_file = property(lambda self: self.dir / "metadata.json")
    logs = property(lambda self: self.dir / "logs")
    checkpoints = property(lambda self: self.dir / "checkpoints")
    final_model = property(lambda self: self.dir / "models" / "final_model")
    results = property(lambda self: self.dir / "results")
    plots = property(lambda self: self.dir / "plots")
    tensorboard = property(lambda self: self.dir / "tensorboard")
    report = property(lambda self: self.dir / "report.md")

    @classmethod
    def at(cls, root: str | Path, name: str) -> Experiment:
        root = Path(root).expanduser().resolve()
        exp = cls(root, check_name(name))
        if exp.dir.resolve().parent != root:  # belt and braces: never outside the root
            raise PawError(f"experiment name '{name}' resolves outside {root}")
        return exp

    def _exists_error(self) -> PawError:
        return PawError(
            f"experiment '{self.name}' already exists in {self.root}; pick another --name, "
            "or continue it with --resume"
        )

    def ensure_new(self) -> None:
        if self.dir.exists():
            raise self._exists_error()

    def create(self, checkpoints: bool = True) -> None:
        """Make the dir; an existing experiment is never overwritten (mkdir is the atomic test)."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.dir.mkdir()
        except FileExistsError:
            raise self._exists_error() from None
        for sub in (self.logs, self.results, self.plots, *([self.checkpoints] if checkpoints else [])):
            sub.mkdir(parents=True, exist_ok=True)


def find_experiment(
    ref: str, root: str | Path = DEFAULT_ROOT, label: str = "--resume"
) -> tuple[Experiment, Path | None]:
    """Resolve an experiment reference: an experiment dir, a name under ``root``, or a checkpoint dir inside one.
    ``label`` names the argument in errors (``--resume``, ``paw eval EXPERIMENT``).

    Returns the experiment and the checkpoint named explicitly (None: use the latest).
    """
    path = Path(ref).expanduser()
    if (path / CHECKPOINT_INFO).is_file() and path.parent.name == "checkpoints":
        exp_dir = path.parent.parent
        return Experiment(exp_dir.parent.resolve(), exp_dir.name), path.resolve()
    if not path.is_dir():
        candidate = Path(root).expanduser() / check_name(ref)
        if not candidate.is_dir():
            raise PawError(
                f"{label}: no experiment or checkpoint at '{ref}' (looked in {Path(root).resolve()})"
            )
        path = candidate
    if not (path / "config.yaml").is_file():
        raise PawError(f"{label}: {path} is not a paw experiment (no config.yaml)")
    path = path.resolve()
    return Experiment(path.parent, path.name), None


def continue_command(exp_dir: Path, kind: str = "train") -> str:
    """The command that continues a stopped run of this experiment (a pipeline's from its resolved config)."""
    if kind == "pipeline":
        return f"paw pipeline {exp_dir / 'config.yaml'} --resume --name {exp_dir.name}"
    return f"paw train --resume {exp_dir}"
