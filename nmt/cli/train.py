"""`nmt-train`: compose the Hydra config, train, and say where the best model is."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from nmt.cli.hydra_config import CONF_DIR, register_schemas, to_dataclass
from nmt.config import TrainConfig
from nmt.train.run import train


def _main(dcfg: DictConfig) -> float | None:
    cfg = to_dataclass(dcfg, TrainConfig)
    result = train(cfg)
    bleu = "n/a" if result.best_bleu is None else f"{result.best_bleu:.2f}"
    print(f"\nbest checkpoint: {result.best_checkpoint} (validation BLEU {bleu}, {result.steps} steps)")
    print(f"exported model:  {result.model_path}")
    speed = result.throughput
    print(
        f"throughput:      {speed['median_tok_s']:,.0f} real source+target tokens/s (median of "
        f"{speed['steps_measured']} steps); peak memory {speed['peak_rss_gb']:.2f} GB"
    )
    print(f'translate with:  echo "your sentence" | nmt-translate ckpt={result.model_path}')
    return result.best_bleu  # the value a Hydra sweeper optimises


def main() -> None:
    """Console entry point `nmt-train`."""
    register_schemas()
    hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")(_main)()
