"""`nmt-evaluate`: score hypothesis files, or translate a named test set with a checkpoint and score it.

Scores with sacreBLEU (BLEU, chrF, TER; detokenized text against raw references) and prints
each score beside its signature. With `hyp` and `ref` it scores files (several references with
ref=[A,B]; a bootstrap confidence interval with bootstrap=1000; significance against
baseline=FILE). With `ckpt` it translates a test split and scores that: by default the test split
of the data the checkpoint was trained on, or the corpus chosen with data=NAME; ckpt=[A,B] scores
the ensemble of several checkpoints.

Examples:
    nmt-evaluate hyp=test.de ref=ref.de bootstrap=1000
    nmt-evaluate ckpt=runs/quickstart/model.pt split=valid
    nmt-evaluate ckpt=[a/model.pt,b/model.pt] decode.beam_size=5
"""

from __future__ import annotations

import json
import sys

from nmt.atomic import atomic_open, check_writable
from nmt.checkpoint import trained_on
from nmt.cli.hydra_config import entry_point
from nmt.config import EvaluateConfig, reference_paths
from nmt.data.corpus import check_aligned, check_has_text, read_lines
from nmt.data.sources import describe, get_corpus
from nmt.decode.translator import Translator
from nmt.device import retain_freed_memory, set_threads
from nmt.evaluate import paired_significance, score, to_json, to_markdown_table


def hypotheses_and_references(cfg: EvaluateConfig) -> tuple[list[str], list[list[str]], str | None, str]:
    """Read `hyp`/`ref` files, or translate a test split with `ckpt`.

    Returns the hypotheses, the reference streams, the target language (None if
    unknown) and a line saying what was scored.
    """
    if cfg.hyp is not None:
        hyps = read_lines(cfg.hyp)
        refs = [read_lines(path) for path in reference_paths(cfg)]
        for path, ref in zip(reference_paths(cfg), refs, strict=True):
            check_aligned(cfg.hyp, hyps, path, ref)
            check_has_text(path, ref)
        scored = f"{cfg.hyp} against {', '.join(reference_paths(cfg))} ({len(hyps):,} sentences)"
        return hyps, refs, cfg.tgt_lang or (cfg.data.tgt_lang if cfg.data else None), scored
    data = cfg.data or trained_on(cfg.ckpt)
    langs = (data.src_lang, data.tgt_lang)
    translator = Translator.load(cfg.ckpt, cfg.decode, cfg.device, expect_langs=langs)
    split = cfg.split or data.test
    corpus = get_corpus(data, split)
    hyps = [t.best for t in translator.translate_stream(corpus.src)]
    print(translator.stats.summary(), file=sys.stderr)
    if cfg.output is not None:
        with atomic_open(cfg.output) as out:
            out.writelines(h + "\n" for h in hyps)
    return hyps, [corpus.tgt], cfg.tgt_lang or data.tgt_lang, describe(data, split, len(hyps))


def run(cfg: EvaluateConfig) -> dict:
    """Score as `cfg` says; print a table (or JSON) and return the JSON-ready result."""
    set_threads(cfg.num_threads)
    retain_freed_memory()
    if cfg.output is not None:
        check_writable(cfg.output)  # before translating, not after
    hyps, refs, tgt_lang, scored = hypotheses_and_references(cfg)
    options = {"tokenize": cfg.tokenize, "tgt_lang": tgt_lang, "lowercase": cfg.lowercase}
    scores = score(hyps, refs, cfg.metrics, bootstrap=cfg.bootstrap, **options)
    comparisons = []
    if cfg.baseline is not None:
        baseline = read_lines(cfg.baseline)
        check_aligned(cfg.hyp, hyps, cfg.baseline, baseline)
        comparisons = paired_significance(baseline, hyps, refs, cfg.metrics, method=cfg.significance, **options)
    result = {**to_json(scores, comparisons), "scored": scored}
    if cfg.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(f"scored: {scored}")
        print(to_markdown_table(result["scores"], ["metric", "value", "ci", "signature"]))
        if comparisons:
            print(to_markdown_table(result["comparisons"], ["metric", "baseline", "system", "p_value"]))
    return result


main = entry_point("evaluate", EvaluateConfig, run, __doc__)
