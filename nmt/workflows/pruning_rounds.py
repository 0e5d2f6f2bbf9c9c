"""Head pruning by importance (Michel et al. 2019): remove the least important heads a step at a time.

The heads are scored on the validation pairs (`nmt.evaluate.heads`) and ranked by one score (`rank`:
raw importance by default; on the Multi30k model the layer-normalized ranking loses far more BLEU).
Each round removes the next `step` fraction of the original heads in that order, physically
(`nmt.model.head_removal`), and translates the validation source to measure BLEU and speed; `reestimate`
scores the remaining heads anew after each round (Michel et al.'s iterative variant). Rounds stop at
`fraction` of the heads removed, or once validation BLEU falls more than `tolerance` below the
unpruned model's; the model kept is the most pruned one within the tolerance. A report split is
translated at every round too, for the curve, but never decides anything.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nmt.checkpoint import SpecialIds
from nmt.config import PRUNE_RANKS, DecodeConfig
from nmt.data.batching import teacher_forcing_batches
from nmt.data.corpus import ParallelText
from nmt.data.tokenizer import Tokenizer
from nmt.decode.engine import TorchEngine
from nmt.decode.spelling import Spelling
from nmt.decode.translator import Translator
from nmt.evaluate.benchmark import WARMUP_LINES
from nmt.evaluate.heads import HeadStats, head_statistics
from nmt.evaluate.metrics import score
from nmt.model import Transformer
from nmt.model.head_removal import AttentionKey, prune_heads

Head = tuple[str, int, int]  # (kind, layer, head) with the head's index in the unpruned model


@dataclass
class Round:
    """The model after one round: what it lost, what it scores, how fast it decodes."""

    heads: int  # attention heads left
    removed: list[Head]  # the heads removed in this round
    params: int
    valid_bleu: float
    valid_sent_per_s: float
    report_bleu: float | None = None
    report_sent_per_s: float | None = None


@dataclass
class Pruning:
    """The rounds of a pruning run, the model kept and the head table of the unpruned model."""

    rounds: list[Round]
    kept: int  # index into `rounds` of the model kept
    model: Transformer
    stats: list[HeadStats]  # the unpruned model's heads

    def to_json(self) -> dict[str, Any]:
        """Plain data for the curve file `nmt-plot --pruning` draws."""
        total = self.rounds[0].heads
        return {
            "total_heads": total,
            "kept": self.kept,
            "rounds": [{**dataclasses.asdict(r), "removed_fraction": 1 - r.heads / total} for r in self.rounds],
        }


@dataclass
class PruningData:
    """What a pruning run measures on: tokenizer, validation pairs and an optional report split."""

    tokenizer: Tokenizer
    special_ids: SpecialIds
    valid: ParallelText
    tgt_lang: str
    report: ParallelText | None = None
    max_tokens: int = 4096


def prune_in_rounds(
    model: Transformer,
    data: PruningData,
    translator_of: Callable[[Transformer], Translator],
    *,
    step: float = 0.1,
    fraction: float | None = None,
    tolerance: float | None = None,
    rank: str = "importance",
    reestimate: bool = False,
    log: Callable[[str], None] = print,
) -> Pruning:
    """Prune `model` (eval mode, on its device) round by round; see the module docstring.

    Args:
        translator_of: a translator for a model (the decode settings BLEU is measured with).
        step: fraction of the original heads removed per round, at least one head.
        fraction: stop once this fraction of the heads is gone (None: only `tolerance` stops).
        tolerance: BLEU points of validation loss allowed (None: only `fraction` stops).
        rank: the `HeadStats` score whose lowest heads go first: importance (Michel et al.'s raw score),
            normalized (theirs divided by the layer's norm, their ranking across layers) or confidence (Voita et al.).
        reestimate: score the remaining heads anew after each round, instead of ranking once on the full model
            (on the Multi30k model, ranking once loses less BLEU).
    """
    if rank not in PRUNE_RANKS:
        raise ValueError(f"`rank` must be one of {', '.join(PRUNE_RANKS)}, but is {rank!r} instead.")
    if fraction is None and tolerance is None:
        raise ValueError("give `fraction`, `tolerance` or both: with neither, pruning would not stop.")
    if not 0 < step < 1 or (fraction is not None and not 0 < fraction < 1):
        raise ValueError(f"`step` and `fraction` must lie in (0, 1), but are {step} and {fraction}.")
    alive = {key: list(range(mha.n_heads)) for key, mha in model.attentions().items()}  # original head ids
    total = sum(map(len, alive.values()))
    per_round = max(1, round(step * total))
    goal = total - 1 if fraction is None else min(total - 1, round(fraction * total))
    src_ids, tgt_ids = data.tokenizer.encode_src(data.valid.src), data.tokenizer.encode_tgt(data.valid.tgt)

    def measure(candidate: Transformer, removed: list[Head]) -> Round:
        translator = translator_of(candidate)
        bleu, speed = _bleu_and_speed(translator, data.valid, data.tgt_lang)
        report = _bleu_and_speed(translator, data.report, data.tgt_lang) if data.report else (None, None)
        heads = sum(mha.n_heads for mha in candidate.attentions().values())
        result = Round(heads, removed, candidate.param_count(), bleu, speed, *report)
        log(_describe(result, total))
        return result

    def statistics(candidate: Transformer) -> list[HeadStats]:
        return head_statistics(candidate, teacher_forcing_batches(src_ids, tgt_ids, data.special_ids, data.max_tokens))

    def ranking(candidate: Transformer) -> tuple[list[HeadStats], list[Head]]:
        """The candidate's head table, and its heads as original ids, least important first."""
        stats = statistics(candidate)
        return stats, [(s.kind, s.layer, alive[s.key][s.head]) for s in sorted(stats, key=lambda s: getattr(s, rank))]

    rounds, current = [measure(model, [])], model
    first_stats, order = ranking(model)
    kept, kept_model = 0, model
    while total - rounds[-1].heads < goal:
        removed = order[: min(per_round, goal - (total - rounds[-1].heads))]
        order = order[len(removed) :]
        drop: dict[AttentionKey, set[int]] = {}
        for kind, layer, original in removed:
            drop.setdefault((kind, layer), set()).add(alive[kind, layer].index(original))
        for kind, layer, original in removed:
            alive[kind, layer].remove(original)
        rounds.append(measure(current := prune_heads(current, drop).eval(), sorted(removed)))
        if tolerance is not None and rounds[0].valid_bleu - rounds[-1].valid_bleu > tolerance:
            break
        kept, kept_model = len(rounds) - 1, current
        if reestimate and total - rounds[-1].heads < goal:
            _, order = ranking(current)
    return Pruning(rounds, kept, kept_model, first_stats)


def _bleu_and_speed(translator: Translator, corpus: ParallelText, tgt_lang: str) -> tuple[float, float]:
    """Corpus BLEU of translating `corpus.src`, and sentences per second (after an untimed warm-up, as
    `nmt-benchmark`'s: every round, the first included, is timed warm)."""
    translator.translate(corpus.src[:WARMUP_LINES])
    start = time.perf_counter()
    hyps = [t.best for t in translator.translate(corpus.src)]
    seconds = time.perf_counter() - start
    (bleu,) = score(hyps, [corpus.tgt], ["bleu"], tgt_lang=tgt_lang)
    return bleu.value, len(hyps) / max(seconds, 1e-9)


def _describe(r: Round, total: int) -> str:
    report = "" if r.report_bleu is None else f", report BLEU {r.report_bleu:.2f} at {r.report_sent_per_s:.0f} sent/s"
    return (
        f"{total - r.heads:3d}/{total} heads removed ({r.params:,} parameters): valid BLEU {r.valid_bleu:.2f} "
        f"at {r.valid_sent_per_s:.0f} sent/s{report}"
    )


def pruned_checkpoint(model: Transformer, meta: dict[str, Any], step: int) -> dict[str, Any]:
    """A slim self-contained checkpoint of `model`: the source's `nmt` metadata with the pruned shape."""
    return {
        "state_dict": {f"model.{name}": tensor for name, tensor in model.state_dict().items()},
        "nmt": {**meta, "model_config": dataclasses.asdict(model.cfg)},
        "global_step": step,
    }


def torch_translator_of(
    tokenizer: Tokenizer, special_ids: SpecialIds, decode: DecodeConfig
) -> Callable[[Transformer], Translator]:
    """`translator_of` for `prune_in_rounds`: the PyTorch engine on the model's own device."""

    def translator_of(model: Transformer) -> Translator:
        engine = TorchEngine(model, special_ids, next(model.parameters()).device, Spelling.of(tokenizer))
        return Translator(engine, tokenizer, decode)

    return translator_of
