"""`nmt-average`: average the weights of several checkpoints into one model (checkpoint averaging).

The result is a self-contained model like a run's `model.pt`: every command takes it. The checkpoints
must share the model shape and the tokenizer; one that differs is refused, named.

Examples:
    nmt-average run=runs/multi30k_en_de last=5 output=runs/multi30k_en_de/average5.pt
    nmt-average ckpts=[a/checkpoints/last.ckpt,b/checkpoints/last.ckpt] output=ab.pt
"""

from __future__ import annotations

from pathlib import Path

from nmt.average import average_checkpoints, last_checkpoints
from nmt.checkpoint import save_checkpoint
from nmt.cli.hydra_config import entry_point
from nmt.config import AverageConfig, ConfigError


def run(cfg: AverageConfig) -> None:
    """Average `cfg.ckpts` (or the run's `cfg.last` latest checkpoints) into `cfg.output`."""
    paths = cfg.ckpts if cfg.run is None else [str(p) for p in last_checkpoints(cfg.run, cfg.last)]
    if Path(cfg.output).resolve() in {Path(path).resolve() for path in paths}:
        raise ConfigError(f"`output` {cfg.output} is one of the checkpoints averaged: writing it would replace it.")
    save_checkpoint(average_checkpoints(paths), cfg.output)
    print(f"wrote {cfg.output}: the mean of {len(paths)} checkpoints")
    for path in paths:
        print(f"  {path}")


main = entry_point("average", AverageConfig, run, __doc__)
