"""The built-in synthetic English -> German corpus: small, offline, one right answer per sentence.

Sentences follow "[adverb] subject verb number adjective noun." and their German
translations need what a real system needs: subject-verb agreement
(ich sehe / du siehst / er sieht), verb-second word order after a fronted adverb
(Heute sehe ich ...), number words with the ones before the tens written as one
word (321 -> dreihunderteinundzwanzig), and accusative agreement of article and
adjective with the noun's gender and number (einen roten Apfel, eine rote Katze,
ein rotes Haus, zwei rote Äpfel). Copying the source scores near zero BLEU.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from nmt.data.corpus import CorpusError, ParallelText

SPLITS = ("train", "valid", "test")
HELD_OUT_SIZE = 500  # pairs in each of valid and test

# English subject -> (German pronoun or noun phrase, person/number key into VERBS).
SUBJECTS: dict[str, tuple[str, str]] = {
    "i": ("ich", "1sg"),
    "you": ("du", "2sg"),
    "he": ("er", "3sg"),
    "she": ("sie", "3sg"),
    "we": ("wir", "1pl"),
    "you all": ("ihr", "2pl"),
    "they": ("sie", "3pl"),
    "the children": ("die Kinder", "3pl"),
}
_PERSONS = ("1sg", "2sg", "3sg", "1pl", "2pl", "3pl")

# English verb -> (English 3rd person singular, German forms in `_PERSONS` order).
VERBS: dict[str, tuple[str, tuple[str, ...]]] = {
    "see": ("sees", ("sehe", "siehst", "sieht", "sehen", "seht", "sehen")),
    "buy": ("buys", ("kaufe", "kaufst", "kauft", "kaufen", "kauft", "kaufen")),
    "have": ("has", ("habe", "hast", "hat", "haben", "habt", "haben")),
    "find": ("finds", ("finde", "findest", "findet", "finden", "findet", "finden")),
    "like": ("likes", ("mag", "magst", "mag", "mögen", "mögt", "mögen")),
    "take": ("takes", ("nehme", "nimmst", "nimmt", "nehmen", "nehmt", "nehmen")),
}

ADVERBS = {"today": "heute", "now": "jetzt"}

ADJECTIVES = {
    "red": "rot",
    "blue": "blau",
    "green": "grün",
    "white": "weiß",
    "black": "schwarz",
    "big": "groß",
    "small": "klein",
    "old": "alt",
    "new": "neu",
    "beautiful": "schön",
}

# English singular -> (English plural, German gender, German singular, German plural).
NOUNS: dict[str, tuple[str, str, str, str]] = {
    "apple": ("apples", "m", "Apfel", "Äpfel"),
    "dog": ("dogs", "m", "Hund", "Hunde"),
    "table": ("tables", "m", "Tisch", "Tische"),
    "chair": ("chairs", "m", "Stuhl", "Stühle"),
    "tree": ("trees", "m", "Baum", "Bäume"),
    "ball": ("balls", "m", "Ball", "Bälle"),
    "hat": ("hats", "m", "Hut", "Hüte"),
    "cat": ("cats", "f", "Katze", "Katzen"),
    "flower": ("flowers", "f", "Blume", "Blumen"),
    "lamp": ("lamps", "f", "Lampe", "Lampen"),
    "bottle": ("bottles", "f", "Flasche", "Flaschen"),
    "door": ("doors", "f", "Tür", "Türen"),
    "bag": ("bags", "f", "Tasche", "Taschen"),
    "clock": ("clocks", "f", "Uhr", "Uhren"),
    "house": ("houses", "n", "Haus", "Häuser"),
    "book": ("books", "n", "Buch", "Bücher"),
    "car": ("cars", "n", "Auto", "Autos"),
    "bed": ("beds", "n", "Bett", "Betten"),
    "bike": ("bikes", "n", "Fahrrad", "Fahrräder"),
    "picture": ("pictures", "n", "Bild", "Bilder"),
}

# Accusative singular after the indefinite article (mixed declension): article, adjective ending.
_ONE = {"m": ("einen", "en"), "f": ("eine", "e"), "n": ("ein", "es")}

# fmt: off
_EN_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
            "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
            "nineteen")
_EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_DE_ONES = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn",
            "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn", "siebzehn", "achtzehn",
            "neunzehn")
_DE_TENS = ("", "", "zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig", "neunzig")
# fmt: on


def english_number(n: int) -> str:
    """1..999 in words without "and": 321 -> "three hundred twenty-one"."""
    if not 1 <= n <= 999:
        raise ValueError(f"`n` must be in 1..999, but is {n} instead.")
    hundreds, rest = divmod(n, 100)
    words = [f"{_EN_ONES[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_EN_TENS[tens] + (f"-{_EN_ONES[ones]}" if ones else ""))
    elif rest:
        words.append(_EN_ONES[rest])
    return " ".join(words)


def german_number(n: int) -> str:
    """1..999 as one German word, ones before tens: 321 -> "dreihunderteinundzwanzig"."""
    if not 1 <= n <= 999:
        raise ValueError(f"`n` must be in 1..999, but is {n} instead.")
    hundreds, rest = divmod(n, 100)
    word = ""
    if hundreds:
        word = ("" if hundreds == 1 else _DE_ONES[hundreds]) + "hundert"
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        if ones:
            word += ("ein" if ones == 1 else _DE_ONES[ones]) + "und"  # einundzwanzig, not einsundzwanzig
        word += _DE_TENS[tens]
    elif rest:
        word += _DE_ONES[rest]
    return word


@dataclass(frozen=True)
class Clause:
    """One sentence of the grammar, by its English words."""

    subject: str
    verb: str
    number: int
    adjective: str
    noun: str
    adverb: str | None = None


def to_english(c: Clause) -> str:
    """The lowercase English sentence, detokenized like real corpora ("... red apple.")."""
    verb = VERBS[c.verb][0] if SUBJECTS[c.subject][1] == "3sg" else c.verb
    noun = c.noun if c.number == 1 else NOUNS[c.noun][0]
    words = [c.adverb] if c.adverb else []
    words += [c.subject, verb, english_number(c.number), c.adjective, noun]
    return " ".join(words) + "."


def _german_object(number: int, adjective: str, noun: str) -> str:
    """Accusative object: "einen roten Apfel", "ein rotes Haus", "zwei rote Äpfel"."""
    _, gender, singular, plural = NOUNS[noun]
    stem = ADJECTIVES[adjective]
    if number == 1:
        article, ending = _ONE[gender]
        return f"{article} {stem}{ending} {singular}"
    # Plural without article takes the strong ending -e in the accusative.
    return f"{german_number(number)} {stem}e {plural}"


def to_german(c: Clause) -> str:
    """The German translation, with capitalised nouns and sentence-initial word."""
    subject, person = SUBJECTS[c.subject]
    verb = VERBS[c.verb][1][_PERSONS.index(person)]
    # Verb second: a fronted adverb pushes the subject behind the verb.
    head = [ADVERBS[c.adverb], verb, subject] if c.adverb else [subject, verb]
    sentence = " ".join([*head, _german_object(c.number, c.adjective, c.noun)]) + "."
    return sentence[0].upper() + sentence[1:]


def gold_links(c: Clause) -> set[tuple[int, int]]:
    """Which English word produced which German word, as 0-indexed (English, German) word pairs.

    Words are the space-separated words of `to_english` and `to_german` (the final period stays on the
    noun). Every word is linked: "you all" both to "ihr", each word of "three hundred twenty-one" to
    "dreihunderteinundzwanzig", "one" to the article.
    """
    en_subject = c.subject.split()
    de_subject = SUBJECTS[c.subject][0].split()
    en_number = english_number(c.number).split()
    en = 1 if c.adverb else 0  # position of the English subject
    de_verb, de_subject_at = (1, 2) if c.adverb else (len(de_subject), 0)
    links = {(0, 0)} if c.adverb else set()
    for i in range(len(en_subject)):  # "you all" -> "ihr"; "the children" -> "die Kinder"
        links.add((en + i, de_subject_at + min(i, len(de_subject) - 1)))
    en_verb = en + len(en_subject)
    links.add((en_verb, de_verb))
    obj = max(de_verb, de_subject_at + len(de_subject) - 1) + 1  # the German object's first word
    links |= {(en_verb + 1 + i, obj) for i in range(len(en_number))}  # the number (or "one" -> the article)
    en_adjective = en_verb + 1 + len(en_number)
    links |= {(en_adjective, obj + 1), (en_adjective + 1, obj + 2)}
    return links


def _random_number(rng: random.Random) -> int:
    """1 a fifth of the time (so article agreement is well represented), else 1, 2 or 3 digits alike.

    Numbers like 101 are skipped: German allows "hundertein", "hundertundein" and
    singular or plural nouns after them, and each sentence must have one answer.
    """
    if rng.random() < 0.2:
        return 1
    while True:
        digits = rng.randint(1, 3)
        n = rng.randint(10 ** (digits - 1), 10**digits - 1)
        if n == 1 or n % 100 != 1:
            return n


def _random_clause(rng: random.Random) -> Clause:
    return Clause(
        subject=rng.choice(list(SUBJECTS)),
        verb=rng.choice(list(VERBS)),
        number=_random_number(rng),
        adjective=rng.choice(list(ADJECTIVES)),
        noun=rng.choice(list(NOUNS)),
        adverb=rng.choice((None, None, *ADVERBS)),
    )


def _unique_clauses(count: int, seed: int) -> list[Clause]:
    """The first `count` clauses with distinct English sentences drawn from `seed`."""
    rng = random.Random(seed)
    seen: set[str] = set()
    clauses: list[Clause] = []
    while len(clauses) < count:
        clause = _random_clause(rng)
        english = to_english(clause)
        if english not in seen:
            seen.add(english)
            clauses.append(clause)
    return clauses


def builtin_corpus(split: str, size: int | None, seed: int) -> ParallelText:
    """One split of the synthetic corpus, a pure function of its arguments.

    One stream of distinct sentences is drawn from `seed`: valid takes the first
    500, test the next 500, train the rest, so no source sentence is in two splits.

    Args:
        split: train, valid or test.
        size: pairs wanted; valid/test take a prefix of their fixed 500 pairs, and
            None gives all 500. Train needs a size (`DataConfig.builtin_train_size`).
        seed: the corpus seed.
    """
    if split not in SPLITS:
        raise CorpusError(f"builtin corpus has no split {split!r}; available splits: {', '.join(SPLITS)}.")
    if size is None and split == "train":
        raise CorpusError("`size` of builtin split train must be given, but is None instead.")
    size = HELD_OUT_SIZE if size is None else size
    if size < 1 or (split != "train" and size > HELD_OUT_SIZE):
        limit = "" if split == "train" else f" and <= {HELD_OUT_SIZE}"
        raise CorpusError(f"`size` of builtin split {split} must be >= 1{limit}, but is {size} instead.")
    start = {"valid": 0, "test": HELD_OUT_SIZE, "train": 2 * HELD_OUT_SIZE}[split]
    clauses = _unique_clauses(start + size, seed)[start:]
    return ParallelText([to_english(c) for c in clauses], [to_german(c) for c in clauses])


def builtin_alignments(split: str, size: int | None, seed: int) -> list[set[tuple[int, int]]]:
    """The gold word links (`gold_links`) of each pair of `builtin_corpus(split, size, seed)`, in order."""
    start = {"valid": 0, "test": HELD_OUT_SIZE, "train": 2 * HELD_OUT_SIZE}[split]
    count = len(builtin_corpus(split, size, seed).src)
    return [gold_links(c) for c in _unique_clauses(start + count, seed)[start:]]


def write_builtin(out_dir: str | Path, train_size: int, seed: int) -> Path:
    """Write every split as `{out_dir}/{split}.en`, `.de` and `.align` (gold links, Pharaoh, 0-indexed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        corpus = builtin_corpus(split, train_size if split == "train" else None, seed)
        links = builtin_alignments(split, train_size if split == "train" else None, seed)
        aligned = [" ".join(f"{i}-{j}" for i, j in sorted(pair)) for pair in links]
        for name, lines in (("en", corpus.src), ("de", corpus.tgt), ("align", aligned)):
            (out_dir / f"{split}.{name}").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out_dir
