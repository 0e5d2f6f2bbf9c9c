"""Splitting a line of text into sentences, and joining translated sentences back into a line.

The built-in splitter (`splitter="rules"`) looks at every run of terminators (`. ! ? …` and the CJK
`。 ！ ？`) and decides from the word before it and the text after it whether a sentence ends there:

- a CJK terminator always ends a sentence, with or without a space after it;
- `.`, `!`, `?` and `…` end one only before whitespace (so "3.5", "E.S.E." and "example.com" stay whole) or,
  all but an ellipsis, directly before Chinese or Japanese text; and never before a lowercase word ("Where?"
  she asked, "He left... and came back");
- before a `.`, a known abbreviation ("Mr.", "z.B.") never ends a sentence, nor does one that precedes
  numbers ("No. 5"); an initial ("J. R. R. Tolkien"), a dotted acronym ("U.S."; not "a.m.", which is often
  last) or, in languages that write ordinals with a period, a short number ("am 1. Mai") ends one only
  before a word that often starts a sentence ("The", "Der"), since a capitalised name is far likelier
  there; any other word ("etc." and "usw." too) ends one before anything but a lowercase word.

Closing quotes and brackets after a terminator stay with its sentence. `splitter="sentencex"` uses the
`sentencex` package (Wikimedia's segmenter for ~300 languages; the "documents" extra) instead.
"""

from __future__ import annotations

import re

from nmt.errors import MissingExtraError

SPLITTERS = ("rules", "sentencex")
_UNSPACED = {"zh", "ja", "yue"}  # written without spaces between sentences (Thai puts one there)
# Languages that write ordinals as a number and a period ("am 1. Mai", "1. května").
_PERIOD_ORDINALS = {"de", "cs", "sk", "pl", "da", "nb", "nn", "no", "fi", "hu", "tr", "hr", "sl", "sr", "et", "is"}

# Abbreviations (lowercase, without the final period) that never end a sentence when text follows them.
_ABBREVIATIONS = {
    "en": {"mr", "mrs", "ms", "dr", "prof", "st", "mt", "ft", "vs", "e.g", "i.e", "cf", "approx", "gen", "col", "capt",
           "lt", "sgt", "rev", "hon", "gov", "sen", "rep", "fig", "dept", "est", "ca"},
    "de": {"z.b", "d.h", "bzw", "vgl", "ca", "hr", "fr", "dr", "prof", "nr", "evtl", "ggf", "inkl", "bspw", "sog",
           "u.u", "z.t", "str", "abs", "bd", "geb", "gest"},
    "fr": {"m", "mme", "mlle", "mm", "dr", "pr", "me", "p.ex", "cf", "env", "st", "ste", "no", "vol", "chap"},
    "cs": {"např", "tzv", "tj", "mj", "resp", "č", "str", "př", "cca", "doc", "ing", "mgr", "dr", "prof", "pí", "sv",
           "odst", "čl"},
}  # fmt: skip
# Dotted abbreviations often last in a sentence, so not taken for acronyms ("at 6 p.m. Tom slept").
_FINAL_ABBREVIATIONS = {"en": {"a.m", "p.m"}, "de": {"u.ä", "o.ä"}}
# Abbreviations that never end a sentence before a number ("No. 5", "pp. 12").
_BEFORE_NUMBER = {"en": {"no", "nos", "vol", "pp", "ch", "sec", "art"}, "de": {"art", "kap", "abb"}}
# Words that often start a sentence (lowercase): after an initial, an acronym or an ordinal they mark a new one.
_STARTERS = {
    "en": {"a", "an", "the", "he", "she", "it", "they", "we", "i", "you", "this", "that", "these", "those", "there",
           "then", "but", "and", "so", "in", "on", "at", "his", "her", "their", "my", "our", "its", "one", "two",
           "three", "four", "five", "six", "several", "many", "some", "what", "why", "how", "when", "where",
           "who", "if", "after", "as", "yes", "no"},
    "de": {"der", "die", "das", "den", "dem", "des", "ein", "eine", "einer", "eines", "einem", "einen", "er", "sie",
           "es", "ich", "wir", "ihr", "man", "dies", "diese", "dieser", "dieses", "dann", "aber", "und", "auch",
           "doch", "so", "da", "dort", "hier", "mein", "meine", "sein", "seine", "zwei", "drei", "vier", "fünf",
           "sechs", "mehrere", "viele", "einige", "im", "in", "auf", "mit", "als", "wenn", "was",
           "wer", "wie", "warum", "wo", "ja", "nein"},
    "fr": {"le", "la", "les", "un", "une", "des", "il", "elle", "ils", "elles", "je", "nous", "vous", "on", "ce",
           "cette", "ces", "mais", "et", "puis", "deux", "trois", "quatre", "plusieurs", "en", "dans", "sur"},
    "cs": {"to", "ten", "ta", "on", "ona", "oni", "já", "my", "vy", "ale", "a", "pak", "v", "na", "dva", "dvě", "tři",
           "několik"},
}  # fmt: skip

