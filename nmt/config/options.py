"""Options described once: each config field carries its meaning, allowed values and roles as metadata.

`--help`, `check`, the cache keys, the resume checks and the configuration reference page all read
them from here, so a field's description lives beside its type and default and nowhere else.
"""

from __future__ import annotations

import typing
from dataclasses import Field, field, fields, is_dataclass
from typing import Any

# What a field's value takes part in besides the run itself. A field may have several roles, or none.
ROLES = {
    "corpus": "changes the prepared corpus: part of its cache key, so another value prepares the corpus anew",
    "tokenizer": "decides the tokenizer (its training text or its options): part of the tokenizer's and the "
    "prepared corpus's cache keys; a resumed run must have the checkpoint's value",
    "runtime": "how the corpus is loaded and batched, or where files go: in no cache key; a run on a prepared "
    "directory (`data.prepared`) keeps its own value, where it takes the others from the directory",
    "incidental": "a path, thread count or display choice that leaves the result as it is: left out of sweep job "
    "directory names (`hydra.job.config.override_dirname.exclude_keys` in `conf/train.yaml`)",
}


def option(default: Any, help: str, *, choices: tuple[Any, ...] | None = None, roles: tuple[str, ...] = ()) -> Any:
    """A config field with its meaning, allowed values and roles as metadata.

    Args:
        default: the value; a list is copied for every instance, and a dataclass type (a nested group)
            is built anew for every instance.
        help: what the option means, with its unit, in one line of `--help`.
        choices: the only values `check` accepts (for a list: the values its items may take).
        roles: keys of `ROLES`.
    """
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"`roles` must be among {', '.join(ROLES)}, but has {', '.join(sorted(unknown))}.")
    metadata = {"help": help, "choices": choices, "roles": roles}
    if isinstance(default, list):
        return field(default_factory=default.copy, metadata=metadata)
    if isinstance(default, type) and is_dataclass(default):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


def shown(value: Any) -> str:
    """A value as it would be typed on the command line; Hydra's `???` (no default) as `(required)`."""
    if value == "???":
        return "(required)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(shown(v) for v in value) + "]"
    return str(value)


def _field(cls: type, name: str) -> Field:
    return next(f for f in fields(cls) if f.name == name)


def help_of(cls: type, name: str) -> str:
    """The meaning of field `name` of the config dataclass `cls`."""
    return _field(cls, name).metadata.get("help", "")


def choices_of(cls: type, name: str) -> tuple[Any, ...] | None:
    """The values field `name` of `cls` may take, or None when any value of its type will do."""
    return _field(cls, name).metadata.get("choices")


def fields_with_role(cls: type, role: str) -> tuple[str, ...]:
    """Names of the fields of `cls` that have `role`, in declaration order."""
    return tuple(f.name for f in fields(cls) if role in f.metadata.get("roles", ()))


def keys_with_role(cls: type, role: str, prefix: str = "") -> list[str]:
    """Dotted keys (`data.root`) of the fields with `role` in `cls` and the groups nested in it."""
    keys = [f"{prefix}{name}" for name in fields_with_role(cls, role)]
    for name, child in groups_of(cls).items():
        if child is not None:
            keys += keys_with_role(child, role, f"{prefix}{name}.")
    return keys


def groups_of(cls: type) -> dict[str, type | None]:
    """Field name -> the config dataclass it holds (`DataConfig` or `DataConfig | None`), None for a plain value."""
    hints = typing.get_type_hints(cls)
    return {f.name: _dataclass_in(hints[f.name]) for f in fields(cls)}


def _dataclass_in(hint: Any) -> type | None:
    if is_dataclass(hint):
        return hint
    return next((arg for arg in typing.get_args(hint) if is_dataclass(arg)), None)
