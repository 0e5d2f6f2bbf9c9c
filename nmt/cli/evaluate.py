"""`nmt-evaluate`: score hypothesis files, or translate a named test set with a checkpoint and score it."""

from __future__ import annotations

import json
import sys

from nmt.atomic import atomic_open, check_writable
from nmt.cli.hydra_config import entry_point
from nmt.config import EvaluateConfig, reference_paths
from nmt.data.corpus import check_aligned, check_has_text, read_lines
from nmt.data.sources import get_corpus
from nmt.decode.translator import Translator
from nmt.device import set_threads
from nmt.evaluate import paired_significance, score, to_json, to_markdown_table


def hypotheses_and_references(cfg: EvaluateConfig) -> tuple[list[str], list[list[str]], str]:
    """Read `hyp`/`ref` files, or translate `data`'s test split with `ckpt`; also return the target language."""
    if cfg.hyp is not None:
        hyps = read_lines(cfg.hyp)
        refs = [read_lines(path) for path in reference_paths(cfg)]
        for path, ref in zip(reference_paths(cfg), refs, strict=True):
            check_aligned(cfg.hyp, hyps, path, ref)
            check_has_text(path, ref)
        return hyps, refs, cfg.tgt_lang or cfg.data.tgt_lang
    langs = (cfg.data.src_lang, cfg.data.tgt_lang)
    translator = Translator.from_checkpoint(cfg.ckpt, cfg.decode, cfg.device, expect_langs=langs)
    corpus = get_corpus(cfg.data, cfg.split or cfg.data.test)
    hyps = [t.best for t in translator.translate_stream(corpus.src)]
    print(translator.stats.summary(), file=sys.stderr)
    if cfg.output is not None:
        with atomic_open(cfg.output) as out:
            out.writelines(h + "\n" for h in hyps)
    return hyps, [corpus.tgt], cfg.tgt_lang or cfg.data.tgt_lang


def run(cfg: EvaluateConfig) -> dict:
    """Score as `cfg` says; print a table (or JSON) and return the JSON-ready result."""
    set_threads(cfg.num_threads)
    if cfg.output is not None:
        check_writable(cfg.output)  # before translating, not after
    hyps, refs, tgt_lang = hypotheses_and_references(cfg)
    options = {"tokenize": cfg.tokenize, "tgt_lang": tgt_lang, "lowercase": cfg.lowercase}
    scores = score(hyps, refs, cfg.metrics, bootstrap=cfg.bootstrap, **options)
    comparisons = []
    if cfg.baseline is not None:
        baseline = read_lines(cfg.baseline)
        check_aligned(cfg.hyp, hyps, cfg.baseline, baseline)
        comparisons = paired_significance(baseline, hyps, refs, cfg.metrics, method=cfg.significance, **options)
    result = to_json(scores, comparisons)
    if cfg.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(to_markdown_table(result["scores"], ["metric", "value", "ci", "signature"]))
        if comparisons:
            print(to_markdown_table(result["comparisons"], ["metric", "baseline", "system", "p_value"]))
    return result


main = entry_point("evaluate", EvaluateConfig, run)
