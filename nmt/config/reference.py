"""The configuration reference page, made from the config dataclasses' field metadata (as `--help` is).

`docs/hooks.py` writes `configuration_markdown()` into the documentation site at build time.
"""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields

from nmt.config.commands import (
    AlignConfig,
    AverageConfig,
    BacktranslateConfig,
    BenchmarkConfig,
    EvaluateConfig,
    ExportConfig,
    PrepareConfig,
    PruneConfig,
    ServeConfig,
    TrainConfig,
    TranslateConfig,
)
from nmt.config.groups import (
    AugmentConfig,
    DataConfig,
    DecodeConfig,
    ModelConfig,
    OptimConfig,
    TokenizerConfig,
    TrainerConfig,
)
from nmt.config.options import ROLES, groups_of, shown

GROUPS = {
    "data": DataConfig,
    "tokenizer": TokenizerConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "trainer": TrainerConfig,
    "decode": DecodeConfig,
    "augment": AugmentConfig,
}
COMMANDS = {
    "nmt-train": TrainConfig,
    "nmt-prepare": PrepareConfig,
    "nmt-translate": TranslateConfig,
    "nmt-evaluate": EvaluateConfig,
    "nmt-benchmark": BenchmarkConfig,
    "nmt-export": ExportConfig,
    "nmt-average": AverageConfig,
    "nmt-align": AlignConfig,
    "nmt-prune": PruneConfig,
    "nmt-backtranslate": BacktranslateConfig,
    "nmt-serve": ServeConfig,
}
_HEADER = ["| key | type | default | allowed values | role | meaning |", "| --- | --- | --- | --- | --- | --- |"]


def configuration_markdown() -> str:
    """The reference page: the roles, then one section per option group and per command, each a table."""
    lines = [
        "# Configuration reference",
        "",
        "Every option of every command, generated from the config dataclasses in `nmt/config/` (the same "
        "field metadata `--help` reads). Defaults here are the dataclasses'; a command's entry config in "
        "`conf/` and the group options it chooses may set others: `nmt-train experiment=X --help` shows the "
        "values a command line composes to.",
        "",
        "## Roles",
        "",
        "What a value takes part in besides the run itself.",
        "",
        "| role | meaning |",
        "| --- | --- |",
        *(f"| `{role}` | {_cell(meaning)} |" for role, meaning in ROLES.items()),
        "",
        "## Option groups",
        "",
        "Shared by several commands: a group's options are set as `group.key=value`, and `group=option` "
        "picks a file from `conf/group/`.",
    ]
    for name, cls in GROUPS.items():
        lines += ["", f"### {name}", "", _about(cls), "", *_table(cls)]
    lines += ["", "## Commands"]
    for command, cls in COMMANDS.items():
        lines += ["", f"### {command}", "", _about(cls), "", *_table(cls)]
    return "\n".join(lines) + "\n"


def _about(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__ or "")


def _table(cls: type) -> list[str]:
    """One row per field of `cls`; a nested group's row links to the group's section."""
    rows = []
    for f, group in zip(fields(cls), groups_of(cls).values(), strict=True):
        default = f.default_factory() if f.default is MISSING else f.default
        meaning = f.metadata["help"]
        if group is not None:
            name = next(n for n, c in GROUPS.items() if c is group)
            meaning += f"; see [{name}](#{name})"
        cells = [
            f"`{f.name}`",
            _cell(str(f.type)),
            "" if group is not None and default is not None else f"`{shown(default)}`",
            ", ".join(f"`{c}`" for c in f.metadata["choices"] or ()),
            ", ".join(f"`{r}`" for r in f.metadata["roles"]),
            _cell(meaning),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return _HEADER + rows


def _cell(text: str) -> str:
    """Text for a Markdown table cell: outside code spans, `|` escaped and `<` as an entity (not HTML)."""
    parts = text.split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|").replace("<", "&lt;") for i, p in enumerate(parts))
