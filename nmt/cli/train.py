"""`nmt-train`: compose the Hydra config, train, and say where the best model is."""

from __future__ import annotations

from nmt.cli.hydra_config import entry_point
from nmt.config import TrainConfig
from nmt.train.run import train


def run(cfg: TrainConfig) -> float | None:
    """Train as `cfg` says and print where the best model is and how fast training ran."""
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


main = entry_point("train", TrainConfig, run)
