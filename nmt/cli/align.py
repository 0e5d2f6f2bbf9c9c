"""`nmt-align`: word alignments of given sentence pairs from a model's cross-attention, scored by AER.

Teacher-forces each target and links every target word to the source word it attends to most
(layer `layer`, mean over heads; method=shift reads the step where the word is the decoder input).
Words are the space-separated words of the text. With reverse_ckpt, both directions are
symmetrized. With gold, prints precision, recall and alignment error rate (Och and Ney 2003);
all_layers=true scores both methods at every decoder layer.

Examples:
    nmt-align ckpt=model.pt input=pairs.src-tgt output=pairs.align
    nmt-align ckpt=model.pt input=../shared/data/alignment/enfr.src-tgt \\
        gold=../shared/data/alignment/enfr.gold gold_one_indexed=true all_layers=true
"""

from __future__ import annotations

from nmt.atomic import atomic_open, check_writable
from nmt.cli.hydra_config import entry_point
from nmt.config import AlignConfig
from nmt.data.corpus import CorpusError, check_aligned, read_lines
from nmt.decode.align import METHODS, Aligner, Link, bidirectional_links, format_links
from nmt.device import set_threads
from nmt.evaluate.alignment import (
    AlignmentScores,
    alignment_error_rate,
    check_gold_fits,
    read_alignments,
    read_pairs,
)


def read_input(cfg: AlignConfig) -> list[tuple[str, str]]:
    """The sentence pairs, from `input` or from `src` and `tgt` (which must have as many lines)."""
    if cfg.input is not None:
        return read_pairs(cfg.input)
    src, tgt = read_lines(cfg.src), read_lines(cfg.tgt)
    check_aligned(cfg.src, src, cfg.tgt, tgt)
    return list(zip(src, tgt, strict=True))


def links_of(cfg: AlignConfig, aligner: Aligner, pairs: list[tuple[str, str]]) -> list[set[Link]]:
    """The links `cfg` asks for: one direction, or both symmetrized."""
    links = aligner.align(pairs, cfg.method, cfg.layer)
    if cfg.reverse_ckpt is None:
        return links
    reverse = Aligner.from_checkpoint(cfg.reverse_ckpt, cfg.device, cfg.max_tokens)
    backward = reverse.align([(tgt, src) for src, tgt in pairs], cfg.method, cfg.layer)
    return bidirectional_links(links, backward, cfg.symmetrize)


def run(cfg: AlignConfig) -> None:
    """Align `cfg`'s pairs; write the links, and score them when gold links are given."""
    set_threads(cfg.num_threads)
    if cfg.output is not None:
        check_writable(cfg.output)
    pairs = read_input(cfg)
    gold = None if cfg.gold is None else read_alignments(cfg.gold, cfg.gold_one_indexed)
    if gold is not None and len(gold) != len(pairs):
        raise CorpusError(
            f"gold file {cfg.gold} has {len(gold)} lines for {len(pairs)} sentence pairs; they must pair up."
        )
    if gold is not None and not any(reference.sure for reference in gold):
        raise CorpusError(f"gold file {cfg.gold} has no sure links (every link is `p`): AER is undefined.")
    if gold is not None:
        check_gold_fits(gold, pairs, cfg.gold, cfg.gold_one_indexed)
    aligner = Aligner.from_checkpoint(cfg.ckpt, cfg.device, cfg.max_tokens)
    if cfg.all_layers:
        decoder = aligner.model.decoder
        layers = [i for i, layer in enumerate(decoder) if layer.cross_attn.n_heads > 0]
        print("| method | decoder layer | precision | recall | AER |\n| --- | ---: | ---: | ---: | ---: |")
        for (method, layer), links in aligner.align_all(pairs, METHODS, layers).items():
            s = _scores(links, gold, cfg.gold)
            print(f"| {method} | {layer} | {100 * s.precision:.1f} | {100 * s.recall:.1f} | {100 * s.aer:.1f} |")
        if pruned := [str(i) for i in range(len(decoder)) if i not in layers]:
            print(f"decoder layer(s) {', '.join(pruned)}: no cross-attention heads left (pruned), nothing to score")
        return
    links = links_of(cfg, aligner, pairs)
    if cfg.output is not None:
        with atomic_open(cfg.output) as out:
            out.writelines(format_links(pair) + "\n" for pair in links)
    elif gold is None:
        print("\n".join(format_links(pair) for pair in links))
    if gold is not None:
        s = _scores(links, gold, cfg.gold)
        print(
            f"{s.sentences} pairs: precision {100 * s.precision:.1f}, "
            f"recall {100 * s.recall:.1f}, AER {100 * s.aer:.1f}"
        )


def _scores(links: list, gold: list, path: str) -> AlignmentScores:
    """AER and its parts against the gold file at `path`; a set it cannot score is a `CorpusError` naming it."""
    try:
        return alignment_error_rate(links, gold)
    except ValueError as err:  # no predicted links: every pair has an empty side
        raise CorpusError(f"cannot score the alignments against gold file {path}: {err}") from None


main = entry_point("align", AlignConfig, run, __doc__)
