"""Typed configuration: one dataclass per concern, each default stated once.

`groups` holds the option groups commands share, `commands` one config per command,
`check` the rules, `options` the metadata every field carries (meaning, allowed values,
roles), `reference` the configuration reference page made from it.

Hydra composes the YAML under `conf/` against these dataclasses (registered as
structured-config schemas in `nmt.cli.schema`), so unknown keys and wrong types
fail at start. Entry points convert the composed config once with
`OmegaConf.to_object` and call `check(cfg)`, which collects every rule a value
breaks and raises once. Library code receives these dataclasses, never a
`DictConfig`.
"""

from nmt.config.check import ConfigError, check
from nmt.config.commands import (
    BACKENDS,
    PRUNE_RANKS,
    QUANTIZATIONS,
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
    reference_paths,
)
from nmt.config.groups import (
    PRECISIONS,
    AugmentConfig,
    DataConfig,
    DecodeConfig,
    ModelConfig,
    OptimConfig,
    TokenizerConfig,
    TrainerConfig,
)

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "PRUNE_RANKS",
    "QUANTIZATIONS",
    "AlignConfig",
    "AugmentConfig",
    "AverageConfig",
    "BacktranslateConfig",
    "BenchmarkConfig",
    "ConfigError",
    "DataConfig",
    "DecodeConfig",
    "EvaluateConfig",
    "ExportConfig",
    "ModelConfig",
    "OptimConfig",
    "PrepareConfig",
    "PruneConfig",
    "ServeConfig",
    "TokenizerConfig",
    "TrainConfig",
    "TrainerConfig",
    "TranslateConfig",
    "check",
    "reference_paths",
]
