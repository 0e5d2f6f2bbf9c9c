"""`nmt-evaluate`: score hypothesis files, or translate a named test set with a checkpoint and score it.

Scores with sacreBLEU (BLEU, chrF, TER; detokenized text against raw references) and prints
each score beside its signature. With `hyp` and `ref` it scores files (several references with
ref=[A,B]; a bootstrap confidence interval with bootstrap=1000; significance against
baseline=FILE). With `ckpt` it translates a test split and scores that: by default the test split
of the data the checkpoint was trained on, or the corpus chosen with data=NAME; ckpt=[A,B] scores
the ensemble of several checkpoints.

With constraints=FILE.jsonl (nmt-translate's jsonl input, one line per test-set line) or glossary=FILE
(as nmt-translate's), the test set is translated under those terms, and term use is reported beside the
scores: the share of positive constraints found in the output (exactly, and in any case) and of negative
ones kept out (`nmt.evaluate.term_use`). With hyp=, the same counts score a hypothesis file.

Examples:
    nmt-evaluate hyp=test.de ref=ref.de bootstrap=1000
    nmt-evaluate ckpt=runs/quickstart/model.pt split=valid
    nmt-evaluate ckpt=[a/model.pt,b/model.pt] decode.beam_size=5
    nmt-evaluate ckpt=runs/quickstart/model.pt glossary=terms.tsv
    nmt-evaluate ckpt=model.pt data=multi30k_en_de data.root=../shared/data split=test2016 constraints=c.jsonl
    nmt-evaluate ckpt=runs/quickstart/model.pt 'harden=[dec_cross:1]'
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from nmt.atomic import atomic_open, check_writable
from nmt.checkpoint import trained_on
from nmt.cli.hydra_config import entry_point
from nmt.config import ConfigError, EvaluateConfig, reference_paths
from nmt.data.corpus import CorpusError, check_aligned, check_has_text, read_lines
from nmt.data.sources import describe, get_corpus
from nmt.decode.terms import Segment, Term, read_glossary, translate_segments
from nmt.decode.translator import Translation, Translator
from nmt.device import retain_freed_memory, set_threads
from nmt.evaluate import paired_significance, score, to_json, to_markdown_table
from nmt.evaluate.constraint_files import add_glossary, read_segments, segments_for
from nmt.evaluate.metrics import check_scoring
from nmt.evaluate.term_use import term_use
from nmt.model.hard_attention import harden

CHUNK_LINES = 2000  # lines translated at a time under constraints, as nmt-translate's buffer


@dataclass
class Scored:
    """What is scored: hypotheses, reference streams, target language (None if unknown), a line saying what
    was scored, and the constraints of each line (None: none were given)."""

    hyps: list[str]
    refs: list[list[str]]
    tgt_lang: str | None
    what: str
    segments: list[Segment] | None = None
    unmet: int | None = None  # lines whose translation ended at the length limit unmet (None: not translated here)


def hypotheses_and_references(cfg: EvaluateConfig, terms: list[Term]) -> Scored:
    """Read `hyp`/`ref` files, or translate a test split with `ckpt` (under the constraints and glossary `terms`)."""
    return read_hypotheses(cfg, terms) if cfg.hyp is not None else translate_test_set(cfg, terms)


def read_hypotheses(cfg: EvaluateConfig, terms: list[Term]) -> Scored:
    """The `hyp` and `ref` files, checked line by line, and the constraints to score term use under."""
    hyps = read_lines(cfg.hyp)
    refs = [read_lines(path) for path in reference_paths(cfg)]
    for path, ref in zip(reference_paths(cfg), refs, strict=True):
        check_aligned(cfg.hyp, hyps, path, ref)
        check_has_text(path, ref)
    segments = None
    if cfg.constraints is not None:
        segments = add_glossary(read_segments(cfg.constraints), terms)
        if len(segments) != len(hyps):
            raise CorpusError(f"file {cfg.constraints} has {len(segments):,} lines, but {cfg.hyp} has {len(hyps):,}.")
    scored = f"{cfg.hyp} against {', '.join(reference_paths(cfg))} ({len(hyps):,} sentences)"
    return Scored(hyps, refs, cfg.tgt_lang or (cfg.data.tgt_lang if cfg.data else None), scored, segments)


def translate_test_set(cfg: EvaluateConfig, terms: list[Term]) -> Scored:
    """Translate the test split with `ckpt`, under the constraints file's lines and the glossary's terms."""
    data = cfg.data or trained_on(cfg.ckpt)
    translator = Translator.load(cfg.ckpt, cfg.decode, cfg.device, expect_langs=(data.src_lang, data.tgt_lang))
    harden(translator.model, cfg.harden)  # before the first search copies the model
    split = cfg.split or data.test
    corpus = get_corpus(data, split)
    segments = None
    if cfg.constraints is not None or terms:
        segments = segments_for(corpus.src, cfg.constraints, terms)
    translations = translate_lines(translator, corpus.src, segments)
    hyps = [t.best for t in translations]
    print(translator.stats.summary(), file=sys.stderr)
    if cfg.output is not None:
        with atomic_open(cfg.output) as out:
            out.writelines(h + "\n" for h in hyps)
    unmet = sum(1 for t in translations if t.met[:1] == [False])
    return Scored(hyps, [corpus.tgt], cfg.tgt_lang or data.tgt_lang, describe(data, split, len(hyps)), segments, unmet)


def translate_lines(translator: Translator, lines: list[str], segments: list[Segment] | None) -> list[Translation]:
    """Translate `lines`, under `segments`' constraints when given (one per line), a chunk at a time."""
    if segments is None:
        return list(translator.translate_stream(lines))
    return [
        t for start in range(0, len(segments), CHUNK_LINES)
        for t in translate_segments(translator, segments[start : start + CHUNK_LINES])
    ]  # fmt: skip


