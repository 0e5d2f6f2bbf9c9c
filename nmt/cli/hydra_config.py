"""Where the Hydra configs live, the structured schemas they validate against, and the one-time conversion."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from nmt.atomic import check_writable
from nmt.cli.usage import argv_problems, group_options, help_text, wants_help
from nmt.config import (
    AlignConfig,
    AverageConfig,
    BacktranslateConfig,
    BenchmarkConfig,
    ConfigError,
    DataConfig,
    EvaluateConfig,
    ExportConfig,
    PrepareConfig,
    PruneConfig,
    ServeConfig,
    TrainConfig,
    TranslateConfig,
    check,
)
from nmt.errors import UserError

# Problems with the user's input, files or environment: one line and exit status 1, no traceback.
# Anything else is a bug and keeps its traceback.
USER_ERRORS = (UserError,)


def _conf_dir() -> str:
    """`nmt/conf` inside an installed wheel, else the repository's top-level `conf/`."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"no Hydra configs found beside {package} (looked for conf/train.yaml).")


CONF_DIR = _conf_dir()

Config = TypeVar("Config")


@dataclass
class Job:
    """One finished job of a Hydra sweep: its directory, its overrides and what `run` returned."""

    dir: str
    overrides: list[str]
    result: Any


def corpus_config(name: str, root: str | None) -> DataConfig:
    """The corpus `conf/data/NAME.yaml` describes, read from `root` (for scripts that take a corpus by name)."""
    path = Path(CONF_DIR) / "data" / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"no corpus config {path}; the names are those of conf/data/*.yaml.")
    data = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig), OmegaConf.load(path)))
    return dataclasses.replace(data, root=root)


def register_schemas() -> None:
    """Register the dataclasses as schemas: each entry config lists its schema first in `defaults`."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="translate_schema", node=TranslateConfig)
    store.store(name="evaluate_schema", node=EvaluateConfig)
    store.store(name="benchmark_schema", node=BenchmarkConfig)
    store.store(name="export_schema", node=ExportConfig)
    store.store(name="prepare_schema", node=PrepareConfig)
    store.store(name="align_schema", node=AlignConfig)
    store.store(name="prune_schema", node=PruneConfig)
    store.store(name="average_schema", node=AverageConfig)
    store.store(name="backtranslate_schema", node=BacktranslateConfig)
    store.store(name="serve_schema", node=ServeConfig)


def to_dataclass(cfg: DictConfig, schema: type[Config]) -> Config:
    """Convert the composed config once into typed dataclasses and check every rule."""
    try:
        value = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as err:
        key = err.full_key
        raise ConfigError(
            f"`{key}` is required, but is not given: add {key}=... to the command line (see --help)."
        ) from None
    if not isinstance(value, schema):
        raise TypeError(f"config must convert to {schema.__name__}, but converted to {type(value).__name__}.")
    return check(value)


def _composed_config(
    config_name: str, overrides: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, str | None]]:
    """The config composed with `overrides` as plain data (interpolations unresolved), and the option each
    config group chooses."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides or [], return_hydra_config=True)
    choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
    del cfg.hydra
    groups = {g: c for g, c in choices.items() if "/" not in g and not g.startswith("hydra")}
    return OmegaConf.to_container(cfg, resolve=False), groups


def help_for(command: str, config_name: str, schema: type, doc: str, args: list[str]) -> str:
    """`--help`: the options with the values the command line's overrides (`experiment=X`) give them.

    When the overrides do not compose (a sweep's `a=1,2`, a misspelt key), the defaults are shown.
    """
    values, defaults = _composed_config(config_name)
    groups = {group: group_options(CONF_DIR, group) for group in defaults}
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    if not overrides:
        return help_text(command, doc, schema, values, groups, defaults)
    try:
        values, chosen = _composed_config(config_name, overrides)
    except Exception:  # noqa: BLE001 - help is still wanted; running the command names the problem
        return help_text(command, doc, schema, values, groups, defaults)
    return help_text(command, doc, schema, values, groups, chosen, overrides)


def run_dir_problems(config_name: str, args: list[str]) -> list[str]:
    """Hydra creates `hydra.run.dir` before nmt runs (and fails with a traceback): check it can be made.

    Only for single runs with a run directory of their own; any composition problem is left to Hydra.
    """
    if "-m" in args or "--multirun" in args:
        return []
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
        run_dir = Path(str(cfg.hydra.run.dir))
    except Exception:  # noqa: BLE001 - Hydra reports its own composition errors next
        return []
    if run_dir == Path("."):
        return []
    existing = next(p for p in [run_dir, *run_dir.parents] if p.exists())
    try:
        check_writable(existing / "probe")
    except UserError as err:
        return [f"hydra.run.dir {run_dir} cannot be created: {err}"]
    return []


def entry_point(
    config_name: str,
    schema: type[Config],
    run: Callable[[Config], Any],
    doc: str,
    summarize: Callable[[list[Job]], None] | None = None,
) -> Callable[[], None]:
    """A console script: compose `conf/{config_name}.yaml`, convert it to `schema`, and call `run` with it.

    Args:
        config_name: the entry config, also the command's name after `nmt-`.
        schema: the config dataclass `run` takes.
        run: the command's work.
        doc: the command's description and examples, shown by `--help`.
        summarize: called after a sweep (`-m`) with every job, e.g. to print a table of results.
    """
    command = f"nmt-{config_name}"
    jobs: list[Job] = []

    def task(cfg: DictConfig) -> Any:
        try:
            result = run(to_dataclass(cfg, schema))
        except USER_ERRORS as err:
            raise SystemExit(f"error: {err}") from None
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            jobs.append(Job(hydra_cfg.runtime.output_dir, list(hydra_cfg.overrides.task), result))
        return result

    def main() -> None:
        register_schemas()
        args = sys.argv[1:]
        if wants_help(args):
            print(help_for(command, config_name, schema, doc, args))
            return
        _, chosen = _composed_config(config_name)
        groups = {group: group_options(CONF_DIR, group) for group in chosen}
        problems = argv_problems(command, args, schema, groups) or run_dir_problems(config_name, args)
        if problems:
            raise SystemExit("error: " + "\nerror: ".join(problems))
        jobs.clear()
        hydra.main(config_path=CONF_DIR, config_name=config_name, version_base="1.3")(task)()
        if jobs and summarize is not None:
            summarize(jobs)

    return main
