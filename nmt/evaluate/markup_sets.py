"""Test set (b) of document translation: markup placed on sentence pairs with word links.

Sentence pairs with gold (or silver) word links, and 1-2 tags (`<b>`, `<i>`, `<a href>`) wrapped around source
spans of 1-3 words and around the target words linked to them, where the two spans are consistent as phrase
extraction requires (Koehn et al. 2003: no link leaves either span). Placement is scored on the reference
side (Hanneman and Dinu 2020; Zenkel et al. 2021): the search is forced to write the reference and the
source's tags are placed on it, so a placement meets the reference's own tags whatever the model's quality.
"""

from __future__ import annotations

import dataclasses
import html
import random
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nmt.data.builtin import builtin_alignments, builtin_corpus
from nmt.data.sources import BUILTIN_SEED
from nmt.decode.align import Aligner, Link
from nmt.decode.translator import Translation, Translator
from nmt.documents.pipeline import DocumentOptions, word_links
from nmt.documents.placement import place, place_by_substring
from nmt.documents.segment import Segment, Span, Tag, render
from nmt.evaluate.alignment import GoldAlignment, alignment_error_rate, read_alignments, read_pairs
from nmt.evaluate.documents import bleu_chrf, translated_segments

Range = tuple[int, int]  # [start, end) of words or characters


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
    with_tags = translated_segments(translator, [t.source for t in tagged], options, langs)
    without = [
        render(s) for s in translated_segments(translator, [Segment(t.source.text) for t in tagged], options, langs)
    ]
    plain = [render(Segment(s.text, [x for x in s.spans if x.tag.kind != "element"])) for s in with_tags]
    refs = [t.reference.text for t in tagged]
    return {
        "bleu_tagged": bleu_chrf(plain, refs, langs[1])["bleu"],
        "bleu_untagged": bleu_chrf(without, refs, langs[1])["bleu"],
        "identical": sum(a == b for a, b in zip(plain, without, strict=True)),
        "well_formed": 100 * sum(well_formed(render(s, html.escape)) for s in with_tags) / max(len(tagged), 1),
    }
