"""Test sets for translating documents (issue 36) and their scores: (a) paragraphs, (b) markup, (c) pieces.

(a) Paragraphs of 2-16 consecutive one-sentence test lines (`nmt.evaluate.paragraphs`) and their references
grouped alike, translated line by line, split into sentences, and whole (a paragraph as one sentence, as
`nmt-translate` did before: the truncation baseline); BLEU and chrF against the grouped references.
(b) Sentence pairs with gold word links, and 1-2 tags (`<b>`, `<i>`, `<a href>`) wrapped around source spans
of 1-3 words and around the target words linked to them, where the two spans are consistent as phrase
extraction requires (Koehn et al. 2003: no link leaves either span). Placement is scored on the reference
side (Hanneman and Dinu 2020; Zenkel et al. 2021): the search is forced to write the reference and the
source's tags are placed on it, so a placement meets the reference's own tags whatever the model's quality.
(c) Test lines with one untranslatable piece (URL, e-mail address, number, placeholder, inline code) at a
word boundary; scored by the share of outputs that hold the piece verbatim exactly once.
"""

from __future__ import annotations

import dataclasses
import html
import random
import re
import statistics
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nmt.config import DataConfig
from nmt.data.builtin import builtin_alignments, builtin_corpus
from nmt.data.corpus import ParallelText
from nmt.data.sources import BUILTIN_SEED, get_corpus
from nmt.decode.align import Aligner, Link
from nmt.decode.translator import Translation, Translator
from nmt.documents.pipeline import DocumentOptions, DocumentTranslator, word_links
from nmt.documents.placement import place, place_by_substring
from nmt.documents.protect import protect
from nmt.documents.segment import Segment, Span, Tag, render
from nmt.documents.sentences import sentence_separator
from nmt.evaluate.alignment import GoldAlignment, alignment_error_rate, read_alignments, read_pairs
from nmt.evaluate.metrics import score
from nmt.evaluate.paragraphs import Paragraph, make_paragraphs, single_sentences

