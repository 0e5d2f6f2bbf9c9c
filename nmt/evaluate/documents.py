"""Test sets for translating documents (issue 36) and their scores: (a) paragraphs here; (b) markup in
`nmt.evaluate.markup_sets`, (c) untranslatable pieces in `nmt.evaluate.piece_sets`.

(a) Paragraphs of 2-16 consecutive one-sentence test lines (`nmt.evaluate.paragraphs`) and their references
grouped alike, translated line by line, split into sentences, and whole (a paragraph as one sentence, as
`nmt-translate` did before: the truncation baseline); BLEU and chrF against the grouped references.
"""

from __future__ import annotations

import statistics
import time

from nmt.config import DataConfig
from nmt.data.corpus import ParallelText
from nmt.data.sources import get_corpus
from nmt.decode.translator import Translator
from nmt.documents.pipeline import DocumentOptions, DocumentTranslator
from nmt.documents.segment import Segment, render
from nmt.documents.sentences import sentence_separator
from nmt.evaluate.metrics import score
from nmt.evaluate.paragraphs import Paragraph, make_paragraphs, single_sentences


def held_out_corpus(data: DataConfig) -> ParallelText:
    """The test split of a checkpoint's data; built-in sources capitalised, so the splitter sees sentence starts."""
    corpus = get_corpus(data, data.test)
    if data.name != "builtin":
        return corpus
    return ParallelText([line[:1].upper() + line[1:] for line in corpus.src], corpus.tgt)


def bleu_chrf(hyps: list[str], refs: list[str], lang: str) -> dict:
    bleu, chrf = score(hyps, [refs], metrics=("bleu", "chrf"), tgt_lang=lang)
    return {"bleu": bleu.value, "chrf": chrf.value, "bleu_signature": bleu.signature}


def translated_segments(
    translator: Translator, segments: list[Segment], options: DocumentOptions, langs: tuple[str, str]
) -> list[Segment]:
    """The segments translated by `DocumentTranslator` with `options`."""
    return DocumentTranslator(translator, options, langs).translate(segments)


def paragraph_pairs(
    src: list[str], ref: list[str], seed: int, langs: tuple[str, str]
) -> list[tuple[Paragraph, Paragraph]]:
    """Paragraphs of 2-16 consecutive source lines that are one sentence each (`single_sentences`), each with its
    references grouped alike and joined with the target language's separator."""
    kept = [i for i, line in enumerate(src) if single_sentences([line])]
    sources = make_paragraphs([src[i] for i in kept], seed, lang=langs[0])
    references = make_paragraphs([ref[i] for i in kept], seed, lang=langs[1])
    return list(zip(sources, references, strict=True))


def benchmark_paragraphs(
    translator: Translator, pairs: list[tuple[Paragraph, Paragraph]], langs: tuple[str, str], repeats: int = 1
) -> dict:
    """Set (a) translated four ways, `repeats` interleaved timed rounds (median wall time): line by line, split
    into sentences, whole but cut into chunks of the training length, and whole (the old behaviour). Nothing is
    protected (set (c) measures that), so the runs differ only in how paragraphs become sentences."""
    limit = translator.trained_len
    runs: dict[str, DocumentOptions | None] = {
        "line by line": None,
        "paragraphs, split into sentences": DocumentOptions(max_len=limit, protect=()),
        "paragraphs whole, chunked at max_len": DocumentOptions(split=False, max_len=limit, protect=()),
        "paragraphs whole (before: truncation baseline)": DocumentOptions(split=False, protect=()),
    }
    sources, refs = [source for source, _ in pairs], [reference.text for _, reference in pairs]
    translator.translate([sources[0].text])  # warm-up
    found: dict[str, list[dict]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, options in runs.items():
            found[name].append(_paragraph_run(translator, sources, options, langs))
    lines = found["line by line"][-1]["texts"]
    rows = []
    for name, done in found.items():
        last, walls = done[-1], [run["wall_s"] for run in done]
        lengths = [len(ids) for ids in translator.tokenizer.encode_src(last["units"])]
        rows.append({
            "run": name, **bleu_chrf(last["texts"], refs, langs[1]), "units": len(lengths),
            "over_trained_len": sum(length > limit for length in lengths) if limit else None,
            "chunked": last["chunked"], "truncated": last["truncated"],
            "same_as_lines": sum(a == b for a, b in zip(last["texts"], lines, strict=True)),
            "wall_s": statistics.median(walls), "wall_s_runs": walls, "split_s": last["split_s"],
        })  # fmt: skip
    base, split = rows[0]["wall_s"], rows[1]["wall_s"]
    return {
        "paragraphs": len(pairs),
        "sentences": sum(len(source.sentences) for source in sources),
        "trained_len": limit,
        "split_overhead_pct": 100 * (split - base) / base,
        "split_share_pct": 100 * rows[1]["split_s"] / split,
        "rows": rows,
    }


def _paragraph_run(
    translator: Translator, paragraphs: list[Paragraph], options: DocumentOptions | None, langs: tuple[str, str]
) -> dict:
    """One way of translating set (a): line by line (`options` None) or through `DocumentTranslator`. Returns the
    translations (`texts`), the sentences cut into chunks, the inputs truncated and the wall time; and, measured
    apart, the units the model saw and the time it took to cut the paragraphs into them (`split_s`)."""
    truncated, start = translator.stats.truncated, time.perf_counter()
    if options is None:
        units = _sentences(paragraphs)
        best = iter(t.best for t in translator.translate(units))
        texts = [sentence_separator(langs[1]).join(next(best) for _ in p.sentences) for p in paragraphs]
        chunked, split_s = 0, 0.0
    else:
        documents = DocumentTranslator(translator, options, langs)
        texts = [render(s) for s in documents.translate([Segment(p.text) for p in paragraphs])]
        chunked = documents.chunked
    wall_s, truncated = time.perf_counter() - start, translator.stats.truncated - truncated
    if options is not None:  # the units again, timed alone
        start = time.perf_counter()
        units = DocumentTranslator(translator, options, langs).plan([Segment(p.text) for p in paragraphs]).texts
        split_s = time.perf_counter() - start
    return {"texts": texts, "chunked": chunked, "truncated": truncated, "wall_s": wall_s, "units": units,
            "split_s": split_s}  # fmt: skip


def _sentences(paragraphs: list[Paragraph]) -> list[str]:
    """The sentences of the paragraphs, in order."""
    return [p.text[a:b] for p in paragraphs for a, b in p.sentences]
