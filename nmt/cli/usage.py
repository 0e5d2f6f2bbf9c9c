"""How a command is called: `--help` built from the config dataclasses, and one-line refusals of mistyped keys
and fairseq-style arguments before Hydra parses them.

The meaning and allowed values of every option are its field's metadata in `nmt/config/`
(`nmt.config.options`), so the dataclasses stay the one source of keys, defaults and meanings;
no source file is read, so `--help` works in an installation without `.py` sources.
"""

from __future__ import annotations

import difflib
import inspect
import re
import shlex
from dataclasses import fields
from pathlib import Path
from typing import Any

from nmt.config.options import choices_of, groups_of, help_of, shown

# Hydra's own flags (hydra/_internal/utils.py:get_args_parser), with and without a value.
_HYDRA_SWITCHES = {"--hydra-help", "--version", "--resolve", "--run", "-r", "--multirun", "-m", "--shell-completion"}
_HYDRA_SWITCHES |= {"-sc"}
_HYDRA_VALUED = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir"}
_HYDRA_VALUED |= {"-cd", "--experimental-rerun"}
_INFO_FLAGS = {"--info", "-i"}  # optional value, one of _INFO_CHOICES; fairseq's `-i FILE` collides with it
_INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
# fairseq/Marian/sacreBLEU flags a newcomer types, and the key each means here.
_FLAG_KEYS = {"i": "input", "o": "output", "path": "ckpt", "beam": "decode.beam_size", "nbest": "decode.n_best"}
_FLAG_KEYS |= {"lenpen": "decode.length_penalty", "checkpoint": "ckpt", "model": "ckpt"}


def wants_help(args: list[str]) -> bool:
    """True when the command line asks for the command's own help (`--help`, `-h`), not Hydra's."""
    return "--help" in args or "-h" in args


# ---- refusing what Hydra would misread ----


def argv_problems(command: str, args: list[str], schema: type, groups: dict[str, list[str]]) -> list[str]:
    """One message per argument that is not a Hydra flag or a `key=value` with a key of `schema`.

    Args:
        command: the console script's name, for the messages.
        args: the command line after the program name.
        schema: the command's config dataclass.
        groups: config group -> its options (what `group=option` may choose).
    """
    problems = []
    i = 0
    while i < len(args):
        arg, following = args[i], args[i + 1] if i + 1 < len(args) else None
        takes_next = arg in _HYDRA_VALUED or (arg in _INFO_FLAGS and following in _INFO_CHOICES)
        if arg in _HYDRA_SWITCHES or takes_next or (arg in _INFO_FLAGS and following is None):
            i += 2 if takes_next else 1
        elif arg.startswith("-") and arg.split("=", 1)[0] not in _HYDRA_VALUED | _INFO_FLAGS:
            value = arg.split("=", 1)[1] if "=" in arg else following
            uses_next = "=" not in arg and value is not None and "=" not in value and not value.startswith("-")
            problems.append(_flag_problem(command, arg.split("=", 1)[0], value if uses_next or "=" in arg else None))
            i += 2 if uses_next else 1
        elif arg in _INFO_FLAGS:  # `-i in.txt`: fairseq's input, not Hydra's --info
            problems.append(_flag_problem(command, arg, following))
            i += 2
        elif "=" not in arg and not arg.startswith("-"):
            problems.append(_positional_problem(command, arg, schema))
            i += 1
        else:
            problems += _key_problems(command, arg, schema, groups, args)
            i += 1
    return problems


def _flag_problem(command: str, flag: str, value: str | None) -> str:
    """A `--name value` or `-x value` argument, with the `key=value` it probably means."""
    name = flag.lstrip("-").replace("-", "_")
    key = _FLAG_KEYS.get(name, name)
    return f"{command} takes key=value options, not {flag}: did you mean {key}={value or '...'}?"


def _positional_problem(command: str, arg: str, schema: type) -> str:
    """A bare word: a checkpoint or an input file given the fairseq way."""
    names = {f.name for f in fields(schema)}
    looks_like_model = arg.endswith((".pt", ".ckpt"))
    key = next((k for k in ("ckpt", "input", "hyp") if k in names and (k == "ckpt") == looks_like_model), None)
    if key is None:
        return f"{command} takes key=value options, not {arg!r}; see {command} --help."
    return f"{command} takes key=value options: did you mean {key}={arg}?"


def _key_problems(command: str, arg: str, schema: type, groups: dict[str, list[str]], args: list[str]) -> list[str]:
    """The key of a `key=value`, `+key=value` or `++key=value` override, checked against `schema`."""
    key = arg.split("=", 1)[0].lstrip("+~")
    if key.startswith("hydra") or "/" in key or "@" in key or key in groups:
        return []  # Hydra's own settings, group paths and packages, or a group choice
    cls, path = schema, []
    for segment in key.split("."):
        children = groups_of(cls)
        if segment not in children:
            return [_unknown_key(command, ".".join([*path, segment]), path, children, groups)]
        path.append(segment)
        child = children[segment]
        if child is None:
            return []
        if getattr(cls(), segment) is None and not any(a.split("=", 1)[0].lstrip("+") == ".".join(path) for a in args):
            options = ", ".join(groups.get(segment, []))
            return [
                f"`{key}` needs `{'.'.join(path)}=NAME` too (NAME: {options}): without it {command} "
                "uses the data the checkpoint was trained on."
            ]
        cls = child
    return []


