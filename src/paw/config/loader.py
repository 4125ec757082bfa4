"""Read a run config: YAML (``yaml.safe_load``) → ``extends`` → ``profiles`` → ``k=v`` overrides → RunConfig.

Every error is a :class:`PawError` naming the file and the dotted field, with a "did you mean" hint for typos.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from paw.config.schema import RunConfig
from paw.errors import PawError
from paw.utils.suggest import did_you_mean

RESERVED_KEYS = ("extends", "profiles")
Config = TypeVar("Config", bound=BaseModel)


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, except that a key given twice in one mapping is an error: PyYAML keeps the
    last silently, so ``r: 8`` ... ``r: 64`` would train a run nobody wrote."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: merged, not a key of its own
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key '{key}' (first given at line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen.setdefault(key, key_node.start_mark.line)
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Load one YAML mapping (safe loader, duplicate keys refused); a missing file or bad syntax is a PawError."""
    path = Path(path)
    if not path.is_file():
        raise PawError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise PawError(f"{loc}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PawError(f"{path}: a config must be a YAML mapping of sections, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into a copy of ``base``; mappings merge key by key, anything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_with_extends(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise PawError(f"{path}: 'extends' forms a cycle: {chain}")
    data = read_yaml(path)
    parents = data.pop("extends", None)
    if parents is None:
        return data
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise PawError(f"{path}: 'extends' must be a file path or a list of file paths")
    merged: dict[str, Any] = {}
    for parent in parents:
        merged = deep_merge(merged, load_with_extends(_parent_path(path, parent), (*seen, path)))
    return deep_merge(merged, data)


PACKAGED = "paw:"


def _parent_path(child: Path, parent: str) -> Path:
    """Where an ``extends`` entry points: ``paw:<path>`` is a file inside the installed paw package (so a shipped
    config keeps working when copied anywhere or when paw is pip-installed), else a path relative to ``child``."""
    if parent.startswith(PACKAGED):
        package_root = Path(__file__).resolve().parent.parent
        relative = parent[len(PACKAGED) :].lstrip("/")
        parent_path = (package_root / relative).resolve()
        if package_root not in parent_path.parents:
            raise PawError(f"{child}: extends '{parent}', which is outside the paw package")
    else:
        parent_path = child.parent / Path(parent).expanduser()
    if not parent_path.is_file():
        raise PawError(f"{child}: extends '{parent}', which does not exist ({parent_path})")
    return parent_path


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (numbers, bools, lists), else kept as a string."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise PawError(f"override '{item}': expected key=value, e.g. training.max_steps=100")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for key in keys[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[keys[-1]] = value
    return data


def _apply_profile(data: dict[str, Any], profile: str | None, source: Path) -> dict[str, Any]:
    profiles = data.pop("profiles", None) or {}
    if not isinstance(profiles, dict):
        raise PawError(f"{source}: 'profiles' must map profile names to config fragments")
    if profile is None:
        return data
    if profile not in profiles:
        names = ", ".join(sorted(profiles)) or "none defined"
        raise PawError(
            f"{source}: unknown profile '{profile}'{did_you_mean(profile, profiles)}; profiles: {names}"
        )
    return deep_merge(data, profiles[profile])


def _model_at(loc: tuple[Any, ...], schema: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model class that owns the field at ``loc[:-1]`` (for 'did you mean')."""
    model: type[BaseModel] = schema
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def format_validation_error(err: ValidationError, source: str, schema: type[BaseModel] = RunConfig) -> str:
    """One line per problem: ``file: field: message``."""
    lines = []
    for problem in err.errors():
        loc = tuple(p for p in problem["loc"] if not str(p).startswith(("function-", "list[", "literal[")))
        field = ".".join(str(p) for p in loc) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if not loc and ": " in message:  # a whole-config check that names its own field
            field, message = message.split(": ", 1)
        if message.startswith("[") and "] " in message:  # a pass-through key named by check_passthrough
            key, message = message[1:].split("] ", 1)
            field = f"{field}.{key}"
        if problem["type"] == "extra_forbidden":
            owner = _model_at(loc, schema)
            hint = did_you_mean(str(loc[-1]), owner.model_fields) if owner else ""
            message = f"unknown key{hint}"
        elif problem["type"] == "missing":
            message = "required key is missing"
        elif "input" in problem and problem["type"] not in ("value_error", "assertion_error"):
            message = f"{message} (got {problem['input']!r})"
        lines.append(f"{source}: {field}: {message}")
    # One line for the user; the rest follow so nothing is hidden.
    return "\n".join(dict.fromkeys(lines))


BUILTIN_DATA_PREFIX = "paw-synth/"  # built-in datasets (paw.data.builtin) are names, not paths


def _absolute(value: Any, base: Path) -> Any:
    if not isinstance(value, str) or not value or value.startswith(BUILTIN_DATA_PREFIX):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def resolve_paths(data: dict[str, Any], cwd: Path | None = None) -> dict[str, Any]:
    """Make data file paths absolute: against ``paths.data_dir`` when set, else the current directory."""
    data = copy.deepcopy(data)
    base = Path((data.get("paths") or {}).get("data_dir") or (cwd or Path.cwd())).expanduser()
    section = data.get("data")
    if isinstance(section, dict):
        for key in ("train_file", "val_file"):
            section[key] = _absolute(section.get(key), base)
    evals = data.get("eval")
    if isinstance(evals, dict) and isinstance(evals.get("data_files"), dict):
        evals["data_files"] = {task: _absolute(f, base) for task, f in evals["data_files"].items()}
    return data


def validate_dict(data: dict[str, Any], source: str, schema: type[Config] = RunConfig) -> Config:
    """Validate an already-merged mapping into a RunConfig (or another config ``schema``)."""
    unknown = [k for k in data if k not in schema.model_fields]
    for key in unknown:
        raise PawError(f"{source}: unknown section '{key}'{did_you_mean(key, schema.model_fields)}")
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise PawError(format_validation_error(err, source, schema)) from None


def load_config(
    path: str | Path,
    overrides: list[str] | None = None,
    profile: str | None = None,
    cwd: Path | None = None,
    schema: type[Config] = RunConfig,
) -> Config:
    """Load, merge and validate a run config file (or, with ``schema``, another kind of config file).

    Args:
        path: the YAML file.
        overrides: ``k=v`` strings with dotted keys (``training.max_steps=10``), applied last.
        profile: name of a block under ``profiles:`` merged over the file (e.g. ``local``/``server``).
        cwd: directory relative data paths resolve against when ``paths.data_dir`` is unset.

    Raises:
        PawError: with ``file: field: reason`` for any problem.
    """
    source = Path(path)
    data = load_with_extends(source)
    data = _apply_profile(data, profile, source)
    data = apply_overrides(data, overrides or [])
    for key in RESERVED_KEYS:
        data.pop(key, None)
    data = resolve_paths(data, cwd)
    return validate_dict(data, str(source), schema)


def dump_config(config: BaseModel) -> str:
    """The fully resolved config as YAML (what ``experiments/<name>/config.yaml`` holds)."""
    data = config.model_dump(mode="json", exclude_none=False)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