def load_terms(cfg: EvaluateConfig) -> list[Term]:
    """The glossary's terms ([] without one), read before any model loads; a glossary needs source lines."""
    if cfg.glossary is None:
        return []
    if cfg.hyp is not None and cfg.constraints is None:
        raise ConfigError(
            "`glossary` with `hyp` needs `constraints`: the glossary is matched in the source lines, which are "
            "the `text` of each constraints line (or give `ckpt` to translate the test set)."
        )
    return read_glossary(cfg.glossary)


def run(cfg: EvaluateConfig) -> dict:
    """Score as `cfg` says; print a table (or JSON) and return the JSON-ready result."""
    set_threads(cfg.num_threads)
    retain_freed_memory()
    if cfg.output is not None:
        check_writable(cfg.output)  # before translating, not after
    check_scoring(cfg.metrics, cfg.tokenize)
    terms = load_terms(cfg)
    found = hypotheses_and_references(cfg, terms)
    hyps, refs = found.hyps, found.refs
    options = {"tokenize": cfg.tokenize, "tgt_lang": found.tgt_lang, "lowercase": cfg.lowercase}
    scores = score(hyps, refs, cfg.metrics, bootstrap=cfg.bootstrap, **options)
    comparisons = []
    if cfg.baseline is not None:
        baseline = read_lines(cfg.baseline)
        check_aligned(cfg.hyp, hyps, cfg.baseline, baseline)
        comparisons = paired_significance(baseline, hyps, refs, cfg.metrics, method=cfg.significance, **options)
    result = {**to_json(scores, comparisons), "scored": found.what}
    use = None
    if found.segments is not None:
        use = term_use(hyps, [s.constraints for s in found.segments], [s.avoid for s in found.segments])
        result["term_use"] = use.as_dict()
        if found.unmet is not None:
            result["term_use"]["unmet_at_length_limit"] = found.unmet
    if cfg.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(f"scored: {found.what}")
        print(to_markdown_table(result["scores"], ["metric", "value", "ci", "signature"]))
        if comparisons:
            print(to_markdown_table(result["comparisons"], ["metric", "baseline", "system", "p_value"]))
        if use is not None:
            print(f"\nterm use on {use.lines:,} line(s) with constraints (whole words):")
            print(to_markdown_table(use.rows(), ["measure", "value", "count"]))
            if found.unmet:
                print(f"{found.unmet} line(s) reached the length limit before every positive constraint was met.")
    return result


main = entry_point("evaluate", EvaluateConfig, run, __doc__)