def _unknown_key(command: str, key: str, path: list[str], children: dict, groups: dict[str, list[str]]) -> str:
    """`key` is not in the schema: say so, with the closest keys and every key of that level."""
    valid = list(children) + ([g for g in groups if g not in children] if not path else [])
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], valid, n=3)
    prefix = "".join(f"{p}." for p in path)
    hint = f" Did you mean {' or '.join(f'`{prefix}{c}`' for c in close)}?" if close else ""
    level = f"keys of `{prefix[:-1]}`" if path else "top-level keys"
    return f"`{key}` is not an option of {command}.{hint} Valid {level}: {', '.join(valid)}."


# ---- --help ----


def help_text(
    command: str,
    doc: str,
    schema: type,
    values: dict[str, Any],
    groups: dict[str, list[str]],
    chosen: dict,
    overrides: list[str] | None = None,
) -> str:
    """The command's `--help`: what it does, its options with values and meanings, its groups, examples.

    Args:
        command: the console script's name.
        doc: the command module's docstring: a summary line, a paragraph, and an `Examples:` block.
        schema: the command's config dataclass.
        values: the composed config as plain data (interpolations unresolved).
        groups: config group -> its options.
        chosen: config group -> the option chosen (None for none).
        overrides: the command line's `key=value` arguments `values` were composed with; none: the defaults.
    """
    about, _, examples = inspect.cleandoc(doc).partition("Examples:")
    source = "defaults as composed from conf/"
    if overrides:
        source = f"values as composed from conf/ with {' '.join(overrides)}"
    lines = [about.strip(), "", f"Options ({command} key=value ...; {source}):"]
    lines += _option_lines(schema, values, "")
    if groups:
        mark = "chosen" if overrides else "default"
        lines += ["", "Config groups (group=option; each sets a block of options at once):"]
        lines += [f"  {group}: {_group_options(options, chosen.get(group), mark)}" for group, options in groups.items()]
    lines += ["", "Examples:", *(f"  {line.strip()}" for line in examples.strip().splitlines())]
    lines += ["", f"Also: {command} ... --cfg job prints the composed config; --hydra-help shows Hydra's options."]
    return "\n".join(lines)


def _group_options(options: list[str], chosen: str | None, mark: str) -> str:
    """The options of a group, `chosen` marked as `mark` (`default`, or `chosen` by the command line)."""
    marked = [f"{o} ({mark})" if o == chosen else o for o in options]
    return ", ".join(marked) + ("" if chosen else " (none by default)" if mark == "default" else " (none chosen)")


def _option_lines(cls: type, values: dict[str, Any] | None, prefix: str) -> list[str]:
    """`  key=value  meaning` for every leaf option of `cls`, nested dataclasses as `group.key`."""
    lines = []
    for name, child in groups_of(cls).items():
        value = getattr(cls(), name) if values is None else values[name]
        if child is not None:
            if value is None:
                lines.append(_option_line(f"{prefix}{name}", None, _meaning(cls, name)))
            lines += _option_lines(child, value, f"{prefix}{name}.")
        else:
            lines.append(_option_line(f"{prefix}{name}", value, _meaning(cls, name)))
    return lines


def _meaning(cls: type, name: str) -> str:
    """A field's help, followed by the values it may take."""
    meaning, choices = help_of(cls, name), choices_of(cls, name)
    if choices is None:
        return meaning
    each = "each " if isinstance(getattr(cls(), name), list) else ""
    return f"{meaning}; {each}one of {' | '.join(map(str, choices))}"


def _option_line(key: str, value: Any, meaning: str) -> str:
    return f"  {f'{key}={shown(value)}':<40} {meaning}".rstrip()


def group_options(conf_dir: str | Path, group: str) -> list[str]:
    """The options of a config group: the YAML files in `conf/{group}/`."""
    return sorted(p.stem for p in Path(conf_dir, group).glob("*.yaml"))


# ---- commands users can paste back ----

_HYDRA_PLAIN = re.compile(r"[A-Za-z0-9_\-+./:@%]+")  # needs no quotes in Hydra's override grammar or a shell


def pasteable(key: str, value: str) -> str:
    """`key=value` as a shell word that Hydra parses back to exactly `value`.

    Hydra reads `=`, `,`, brackets and quotes inside a value as syntax, so such a
    value is put in Hydra's single quotes (escaping quotes), and the word in shell quotes.
    """
    if _HYDRA_PLAIN.fullmatch(value):
        return f"{key}={value}"
    quoted = "'" + value.replace("'", "\\'") + "'"  # a backslash before a quote would need doubling too
    return shlex.quote(f"{key}={quoted}")
