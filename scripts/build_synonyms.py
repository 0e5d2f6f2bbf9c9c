"""Write English synonym sets for `augment.synonyms` from WordNet's database files, offline.

    apt-get install wordnet-base   # Princeton WordNet 3.0 in /usr/share/wordnet (Debian)
    python scripts/build_synonyms.py --wordnet /usr/share/wordnet --out runs/synonyms.en.txt

Each word joins only the synset of its most frequent sense (the first offset of its line in `index.noun`,
`index.verb`, ...: WordNet orders senses by frequency in its tagged corpus), so `dog` is not put with
`frank` or `heel`; a set is the single lower-case words of one synset that chose it, kept when two or more
did (`big` and `large`). Multi-word lemmas (`ice_cream`) and names (capitalised) are left out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nmt.data.corpus import CorpusError

POS = {"noun": "noun", "verb": "verb", "adj": "adj", "adv": "adv"}


def first_senses(path: Path) -> dict[str, str]:
    """Each lemma of a WordNet index file -> the offset of its most frequent sense's synset."""
    first = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("  "):  # the licence header
            continue
        fields = line.split()
        try:
            pointers = int(fields[3])
            first[fields[0]] = fields[6 + pointers]  # lemma pos synset_cnt p_cnt [ptr]* sense_cnt tagsense_cnt off*
        except (IndexError, ValueError) as err:
            raise CorpusError(f"file {path}, line {number}: not a WordNet index line ({err}).") from err
    return first


def synonym_sets(wordnet: Path, pos: str) -> list[list[str]]:
    """The sets of one part of speech: single lower-case words grouped by the synset of their first sense."""
    groups: dict[str, list[str]] = {}
    for lemma, offset in first_senses(wordnet / f"index.{POS[pos]}").items():
        if lemma.isalpha() and lemma.islower():
            groups.setdefault(offset, []).append(lemma)
    return [sorted(words) for words in groups.values() if len(words) >= 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"), help="WordNet's dict directory")
    parser.add_argument("--pos", default="noun,verb,adj,adv", help="parts of speech, comma-separated")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sets = {tuple(words): words for pos in args.pos.split(",") for words in synonym_sets(args.wordnet, pos)}
    args.out.write_text("".join(" ".join(words) + "\n" for words in sets.values()), encoding="utf-8")
    print(f"{len(sets):,} synonym sets, {len({w for s in sets.values() for w in s}):,} words -> {args.out}")


if __name__ == "__main__":
    main()
