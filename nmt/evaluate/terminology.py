"""Terminology test sets made from a parallel test set and a model's unconstrained output (Post & Vilar 2018).

Three sets, each a list per line, reproducible under a seed (every line draws from its own seeded stream,
so a line's constraints do not depend on the others):

- `sample_constraints`: 1-3 phrases of 1-3 words of the reference that the unconstrained output misses,
  as Post & Vilar (2018) and Hokamp & Liu (2017) sample constraints from the reference to simulate a
  translator's corrections. Phrases are runs of whole words with no punctuation inside them.
- `negative_constraints`: 1-3 words of the unconstrained output that the reference does not use.
- `aligned_glossary`: source/target word pairs linked one-to-one in the references (by the model's
  cross-attention, `nmt.decode.align.Aligner`), kept where a source word is linked to the same target word
  consistently; a glossary of the test set's own vocabulary, like an engineer's list of house terms. The
  model's own alignments rather than fast_align's: on in-domain captions its cross-attention links words
  nearly perfectly (docs/attention.md), and requiring one-to-one links, several sentences and one
  dominant target word per source word filters the rest.

Words are whitespace-separated tokens with their leading and trailing punctuation removed, and a word is
"in" a sentence when it occurs there as a whole word (`nmt.evaluate.term_use`).
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from nmt.decode.align import Aligner, Link
from nmt.decode.translator import Translator
from nmt.evaluate.term_use import found_terms

EDGE = re.compile(r"^\W+|\W+$")


def word(token: str) -> str:
    """A token without its leading and trailing punctuation ("(Hund)," -> "Hund")."""
    return EDGE.sub("", token)


def _line_rng(seed: int, line: int) -> random.Random:
    return random.Random(f"{seed}:{line}")  # string seeds hash the same in every process


def _contains(text: str, phrase: str, ignore_case: bool = False) -> bool:
    return found_terms(text, [phrase], ignore_case)[0]


def phrases(reference: str, longest: int = 3) -> list[tuple[int, int, str]]:
    """The reference's phrases of 1 to `longest` words, as (first token, end token, text), with no
    punctuation inside ("ein (roter) Hut" has "ein", "roter", "Hut", but no "ein roter")."""
    tokens = reference.split()
    cores = [word(t) for t in tokens]
    opens = [t.startswith(c) for t, c in zip(tokens, cores, strict=True)]  # no punctuation before the word
    closes = [t.endswith(c) for t, c in zip(tokens, cores, strict=True)]  # none after it
    out = []
    for start in range(len(tokens)):
        for end in range(start + 1, min(start + longest, len(tokens)) + 1):
            if not cores[end - 1] or (end - 1 > start and not opens[end - 1]):
                break
            out.append((start, end, " ".join(cores[start:end])))
            if not closes[end - 1]:
                break
    return out


def sample_constraints(
    references: Sequence[str], outputs: Sequence[str], seed: int, most: int = 3, longest: int = 3
) -> list[list[str]]:
    """Per line, 1 to `most` non-overlapping reference phrases of up to `longest` words missing from the
    output (as whole words, with their case); none where every phrase is already there."""
    out = []
    for line, (reference, output) in enumerate(zip(references, outputs, strict=True)):
        rng = _line_rng(seed, line)
        wanted = rng.randint(1, most)
        candidates = [p for p in phrases(reference, longest) if not _contains(output, p[2])]
        rng.shuffle(candidates)
        taken: list[tuple[int, int, str]] = []
        for start, end, text in candidates:
            if len(taken) < wanted and all(end <= s or start >= e for s, e, _ in taken):
                taken.append((start, end, text))
        out.append([text for _, _, text in sorted(taken)])
    return out


def negative_constraints(
    references: Sequence[str], outputs: Sequence[str], seed: int, most: int = 3
) -> list[list[str]]:
    """Per line, 1 to `most` words of the output that the reference does not use (in any case)."""
    out = []
    for line, (reference, output) in enumerate(zip(references, outputs, strict=True)):
        rng = _line_rng(seed, line)
        wanted = rng.randint(1, most)
        unused = list(dict.fromkeys(w for w in map(word, output.split()) if w and not _contains(reference, w, True)))
        out.append(sorted(rng.sample(unused, min(wanted, len(unused))), key=unused.index))
    return out


def aligned_glossary(
    sources: Sequence[str],
    references: Sequence[str],
    links: Sequence[set[Link]],
    min_count: int = 2,
    min_share: float = 0.6,
    min_chars: int = 4,
) -> list[tuple[str, str]]:
    """Source/target word pairs linked one-to-one, by how often they are linked, most often first.

    Args:
        sources, references: the sentence pairs; words are their whitespace tokens.
        links: per pair, (source word, target word) links (`Aligner.align`).
        min_count: least number of sentences a pair is linked in.
        min_share: least share of the source word's one-to-one links that go to this target word.
        min_chars: least letters on each side (short function words are not terms).
    """
    linked: dict[str, Counter[str]] = defaultdict(Counter)
    for source, reference, pairs in zip(sources, references, links, strict=True):
        src_words, tgt_words = source.split(), reference.split()
        src_count, tgt_count = Counter(i for i, _ in pairs), Counter(j for _, j in pairs)
        for i, j in pairs:
            # one-to-one, and not the reference's first word, whose capital says nothing of the term's case
            if src_count[i] == tgt_count[j] == 1 and j > 0:
                src, tgt = word(src_words[i]).lower(), word(tgt_words[j])
                if src.isalpha() and tgt.isalpha() and min(len(src), len(tgt)) >= min_chars:
                    linked[src][tgt] += 1
    glossary = []
    for src, targets in linked.items():
        tgt, count = targets.most_common(1)[0]
        if count >= min_count and count >= min_share * sum(targets.values()):
            glossary.append((count, src, tgt))
    return [(src, tgt) for _, src, tgt in sorted(glossary, key=lambda g: (-g[0], g[1]))]


@dataclass
class ReferenceSets:
    """The three sets of one test set (see the module docstring), and the unconstrained output they rest on."""

    plain: list[str]
    constraints: list[list[str]]
    avoid: list[list[str]]
    glossary: list[tuple[str, str]]


def reference_sets(
    translator: Translator, aligner: Aligner, src: list[str], ref: list[str], seed: int, align_layer: int = 1
) -> ReferenceSets:
    """Translate `src` without constraints, then sample the constraints and the words to avoid under `seed`,
    and build the glossary from the links `aligner` reads (cross-attention of `align_layer`) in the references."""
    plain = [t.best for t in translator.translate(src)]
    links = aligner.align(list(zip(src, ref, strict=True)), "attention", align_layer)
    return ReferenceSets(
        plain=plain,
        constraints=sample_constraints(ref, plain, seed),
        avoid=negative_constraints(ref, plain, seed),
        glossary=aligned_glossary(src, ref, links),
    )
