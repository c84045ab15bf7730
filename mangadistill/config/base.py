"""Config plumbing shared by every pipeline: the strict base model, YAML loading with `extends:`, one-line errors.

One YAML file -> one tree of frozen pydantic models (`extra="forbid"`), validated before any pipeline
starts. `load_config` turns validation failures into a single line that names the offending key, e.g.::

    configs/x.yaml: student.stage2.training.epochs: Input should be greater than or equal to 1 (got 0)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from mangadistill.errors import ConfigError

class StrictModel(BaseModel):
    """Base for every config node: unknown keys are errors and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: On a root model: dotted keys of an older layout -> where they moved; such a key is still an unknown key
    #: (no silent alias), and its error says where it went.
    MOVED_KEYS: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _partial_blocks_keep_their_defaults(cls, data: Any) -> Any:
        """A nested block given in part keeps the field's own default for the rest.

        E.g. `student.stage2.training: {epochs: 3}` keeps Stage 2's learning rate (1e-4), not the generic
        `TrainingConfig` default (5e-5) that pydantic would otherwise build the block from.
        """
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, field in cls.model_fields.items():
            if isinstance(data.get(name), dict) and isinstance(field.default, BaseModel):
                merged[name] = merge_layers(field.default.model_dump(exclude_defaults=True), data[name])
        return merged


ConfigT = TypeVar("ConfigT", bound=BaseModel)


def _format_error(source: str, error: dict[str, Any], moved: dict[str, str]) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "<root>"
    if error["type"] == "extra_forbidden":
        if location in moved:
            return f"{source}: unknown key '{location}' (moved to '{moved[location]}')"
        return f"{source}: unknown key '{location}' (check the spelling against configs/*.yaml)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] != "value_error" and "input" in error:
        message = f"{message} (got {error['input']!r})"
    return f"{source}: {message}" if location == "<root>" else f"{source}: {location}: {message}"


def parse_config(raw: Any, model: type[ConfigT], source: str = "config") -> ConfigT:
    """Validate a parsed YAML mapping into `model`, raising a one-line `ConfigError`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping of keys, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        first = _format_error(source, errors[0], getattr(model, "MOVED_KEYS", {}))
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(first + more) from None


#: Key of a config file that names the file it builds on (relative to its own folder).
EXTENDS_KEY = "extends"


def merge_layers(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`: mappings merge key by key, anything else (lists, scalars, null) replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_layers(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass --config with an existing YAML file)")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None


def read_layered(path: str | Path, _seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], tuple[Path, ...]]:
    """The file's mapping with its `extends:` chain merged underneath; returns it and the files read (child first).

    A variant states only what differs from its base (`extends: distill_intent.yaml`). Merging is plain
    Python over the parsed YAML rather than OmegaConf: the configs use no interpolation, pydantic
    validates the merged result, and one recursive function is easier to audit than a dependency.
    """
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"{path}: '{EXTENDS_KEY}' loops back to a file already in the chain ({chain})")
    raw = _read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(raw).__name__}")
    parent = raw.pop(EXTENDS_KEY, None)
    if parent is None:
        return raw, (path,)
    if not isinstance(parent, str) or not parent.strip():
        raise ConfigError(f"{path}: {EXTENDS_KEY}: expected the path of the base YAML file, got {parent!r}")
    base_path = path.parent / parent
    if not base_path.is_file():
        raise ConfigError(f"{path}: {EXTENDS_KEY}: base file not found: {base_path} (relative to this file's folder)")
    base, files = read_layered(base_path, (*_seen, path))
    return merge_layers(base, raw), (path, *files)


def load_config(path: str | Path, model: type[ConfigT]) -> ConfigT:
    """Read a YAML file (and the files it `extends:`) and validate it into `model`; problems are one-line `ConfigError`s.

    An error in a layered file names the file and its bases, e.g. ``configs/x.yaml (extends
    configs/distill_intent.yaml): student.stage2.training.epochs: ...``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass --config with an existing YAML file)")
    raw, files = read_layered(path)
    source = str(path) if len(files) == 1 else f"{path} (extends {', '.join(str(f) for f in files[1:])})"
    return parse_config(raw, model, source=source)


def resolve_relative_paths(config: ConfigT, base: Path) -> ConfigT:
    """Make every input file path (fields named ``path`` or ``*_path``) absolute, relative to `base` (the config file's folder).

    Output folders (e.g. ``student.checkpoints.dir``) stay relative to the working directory.
    """
    updates: dict[str, Any] = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        if (name == "path" or name.endswith("_path")) and isinstance(value, Path) and not value.is_absolute():
            updates[name] = (base / value).resolve()
        elif isinstance(value, BaseModel):
            resolved = resolve_relative_paths(value, base)
            if resolved is not value:
                updates[name] = resolved
    return config.model_copy(update=updates) if updates else config
