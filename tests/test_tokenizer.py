import hashlib
import io
import json
import multiprocessing
import os
import unicodedata
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict

import pytest
import sentencepiece as spm

from nmt.config import TokenizerConfig
from nmt.data import tokenizer as tokenizer_module
from nmt.data.builtin import builtin_corpus
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer, train_tokenizer

EXTRA_EN = ["The weather is nice today!", "Tom doesn't know what to do."]
EXTRA_OTHER = ["Die Straße über den Bäumen ist schön.", "我的朋友邀請我去吃晚餐。", "查查你的字典。"]


@pytest.fixture(scope="module")
def corpus():
    data = builtin_corpus("train", 400, seed=0)
    return data.src + EXTRA_EN * 5, data.tgt + EXTRA_OTHER * 5


@pytest.fixture(scope="module")
def joint(corpus, tmp_path_factory):
    return train_tokenizer(*corpus, TokenizerConfig(vocab_size=300), tmp_path_factory.mktemp("spm"))


def test_special_ids_are_fixed():
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)


def test_round_trip_with_umlauts_and_chinese(joint):
    lines = EXTRA_OTHER + ["Ihr mögt fünf grüne Hüte.", "Ｔｏｍ doesn't know！"]
    ids = joint.encode_tgt(lines)
    # SentencePiece applies NFKC, so full-width "Ｔｏｍ" and "！" come back as "Tom" and "!".
    assert [joint.decode_tgt(row) for row in ids] == [unicodedata.normalize("NFKC", line) for line in lines]


def test_identity_normalization_keeps_full_width_punctuation(corpus, tmp_path):
    lines = ["你好，世界！", "你介意把你的筆借給我嗎？", "Ｔｏｍ doesn't know！"]
    src, tgt = corpus
    tok = train_tokenizer(src, tgt + lines * 20, TokenizerConfig(vocab_size=300, normalization="identity"), tmp_path)
    assert [tok.decode_tgt(row) for row in tok.encode_tgt(lines)] == lines


def test_encode_adds_no_special_tokens(joint):
    for row in joint.encode_src(["i see one red apple."]) + joint.encode_tgt(["Ich sehe einen roten Apfel."]):
        assert row and not {PAD_ID, BOS_ID, EOS_ID} & set(row)
    assert joint.encode_src([""]) == [[]]


def test_decode_stops_at_eos_and_drops_bos_and_pad(joint):
    ids = joint.encode_tgt(["Ich sehe einen roten Apfel."])[0]
    assert joint.decode_tgt([BOS_ID, *ids, EOS_ID, *ids, PAD_ID]) == "Ich sehe einen roten Apfel."


def test_joint_vocab_is_shared(joint):
    assert joint.joint and joint.src_vocab_size == joint.tgt_vocab_size <= 300
    assert joint.encode_src(["Apfel"]) == joint.encode_tgt(["Apfel"])


def test_second_call_loads_from_cache(corpus, tmp_path, monkeypatch):
    calls = []
    real = tokenizer_module._train_model
    monkeypatch.setattr(tokenizer_module, "_train_model", lambda *args: calls.append(1) or real(*args))
    cfg = TokenizerConfig(vocab_size=200)
    first = train_tokenizer(*corpus, cfg, tmp_path)
    second = train_tokenizer(*corpus, cfg, tmp_path)
    assert len(calls) == 1
    assert first.fingerprint == second.fingerprint
    assert [p.suffix for p in tmp_path.iterdir()] == [".model"]
    train_tokenizer(*corpus, TokenizerConfig(vocab_size=250), tmp_path)
    train_tokenizer(corpus[0][:-1], corpus[1][:-1], cfg, tmp_path)
    assert len(calls) == 3  # other options or other text train a new model


