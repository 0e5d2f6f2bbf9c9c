import pytest
import sacrebleu

from nmt.data.builtin import (
    NOUNS,
    Clause,
    builtin_corpus,
    english_number,
    german_number,
    to_english,
    to_german,
    write_builtin,
)
from nmt.data.corpus import CorpusError, read_parallel


@pytest.fixture(scope="module")
def splits():
    return {
        split: builtin_corpus(split, 3000 if split == "train" else None, seed=7) for split in ("train", "valid", "test")
    }


@pytest.mark.parametrize(
    ("n", "german"),
    [
        (1, "eins"),
        (16, "sechzehn"),
        (17, "siebzehn"),
        (21, "einundzwanzig"),
        (30, "dreißig"),
        (37, "siebenunddreißig"),
        (100, "hundert"),
        (101, "hunderteins"),
        (321, "dreihunderteinundzwanzig"),
        (999, "neunhundertneunundneunzig"),
    ],
)
def test_german_numbers(n, german):
    assert german_number(n) == german


def test_english_numbers():
    assert english_number(321) == "three hundred twenty-one"
    assert english_number(40) == "forty"
    assert english_number(100) == "one hundred"


def test_one_agrees_with_noun_gender_in_the_accusative():
    cases = {
        "apple": "Ich sehe einen roten Apfel.",
        "cat": "Ich sehe eine rote Katze.",
        "house": "Ich sehe ein rotes Haus.",
    }
    for noun, german in cases.items():
        clause = Clause("i", "see", 1, "red", noun)
        assert to_english(clause) == f"i see one red {noun}."
        assert to_german(clause) == german


def test_plural_subject_agreement_and_verb_second():
    clause = Clause("he", "take", 2, "red", "apple")
    assert to_english(clause) == "he takes two red apples."
    assert to_german(clause) == "Er nimmt zwei rote Äpfel."
    clause = Clause("you", "see", 321, "big", "house", adverb="today")
    assert to_english(clause) == "today you see three hundred twenty-one big houses."
    assert to_german(clause) == "Heute siehst du dreihunderteinundzwanzig große Häuser."
    assert to_german(Clause("the children", "like", 1, "old", "bike")) == "Die Kinder mögen ein altes Fahrrad."


def test_same_seed_same_corpus_other_seed_other_corpus(splits):
    again = builtin_corpus("train", 3000, seed=7)
    assert (again.src, again.tgt) == (splits["train"].src, splits["train"].tgt)
    assert builtin_corpus("train", 3000, seed=8).src != again.src


def test_smaller_train_is_a_prefix(splits):
    assert builtin_corpus("train", 100, seed=7).src == splits["train"].src[:100]


def test_splits_have_their_sizes_and_share_no_source(splits):
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [3000, 500, 500]
    sources = [set(c.src) for c in splits.values()]
    assert sum(len(s) for s in sources) == len(set.union(*sources)) == 4000


def test_casing(splits):
    for en, de in zip(splits["valid"].src, splits["valid"].tgt, strict=True):
        assert en == en.lower()
        assert de[0].isupper()
        noun = en.rstrip(".").split()[-1]
        singular = noun if noun in NOUNS else noun[:-1]
        assert de.endswith(f" {NOUNS[singular][2 if noun == singular else 3]}.")


def test_copying_the_source_scores_low(splits):
    copy_bleu = sacrebleu.corpus_bleu(splits["test"].src, [splits["test"].tgt]).score
    assert copy_bleu < 5
    assert sacrebleu.corpus_bleu(splits["test"].tgt, [splits["test"].tgt]).score == pytest.approx(100)


def test_unknown_split_and_bad_size():
    with pytest.raises(CorpusError, match="available splits: train, valid, test"):
        builtin_corpus("dev", None, seed=0)
    with pytest.raises(CorpusError, match="must be >= 1 and <= 500, but is 501"):
        builtin_corpus("valid", 501, seed=0)
    with pytest.raises(CorpusError, match="split train must be given"):
        builtin_corpus("train", None, seed=0)


def test_write_builtin_round_trips(tmp_path):
    out = write_builtin(tmp_path / "builtin", train_size=50, seed=3)
    for split, size in (("train", 50), ("valid", 500), ("test", 500)):
        corpus = read_parallel(out / f"{split}.en", out / f"{split}.de")
        assert len(corpus) == size
    assert corpus.src == builtin_corpus("test", None, seed=3).src