_TERMINATORS = re.compile(r"[.!?…。！？｡]+")
_CLOSERS = "\"'”’»)]}」』）】〕》〉›"
_SPACES_AND_OPENERS = re.compile(r"\s*[\"'“‘«(\[{「『（【〔《〈‹¿¡]*")
_CJK_TERMINATORS = set("。！？｡")
# Han, kana and their punctuation and full-width forms: text that needs no space after a sentence's end.
_UNSPACED_SCRIPT = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]")
_WIDE_SPACE = re.compile(r"[^\S\x00-\x7f]")  # whitespace outside ASCII (no-break, ideographic, thin spaces)
_WORD_AFTER = re.compile(r"\w+\.?")  # with its period, so an initial ("A.") is never taken for a starter ("A")
_ACRONYM = re.compile(r"(?:[^\W\d_]{1,2}\.)+[^\W\d_]{1,2}")


def split_sentences(text: str, lang: str, splitter: str = "rules") -> list[tuple[int, int]]:
    """The character spans [start, end) of the sentences of `text`, in order, without surrounding whitespace;
    together they hold every non-space character. `lang` is an ISO 639 code ("en", "de", "zh-Hant")."""
    if splitter not in SPLITTERS:
        raise ValueError(f"`splitter` must be one of {', '.join(SPLITTERS)}, but is {splitter!r} instead.")
    lang = _base_language(lang)
    ends = _sentencex_ends(text, lang) if splitter == "sentencex" else _rule_ends(text, lang)
    spans = []
    start = 0
    for end in [*ends, len(text)]:
        piece = text[start:end]
        if piece.strip():
            left = start + len(piece) - len(piece.lstrip())
            spans.append((left, left + len(piece.strip())))
        start = end
    return spans


def sentence_separator(lang: str) -> str:
    """What goes between two sentences of `lang`: nothing in Chinese and Japanese, else a space."""
    return "" if _base_language(lang) in _UNSPACED else " "


def join_sentences(sentences: list[str], lang: str) -> str:
    """The sentences (e.g. translations into `lang`) stripped and joined with `lang`'s separator; empty ones are
    left out."""
    return sentence_separator(lang).join(s.strip() for s in sentences if s.strip())


def _base_language(lang: str) -> str:
    """The language of a tag without region or script: "zh-Hant" and "zh_CN" give "zh"."""
    return lang.replace("_", "-").split("-")[0].lower()


def _rule_ends(text: str, lang: str) -> list[int]:
    """Offsets just after each sentence end that the rules find (after the terminators and closers)."""
    ends = []
    for match in _TERMINATORS.finditer(text):
        end = match.end()
        while end < len(text) and text[end] in _CLOSERS:
            end += 1
        if end < len(text) and _ends_sentence(text, match.start(), match.group(), end, lang):
            ends.append(end)
    return ends


def _ends_sentence(text: str, at: int, terminators: str, end: int, lang: str) -> bool:
    """Whether the terminators at `text[at:]`, followed by closers up to `end`, end a sentence."""
    if _CJK_TERMINATORS.intersection(terminators):
        return True
    if not text[end].isspace():
        ellipsis = "…" in terminators or ".." in terminators  # "我想……算了": a pause, not an end
        return not ellipsis and bool(_UNSPACED_SCRIPT.match(text, end))
    after = _SPACES_AND_OPENERS.match(text, end).end()  # the next word's first letter (or whatever comes)
    if text[after : after + 1].islower():
        return False
    if terminators != ".":  # "?", "!", "...", "…", "?!": a sentence end before anything but a lowercase word
        return True
    start = at
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "."):
        start -= 1
    return _period_ends_sentence(text[start:at].strip("."), text, after, lang)


def _period_ends_sentence(word: str, text: str, after: int, lang: str) -> bool:
    """Whether a period after `word` ends a sentence, given that `text[after:]` follows it (not lowercase)."""
    lowered, next_char = word.lower(), text[after : after + 1]
    if lowered in _ABBREVIATIONS.get(lang, ()):
        return False
    if lowered in _BEFORE_NUMBER.get(lang, ()) and next_char.isdigit():
        return False
    initial = len(word) == 1 and word.isalpha()
    ordinal = word.isdigit() and len(word) <= 3 and lang in _PERIOD_ORDINALS
    acronym = _ACRONYM.fullmatch(word) and lowered not in _FINAL_ABBREVIATIONS.get(lang, ())
    if initial or ordinal or acronym:
        next_word = _WORD_AFTER.match(text, after)
        return bool(next_word) and next_word.group().lower() in _STARTERS.get(lang, ())
    return True


def _sentencex_ends(text: str, lang: str) -> list[int]:
    """Offsets just after each sentence that `sentencex` finds."""
    try:
        import sentencex
    except ImportError as e:
        raise MissingExtraError('splitter="sentencex" needs sentencex: pip install "nmt[documents]"') from e
    # sentencex 1.0.32 panics (a BaseException) on a capital, a space of several UTF-8 bytes and a period
    # ("Plan A\xa0."); such spaces become plain ones, which keeps every offset.
    plain = _WIDE_SPACE.sub(" ", text)
    ends = []
    position = 0
    for sentence in sentencex.segment(lang, plain):  # the pieces of `plain`, each with the whitespace after it
        position += len(sentence)
        ends.append(position)
    return ends