def test_separate_models_and_bytes_round_trip(corpus, joint, tmp_path):
    separate = train_tokenizer(*corpus, TokenizerConfig(vocab_size=200, joint=False, model_type="bpe"), tmp_path)
    assert not separate.joint and separate.src_vocab_size == separate.tgt_vocab_size == 200
    # "Ä" occurs only on the German side, so only the target model knows it.
    assert UNK_ID in separate.encode_src(["Äpfel"])[0] and UNK_ID not in separate.encode_tgt(["Äpfel"])[0]
    assert set(separate.to_bytes()) == {"src", "tgt"} and set(joint.to_bytes()) == {"joint"}
    for tok in (separate, joint):
        copy = Tokenizer.from_bytes(tok.to_bytes())
        assert copy.fingerprint == tok.fingerprint
        assert copy.encode_src(corpus[0][:5]) == tok.encode_src(corpus[0][:5])
        assert copy.encode_tgt(corpus[1][-3:]) == tok.encode_tgt(corpus[1][-3:])
    assert separate.fingerprint != joint.fingerprint
    # each side decodes with its own model: the source's ids are not the target's
    line = corpus[0][0]
    src_ids = separate.encode_src([line])[0]
    assert separate.decode_src([BOS_ID, *src_ids, EOS_ID, *src_ids, PAD_ID]) == line
    assert separate.encode_tgt([line])[0] != src_ids


def test_from_bytes_rejects_unknown_keys(joint):
    with pytest.raises(ValueError, match=r"keys \{joint\} or \{src, tgt\}, but have \['src'\]"):
        Tokenizer.from_bytes({"src": joint.to_bytes()["joint"]})


def test_foreign_special_ids_are_rejected():
    model = io.BytesIO()
    # SentencePiece's own defaults: unk 0, bos 1, eos 2, no pad.
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["a b c d e f"] * 20), model_writer=model, vocab_size=10, minloglevel=2
    )
    with pytest.raises(ValueError, match=r"special ids .* must be \(0, 1, 2, 3\), but are \(-1, 0, 1, 2\)"):
        Tokenizer(model.getvalue())


def test_a_smaller_vocabulary_than_asked_is_reported(corpus, tmp_path, capsys):
    tok = train_tokenizer(*corpus, TokenizerConfig(vocab_size=5000), tmp_path)
    assert tok.src_vocab_size < 5000
    assert f"tokenizer: asked for 5,000 pieces, the corpus gave {tok.src_vocab_size:,}." in capsys.readouterr().err
    train_tokenizer(*corpus, TokenizerConfig(vocab_size=200), tmp_path)
    assert "asked for" not in capsys.readouterr().err  # the size asked for: nothing to say


def _fingerprint(src: list[str], tgt: list[str], cfg: TokenizerConfig, cache_dir: str) -> str:
    return train_tokenizer(src, tgt, cfg, cache_dir).fingerprint


def _fingerprint_in_a_new_process(src: list[str], tgt: list[str], cfg: TokenizerConfig, cache_dir: str) -> str:
    """Train in a fresh process: SentencePiece seeds its generator once per process, as a second run would."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_fingerprint, src, tgt, cfg, cache_dir).result()


def test_a_joint_model_is_the_same_in_every_run(corpus, tmp_path):
    # 2 x 415 lines, more than `input_sentence_size`: SentencePiece must not draw a sample of its own.
    cfg = TokenizerConfig(vocab_size=300, input_sentence_size=300)
    first, second = (_fingerprint_in_a_new_process(*corpus, cfg, str(tmp_path / run)) for run in ("a", "b"))
    assert first == second


def test_the_model_does_not_depend_on_the_machine_s_core_count(corpus, tmp_path, monkeypatch):
    fingerprints = set()
    for cores in (1, 3):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, cores=cores: set(range(cores)), raising=False)
        fingerprints.add(train_tokenizer(*corpus, TokenizerConfig(vocab_size=300), tmp_path / str(cores)).fingerprint)
    assert len(fingerprints) == 1


def test_models_cached_by_the_earlier_training_are_not_reused(corpus, joint, tmp_path):
    cfg = TokenizerConfig(vocab_size=200)
    # The cache name training version 1 gave this text and these options (no training version in it).
    digest = hashlib.sha256(json.dumps({**asdict(cfg), "sentencepiece": spm.__version__}, sort_keys=True).encode())
    for line in corpus[0] + corpus[1]:
        digest.update(line.encode() + b"\n")
    (tmp_path / f"spm-{digest.hexdigest()[:32]}.model").write_bytes(joint.to_bytes()["joint"])
    assert train_tokenizer(*corpus, cfg, tmp_path).fingerprint != joint.fingerprint
