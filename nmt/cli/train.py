"""`nmt-train`: compose the Hydra config, train, and say where the best model is.

Trains an encoder-decoder Transformer with label-smoothed cross-entropy, validating with
greedy-search BLEU; writes a run directory with the resolved config, CSV logs, the best
checkpoints by validation BLEU plus `last`, and `model.pt` (the best, slim, self-contained).
Choose a corpus, model size and trainer with the groups below, change any option, resume with
resume=last, or sweep with -m (one job per combination, then a table of their BLEU).

Examples:
    nmt-train data=multi30k_en_de data.root=../shared/data model=small hydra.run.dir=runs/en_de
    nmt-train -m model.attention=scaled_dot,dot,additive trainer.max_steps=500
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from nmt.cli.hydra_config import Job, entry_point
from nmt.cli.usage import pasteable
from nmt.config import TrainConfig
from nmt.errors import UserError
from nmt.evaluate import to_markdown_table
from nmt.train.preemption import PREEMPTED_EXIT_CODE, Preempted
from nmt.train.run import train


def run(cfg: TrainConfig) -> float | None:
    """Train as `cfg` says and print where the best model is and how fast training ran."""
    try:
        result = train(cfg)
    except UserError:
        remove_if_untouched(Path(cfg.run_dir))
        raise
    except Preempted as stop:  # a scheduler's SIGTERM or SIGUSR1: the checkpoint is written, the run unfinished
        print(stop, file=sys.stderr)
        raise SystemExit(PREEMPTED_EXIT_CODE) from None
    bleu = "n/a" if result.best_bleu is None else f"{result.best_bleu:.2f}"
    print(f"\nbest checkpoint: {result.best_checkpoint} (validation BLEU {bleu}, {result.steps} steps)")
    print(f"exported model:  {result.model_path}")
    speed = result.throughput
    print(
        f"throughput:      {speed['median_tok_s']:,.0f} real source+target tokens/s (median of "
        f"{speed['steps_measured']} steps; mean {speed['mean_tok_s']:,.0f}); peak memory {speed['peak_rss_gb']:.2f} GB"
    )
    if speed["ranks"] > 1:
        print(f"all {speed['ranks']} ranks:     {speed['all_ranks_tok_s']:,.0f} real source+target tokens/s (mean)")
    print(f'translate with:  echo "your sentence" | nmt-translate {pasteable("ckpt", str(result.model_path))}')
    return result.best_bleu  # the value a Hydra sweeper optimises


def remove_if_untouched(run_dir: Path) -> None:
    """Remove a run directory that holds nothing but what Hydra wrote at start (a run refused before any work)."""
    if run_dir.is_dir() and all(p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir()):
        shutil.rmtree(run_dir)


def summarize(jobs: list[Job]) -> None:
    """After a sweep: one row per job with its directory, overrides and validation BLEU."""
    rows = [
        {
            "job": job.dir,
            "overrides": " ".join(job.overrides),
            "validation BLEU": job.result,
        }
        for job in jobs
    ]
    print(f"\nsweep of {len(jobs)} jobs:")
    print(to_markdown_table(rows, ["job", "overrides", "validation BLEU"]))


main = entry_point("train", TrainConfig, run, __doc__, summarize)
