"""Config loading for every service: defaults < YAML file < environment < explicit overrides.

Each service has one frozen pydantic model (extra keys forbidden). Environment variables use a
prefix and `__` for nesting: `DFLY_DAEMON__STORAGE__QUOTA_BYTES=1000000`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class Section(BaseModel):
    """Base for config sections: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _readable_file(value: str) -> str:
    if value and not Path(value).is_file():
        raise ValueError(f"no such file: {value}")
    return value


# A path that is empty (not set) or names an existing file; checked when the config loads, so a typo
# fails at start with the key's name, not at the first connection.
OptionalFile = Annotated[str, AfterValidator(_readable_file)]


class ConfigError(Exception):
    """A config file or variable is wrong; the message names the key path."""


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_value(raw: str) -> Any:
    """Lists and mappings come as JSON; everything else stays a string for pydantic to coerce, so a
    secret like `0123` or `true` is never turned into a number or a bool."""
    if raw.startswith(("[", "{")):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            pass
    return raw


def _env_tree(prefix: str, environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    start = prefix.upper() + "__"
    for name, value in environ.items():
        if not name.upper().startswith(start):
            continue
        path = [p.lower() for p in name[len(start):].split("__") if p]
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if path:
            node[path[-1]] = _env_value(value)
    return tree


def load_config(
    model: type[M],
    path: str | Path | None = None,
    *,
    env_prefix: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> M:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        data = loaded
    if env_prefix:
        data = _merge(data, _env_tree(env_prefix, os.environ if environ is None else environ))
    if overrides:
        data = _merge(data, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid config{f' in {path}' if path else ''}: {problems}") from exc