Range = tuple[int, int]  # [start, end) of words or characters
KINDS = ("url", "email", "number", "placeholder", "code")  # set (c), one kind per line in turn
_NAMES = ("anna", "photo", "street", "river", "camera", "city", "garden", "music", "team", "studio", "beach")
_TEMPLATES: dict[str, tuple[Callable[[random.Random], str], ...]] = {
    "url": (
        lambda r: (
            f"https://www.{r.choice(_NAMES)}{r.randint(1, 99)}.org/img/{r.randint(1, 999)}?size=l&p={r.randint(1, 9)}"
        ),
        lambda r: f"http://{r.choice(_NAMES)}.example.com/{r.choice(_NAMES)}/{r.randint(1, 999)}.html",
        lambda r: f"www.{r.choice(_NAMES)}{r.randint(1, 999)}.net/view?id={r.randint(1, 9999)}",
    ),
    "email": (
        lambda r: f"{r.choice(_NAMES)}.{r.choice(_NAMES)}{r.randint(1, 99)}@example.org",
        lambda r: f"{r.choice(_NAMES)}_{r.randint(1, 999)}@mail.{r.choice(_NAMES)}.com",
    ),
    "number": (
        lambda r: f"{r.randint(1, 99)}.{r.randint(1, 9)}",
        lambda r: f"{r.randint(1, 99)},{r.randint(0, 999):03d}",
        lambda r: f"{r.randint(1, 99)}%",
        lambda r: f"{r.randint(1990, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    ),
    "placeholder": (
        lambda r: f"{{{r.choice(_NAMES)}_{r.randint(1, 99)}}}",
        lambda r: f"%{r.choice(['', '-', '0'])}{r.randint(1, 20)}{r.choice('sdf')}",
        lambda r: f"%({r.choice(_NAMES)}{r.randint(1, 99)}){r.choice('sd')}",
        lambda r: f"{{{{{r.choice(_NAMES)}{r.randint(1, 99)}}}}}",
        lambda r: f"${{{r.choice(_NAMES).upper()}_{r.randint(1, 99)}}}",
    ),
    "code": (
        lambda r: f"`{r.choice(_NAMES)} = {r.randint(0, 999)}`",
        lambda r: f"`ls -la /tmp/{r.choice(_NAMES)}{r.randint(1, 99)}`",
        lambda r: f"`{r.choice(_NAMES)}.get({r.randint(0, 99)})`",
    ),
}


def held_out_corpus(data: DataConfig) -> ParallelText:
    """The test split of a checkpoint's data; built-in sources capitalised, so the splitter sees sentence starts."""
    corpus = get_corpus(data, data.test)
    if data.name != "builtin":
        return corpus
    return ParallelText([line[:1].upper() + line[1:] for line in corpus.src], corpus.tgt)


def _bleu_chrf(hyps: list[str], refs: list[str], lang: str) -> dict:
    bleu, chrf = score(hyps, [refs], metrics=("bleu", "chrf"), tgt_lang=lang)
    return {"bleu": bleu.value, "chrf": chrf.value, "bleu_signature": bleu.signature}


def _documents(
    translator: Translator, segments: list[Segment], options: DocumentOptions, langs: tuple[str, str]
) -> list[Segment]:
    """The segments translated by `DocumentTranslator` with `options`."""
    return DocumentTranslator(translator, options, langs).translate(segments)


# (a) paragraphs ------------------------------------------------------------------------------------------------


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
            "run": name, **_bleu_chrf(last["texts"], refs, langs[1]), "units": len(lengths),
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


# (b) markup ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaggedPair:
    """A source and its reference (words joined by single spaces) with the same tags around aligned word spans;
    `index` is the pair's place in its set."""

    source: Segment
    reference: Segment
    index: int


def hansards_set(data: Path) -> tuple[list[tuple[str, str]], list[GoldAlignment]]:
    """The English-French Hansards pairs and their gold links (`alignment/enfr.*` under the shared data)."""
    pairs = read_pairs(data / "alignment" / "enfr.src-tgt")
    gold = read_alignments(data / "alignment" / "enfr.gold", one_indexed=True)
    return [(" ".join(src.split()), " ".join(tgt.split())) for src, tgt in pairs], gold


def builtin_set(size: int | None = None) -> tuple[list[tuple[str, str]], list[GoldAlignment]]:
    """The built-in test pairs and their gold links (all sure)."""
    corpus = builtin_corpus("test", size, BUILTIN_SEED)
    links = [frozenset(pair) for pair in builtin_alignments("test", size, BUILTIN_SEED)]
    return list(zip(corpus.src, corpus.tgt, strict=True)), [GoldAlignment(pair, pair) for pair in links]


def consistent_spans(
    links: set[Link], src_words: list[str], tgt_words: list[str], longest: int = 3
) -> list[tuple[Range, Range]]:
    """(source words, target words) ranges: every source range of 1 to `longest` linked words whose linked target
    words fill a range, where no link joins a word inside either range to one outside the other, and every word
    of both holds a letter or digit (tags wrap words, not punctuation alone)."""
    spans = []
    wordy = [[any(char.isalnum() for char in word) for word in words] for words in (src_words, tgt_words)]
    for i in range(len(src_words)):
        for j in range(i + 1, min(i + longest, len(src_words)) + 1):
            targets = {t for s, t in links if i <= s < j}
            if not targets or any(all(s != w for s, _ in links) for w in range(i, j)):
                continue
            low, high = min(targets), max(targets) + 1
            inside = all(i <= s < j for s, t in links if low <= t < high)
            filled = len(targets) == high - low and high <= len(tgt_words)
            if inside and filled and all(wordy[0][i:j]) and all(wordy[1][low:high]):
                spans.append(((i, j), (low, high)))
    return spans


def tagged_pairs(pairs: list[tuple[str, str]], links: list[set[Link]], seed: int, most: int = 2) -> list[TaggedPair]:
    """Set (b): each pair with 1 to `most` tags (drawn with `seed`) around disjoint `consistent_spans`, distinct
    tags in one pair; pairs without such a span are left out."""
    rng = random.Random(seed)
    tagged = []
    for index, ((src, tgt), linked) in enumerate(zip(pairs, links, strict=True)):
        src_words, tgt_words = src.split(), tgt.split()
        options = consistent_spans(set(linked), src_words, tgt_words)
        wanted = rng.randint(1, most)
        rng.shuffle(options)
        chosen: list[tuple[Range, Range]] = []
        for option in options:
            if len(chosen) < wanted and all(option[0][1] <= c[0][0] or c[0][1] <= option[0][0] for c in chosen):
                chosen.append(option)
        if chosen:
            tags = rng.sample(_tags(index), len(chosen))
            source = _wrapped(src_words, [(words, tag) for (words, _), tag in zip(chosen, tags, strict=True)])
            reference = _wrapped(tgt_words, [(words, tag) for (_, words), tag in zip(chosen, tags, strict=True)])
            tagged.append(TaggedPair(source, reference, index))
    return tagged


def _tags(index: int) -> list[Tag]:
    return [Tag("<b>", "</b>"), Tag("<i>", "</i>"), Tag(f'<a href="https://example.org/page/{index}">', "</a>")]


def _wrapped(words: list[str], tagged: list[tuple[Range, Tag]]) -> Segment:
    """The words joined by spaces, each tag over the characters of its word range, in document order."""
    starts = [sum(len(w) + 1 for w in words[:k]) for k in range(len(words))]
    spans = [Span(starts[i], starts[j - 1] + len(words[j - 1]), tag) for (i, j), tag in tagged]
    return Segment(" ".join(words), sorted(spans, key=lambda span: span.start))


def skeleton(segment: Segment) -> list[str]:
    """The tags of a rendered segment in order, text removed: `["<b>", "</b>"]`."""
    return re.findall(r"<[^>]*>", render(segment, html.escape))


def well_formed(markup: str) -> bool:
    """Whether `markup` (text escaped) parses as the content of one XML element."""
    try:
        ET.fromstring(f"<segment>{markup}</segment>")
    except ET.ParseError:
        return False
    return True


def tag_scores(placed: Sequence[Segment], references: Sequence[Segment]) -> dict[str, float]:
    """Placed tags against the reference's, in percent: `accuracy` (the share of reference tags whose placed span,
    found by its tag, is the same range), `overlap_f1` (of the words the two spans cover, pooled), `structure`
    (sentences with the reference's `skeleton`) and `well_formed` (sentences whose placement renders so)."""
    exact = tags = hits = found = wanted = same = formed = 0
    for got, want in zip(placed, references, strict=True):
        where = {span.tag: span for span in got.spans if span.tag.kind == "element"}
        for span in (s for s in want.spans if s.tag.kind == "element"):
            other = where.get(span.tag)
            tags += 1
            exact += other is not None and (other.start, other.end) == (span.start, span.end)
            mine, theirs = _covered(got.text, other), _covered(want.text, span)
            hits, found, wanted = hits + len(mine & theirs), found + len(mine), wanted + len(theirs)
        same += skeleton(got) == skeleton(want)
        formed += well_formed(render(got, html.escape))
    f1 = 200 * hits / (found + wanted) if found + wanted else 100.0
    n = max(len(references), 1)
    return {"accuracy": 100 * exact / max(tags, 1), "overlap_f1": f1, "structure": 100 * same / n,
            "well_formed": 100 * formed / n}  # fmt: skip


def _covered(text: str, span: Span | None) -> set[int]:
    """The indices of the words of `text` that `span` overlaps (none without a span)."""
    if span is None:
        return set()
    words = [m.span() for m in re.finditer(r"\S+", text)]
    return {k for k, (a, b) in enumerate(words) if a < span.end and span.start < b}


def forced(
    translator: Translator, sources: list[str], references: list[str], align: tuple[str, int]
) -> list[Translation]:
    """Greedy translations forced to start with their references, linked by the search's attention (`align`);
    the length limit leaves room for the longest reference."""
    longest = max((len(ids) for ids in translator.tokenizer.encode_tgt(references)), default=0)
    decode = dataclasses.replace(
        translator.decode, beam_size=1, n_best=1, max_len_b=max(translator.decode.max_len_b, longest + 1)
    )
    return Translator(translator.engine, translator.tokenizer, decode, align).translate(sources, prefix=references)


def benchmark_markup(
    translator: Translator,
    pairs: list[tuple[str, str]],
    gold: list[GoldAlignment],
    tagged: list[TaggedPair],
    langs: tuple[str, str],
    align: tuple[str, int] = DocumentOptions().align,
) -> dict:
    """Set (b): tags placed on the references along the forced search's alignment and by substring search, side
    by side; BLEU of the tagged and the untagged sources; AER of the forced search's links and of `nmt-align`'s
    (teacher forcing, same `align`) on every pair."""
    found = forced(translator, [src for src, _ in pairs], [tgt for _, tgt in pairs], align)
    references = [t.reference for t in tagged]
    search = [_reference_links(x, tgt) for x, (_, tgt) in zip(found, pairs, strict=True)]
    teacher = Aligner(translator.model, translator.tokenizer, translator.engine.special_ids).align(pairs, *align)
    return {
        "pairs": len(pairs),
        "tagged_pairs": len(tagged),
        "tags": sum(len(t.source.spans) for t in tagged),
        "forced_mismatch": sum(not x.best.startswith(tgt) for x, (_, tgt) in zip(found, pairs, strict=True)),
        "rows": [
            {"placement": "search alignment (tag stack)", **tag_scores(_placed(found, tagged), references)},
            {
                "placement": "substring search (argos baseline)",
                **tag_scores(_by_substring(translator, tagged), references),
            },
        ],
        "translation": _tagged_translation(translator, tagged, langs, align),
        "aer": {
            "method": align[0],
            "layer": align[1],
            "search": 100 * alignment_error_rate(search, gold).aer,
            "nmt_align": 100 * alignment_error_rate(teacher, gold).aer,
        },
    }


def _reference_links(translation: Translation, reference: str) -> set[Link]:
    """The word links of a forced translation that fall inside its reference."""
    words = len(reference.split())
    return {(s, t) for s, t in (translation.links[0] if translation.links else ()) if t < words}


def _placed(found: list[Translation], tagged: list[TaggedPair]) -> list[Segment]:
    """Each source's tags on its reference, along the links of the forced search kept inside the reference."""
    placed = []
    for t in tagged:
        text, links = t.reference.text, found[t.index].char_links[:1] or [[]]
        inside = [(a, min(b, len(text)), s0, s1) for a, b, s0, s1 in links[0] if a < len(text)]
        placed.append(place(t.source, text, word_links(text, inside)))
    return placed


def _by_substring(translator: Translator, tagged: list[TaggedPair]) -> list[Segment]:
    """Each source's tags on its reference by `place_by_substring`, the tags' texts translated by `translator`."""
    texts = list(dict.fromkeys(t.source.text[s.start : s.end].strip() for t in tagged for s in t.source.spans))
    lookup = dict(zip(texts, (x.best for x in translator.translate(texts)), strict=True))
    return [place_by_substring(t.source, t.reference.text, lambda batch: [lookup[x] for x in batch]) for t in tagged]


def _tagged_translation(
    translator: Translator, tagged: list[TaggedPair], langs: tuple[str, str], align: tuple[str, int]
) -> dict:
    """BLEU of the tagged sources through `DocumentTranslator` (tags left out of the output) and of the same
    sources untagged, the outputs alike, and the share of tagged outputs that are well-formed."""
    options = DocumentOptions(max_len=translator.trained_len, align=align)
    with_tags = _documents(translator, [t.source for t in tagged], options, langs)
    without = [render(s) for s in _documents(translator, [Segment(t.source.text) for t in tagged], options, langs)]
    plain = [render(Segment(s.text, [x for x in s.spans if x.tag.kind != "element"])) for s in with_tags]
    refs = [t.reference.text for t in tagged]
    return {
        "bleu_tagged": _bleu_chrf(plain, refs, langs[1])["bleu"],
        "bleu_untagged": _bleu_chrf(without, refs, langs[1])["bleu"],
        "identical": sum(a == b for a, b in zip(plain, without, strict=True)),
        "well_formed": 100 * sum(well_formed(render(s, html.escape)) for s in with_tags) / max(len(tagged), 1),
    }


# (c) untranslatable pieces -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PieceLine:
    """A test line with one untranslatable `piece` of `kind` inserted at a word boundary."""

    text: str
    piece: str
    kind: str


def piece_lines(lines: list[str], seed: int) -> list[PieceLine]:
    """Set (c): each line with a piece of the kinds in `KINDS` in turn, drawn from their templates with `seed`, at
    a word boundary drawn likewise; no two lines get the same piece and none holds its piece already."""
    rng = random.Random(seed)
    used: set[str] = set()
    out = []
    for i, line in enumerate(lines):
        kind = KINDS[i % len(KINDS)]
        piece = rng.choice(_TEMPLATES[kind])(rng)
        while piece in used or piece in line:
            piece = rng.choice(_TEMPLATES[kind])(rng)
        used.add(piece)
        words = line.split()
        at = rng.randint(0, len(words))
        out.append(PieceLine(" ".join([*words[:at], piece, *words[at:]]), piece, kind))
    return out


def benchmark_pieces(
    translator: Translator, lines: list[PieceLine], plain: list[str], refs: list[str], langs: tuple[str, str]
) -> dict:
    """Set (c) with protection on (every kind) and off: per kind, the share of outputs holding their piece
    exactly once; and the plain test lines' BLEU both ways, with the lines protection touches counted."""
    on = DocumentOptions(max_len=translator.trained_len)
    settings = {"on": on, "off": dataclasses.replace(on, protect=())}
    found = {name: _rendered(translator, [x.text for x in lines], options, langs) for name, options in settings.items()}
    rows = []
    for kind in (*KINDS, "all"):
        chosen = [i for i, x in enumerate(lines) if kind in ("all", x.kind)]
        row: dict = {"kind": kind, "lines": len(chosen)}
        for name, outputs in found.items():
            row[f"kept_{name}"] = 100 * sum(outputs[i].count(lines[i].piece) == 1 for i in chosen) / max(len(chosen), 1)
        rows.append(row)
    plain_on, plain_off = (_rendered(translator, plain, options, langs) for options in settings.values())
    touched = [bool(protect(Segment(line)).spans) for line in plain]
    return {
        "rows": rows,
        "plain": {
            "lines": len(plain),
            "with_piece": sum(touched),
            "bleu_on": _bleu_chrf(plain_on, refs, langs[1])["bleu"],
            "bleu_off": _bleu_chrf(plain_off, refs, langs[1])["bleu"],
            "identical_without_piece": sum(
                a == b for a, b, t in zip(plain_on, plain_off, touched, strict=True) if not t
            ),
        },
    }


def _rendered(translator: Translator, lines: list[str], options: DocumentOptions, langs: tuple[str, str]) -> list[str]:
    """Plain lines through `DocumentTranslator`, the translations rendered with their pieces."""
    return [render(s) for s in _documents(translator, [Segment(line) for line in lines], options, langs)]
