"""What a word is, across scripts: the letters of scripts written without spaces between words (Chinese,
Japanese, Thai, Lao, Burmese, Khmer) bound no word, so a term written in them is found inside running text, and a
term beside them (`iPhone` in `iPhone手机`) is whole there. Shared by glossary matching (`nmt.decode.terms`), term
use (`nmt.evaluate.term_use`) and the untranslatable pieces of documents (`nmt.documents.protect`)."""

from __future__ import annotations

import re

# Thai, Lao, Burmese, Khmer; CJK radicals to ideographs (kana included); compatibility ideographs; full- and
# half-width forms; the CJK extension planes
UNSPACED_RANGES = "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff"
UNSPACED = re.compile(f"[{UNSPACED_RANGES}]")
_SPACED_WORD = f"[^\\W{UNSPACED_RANGES}]"  # a letter, digit or _ of a script written with spaces


def whole_words(phrase: str, whole_end: bool = True) -> str:
    """A regular expression for `phrase`'s words as whole words, any whitespace between them (`whole_end`
    False: its last word may go on); an end of the phrase in a script without spaces needs no boundary."""
    words = phrase.split()
    start = "" if UNSPACED.match(words[0][0]) else f"(?<!{_SPACED_WORD})"
    end = f"(?!{_SPACED_WORD})" if whole_end and not UNSPACED.match(words[-1][-1]) else ""
    return start + r"\s+".join(re.escape(w) for w in words) + end
