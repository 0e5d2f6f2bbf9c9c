"""Where the Hydra configs live, the structured schemas they validate against, and the one-time conversion."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from nmt.checkpoint import CheckpointError
from nmt.config import BenchmarkConfig, EvaluateConfig, TrainConfig, TranslateConfig, check
from nmt.data.corpus import CorpusError

# Problems with the user's input: reported as one line and exit status 1, without a traceback.
USER_ERRORS = (CorpusError, CheckpointError, ValueError, OSError)


def _conf_dir() -> str:
    """`nmt/conf` inside an installed wheel, else the repository's top-level `conf/`."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"no Hydra configs found beside {package} (looked for conf/train.yaml).")


CONF_DIR = _conf_dir()

Config = TypeVar("Config")


def register_schemas() -> None:
    """Register the dataclasses as schemas: each entry config lists its schema first in `defaults`."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="translate_schema", node=TranslateConfig)
    store.store(name="evaluate_schema", node=EvaluateConfig)
    store.store(name="benchmark_schema", node=BenchmarkConfig)


def to_dataclass(cfg: DictConfig, schema: type[Config]) -> Config:
    """Convert the composed config once into typed dataclasses and check every rule."""
    value = OmegaConf.to_object(cfg)
    if not isinstance(value, schema):
        raise TypeError(f"config must convert to {schema.__name__}, but converted to {type(value).__name__}.")
    return check(value)


def entry_point(config_name: str, schema: type[Config], run: Callable[[Config], Any]) -> Callable[[], None]:
    """A console script: compose `conf/{config_name}.yaml`, convert it to `schema`, and call `run` with it."""

    def task(cfg: DictConfig) -> Any:
        try:
            return run(to_dataclass(cfg, schema))
        except USER_ERRORS as err:
            raise SystemExit(f"error: {err}") from None

    def main() -> None:
        register_schemas()
        hydra.main(config_path=CONF_DIR, config_name=config_name, version_base="1.3")(task)()

    return main
