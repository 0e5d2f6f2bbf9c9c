"""`nmt-prune`: remove the least important attention heads, physically, and write a smaller model.

Scores every head on the validation split (Michel et al. 2019: the expected gradient of the loss
with respect to a gate on the head), prints the head table (importance, confidence, entropy), then
removes the least important heads, `step` of them per round, measuring validation BLEU and speed
each round, until `fraction` of the heads is gone or BLEU falls by more than `tolerance`. The model kept
is a normal self-contained checkpoint, with its per-layer head counts in the model config.

Examples:
    nmt-prune ckpt=runs/multi30k_en_de/model.pt tolerance=0.5 output=runs/multi30k_en_de/pruned.pt
    nmt-prune ckpt=model.pt fraction=0.9 report_split=test2016 curve=docs/pruning.json
"""

from __future__ import annotations

import json
import sys
from functools import partial

from nmt.atomic import atomic_open, check_writable
from nmt.checkpoint import load_checkpoint, read_raw, save_checkpoint, trained_on
from nmt.cli.hydra_config import entry_point
from nmt.config import PruneConfig
from nmt.data.sources import get_corpus
from nmt.decode.engine import load_model
from nmt.device import resolve_device, set_threads
from nmt.evaluate.heads import to_markdown
from nmt.workflows.pruning_rounds import Pruning, PruningData, prune_in_rounds, pruned_checkpoint, torch_translator_of


def run(cfg: PruneConfig) -> Pruning:
    """Prune `cfg.ckpt` as `cfg` says; print the head table and the rounds, write the model and curve."""
    set_threads(cfg.num_threads)
    for path in (cfg.output, cfg.curve):
        if path is not None:
            check_writable(path)
    ckpt = load_checkpoint(cfg.ckpt)
    model, tokenizer = load_model(ckpt, cfg.ckpt)
    data = cfg.data or trained_on(cfg.ckpt)
    measured = PruningData(
        tokenizer,
        ckpt.special_ids,
        get_corpus(data, cfg.valid_split or data.valid),
        data.tgt_lang,
        None if cfg.report_split is None else get_corpus(data, cfg.report_split),
        cfg.max_tokens,
    )
    result = prune_in_rounds(
        model.to(resolve_device(cfg.device)),
        measured,
        torch_translator_of(tokenizer, ckpt.special_ids, cfg.decode),
        step=cfg.step,
        fraction=cfg.fraction,
        tolerance=cfg.tolerance,
        rank=cfg.rank,
        reestimate=cfg.reestimate,
        log=partial(print, file=sys.stderr),
    )
    print(to_markdown(result.stats))
    kept = result.rounds[result.kept]
    print(
        f"kept: {result.rounds[0].heads - kept.heads} of {result.rounds[0].heads} heads removed, "
        f"valid BLEU {kept.valid_bleu:.2f} (unpruned {result.rounds[0].valid_bleu:.2f}), "
        f"{kept.params:,} parameters (unpruned {result.rounds[0].params:,})"
    )
    if cfg.curve is not None:
        with atomic_open(cfg.curve) as out:
            json.dump(result.to_json(), out, indent=1)
    if cfg.output is not None:
        meta = read_raw(cfg.ckpt, mmap=True)["nmt"]
        save_checkpoint(pruned_checkpoint(result.model.cpu(), meta, ckpt.step), cfg.output)
        print(f"wrote {cfg.output}")
    return result


main = entry_point("prune", PruneConfig, run, __doc__)
