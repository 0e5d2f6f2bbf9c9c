"""Prepared corpora: `nmt-prepare`'s directory equals the in-memory reading of the corpus, batch for batch;
broken, unfinished or foreign directories are refused naming the file; training and translating run from one."""

from __future__ import annotations

import gzip
import json
import mmap
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_config
from torch.utils.data import DataLoader

from nmt.config import DataConfig, DecodeConfig, PrepareConfig, TokenizerConfig
from nmt.data.batching import TokenBatchSampler, collate
from nmt.data.corpus import CorpusError, filter_mask
from nmt.data.prepare import _sources, load_training_data, prepare_corpus, prepare_directory, sample_pairs
from nmt.data.prepared import MANIFEST, PreparedError, open_prepared, token_dtype
from nmt.data.sources import get_corpus
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, train_tokenizer
from nmt.train.datamodule import PairBatches

DATA = DataConfig(name="builtin", builtin_train_size=1500, max_len=12, max_ratio=1.6)
TOKENIZER = TokenizerConfig(vocab_size=300)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, spm_cache) -> Path:
    """The built-in corpus prepared by two worker processes in chunks of 100 lines (so in many pieces)."""
    data = DataConfig(**{**DATA.__dict__, "cache_dir": str(spm_cache)})
    out = tmp_path_factory.mktemp("prepared") / "builtin"
    prepare_corpus(data, TOKENIZER, out, workers=2, chunk_lines=100)
    return out


def in_memory(spm_cache: Path):
    """The corpus read, tokenized and filtered the plain way: whole lists in memory."""
    data = DataConfig(**{**DATA.__dict__, "cache_dir": str(spm_cache)})
    train, valid = get_corpus(data, "train"), get_corpus(data, "valid")
    tokenizer = train_tokenizer(train.src, train.tgt, TOKENIZER, spm_cache / "spm")
    src, tgt = tokenizer.encode_src(train.src), tokenizer.encode_tgt(train.tgt)
    keep, stats = filter_mask(np.array([len(x) for x in src]), np.array([len(x) for x in tgt]), 12, 1.6)
    kept = np.flatnonzero(keep)
    valid_ids = (
        [ids[:12] for ids in tokenizer.encode_src(valid.src)],
        [ids[:12] for ids in tokenizer.encode_tgt(valid.tgt)],
    )
    return tokenizer, [src[i] for i in kept], [tgt[i] for i in kept], valid_ids, valid.tgt, stats


def test_prepared_batches_equal_the_in_memory_path(prepared, spm_cache) -> None:
    tokenizer, src, tgt, (valid_src, valid_tgt), refs, stats = in_memory(spm_cache)
    corpus = open_prepared(prepared)
    assert corpus.tokenizer.fingerprint == tokenizer.fingerprint  # a corpus below the sample size: all of it
    assert corpus.filter_stats == stats and stats.kept < stats.total  # the filter dropped some
    assert corpus.valid_refs == refs
    assert corpus.valid.ids(list(range(len(valid_src)))) == (valid_src, valid_tgt)
    sampler = TokenBatchSampler([len(s) + 1 for s in src], [len(t) + 1 for t in tgt], 120, seed=4)
    prepared_sampler = TokenBatchSampler(corpus.train.src.lengths + 1, corpus.train.tgt.lengths + 1, 120, seed=4)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        prepared_sampler.set_epoch(epoch)
        batches = list(sampler)
        assert batches == list(prepared_sampler)
        for rows in batches[:20]:
            expected = collate([src[i] for i in rows], [tgt[i] for i in rows], PAD_ID, BOS_ID, EOS_ID, index=rows)
            got = corpus.train.batch(rows, PAD_ID, BOS_ID, EOS_ID)
            for field in ("src", "tgt_in", "tgt_out", "index"):
                assert torch.equal(getattr(got, field), getattr(expected, field)), field
            assert (got.src_tokens, got.tgt_tokens) == (expected.src_tokens, expected.tgt_tokens)


def test_loader_workers_assemble_the_same_batches(prepared) -> None:
    split = open_prepared(prepared).train
    sampler = TokenBatchSampler(split.src.lengths + 1, split.tgt.lengths + 1, 150, seed=2)

    def indices(workers: int) -> list[list[int]]:
        loader = DataLoader(
            PairBatches(split), sampler=sampler, batch_size=None, collate_fn=lambda b: b, num_workers=workers
        )
        return [batch.index.tolist() for batch in loader]

    assert indices(2) == indices(0)


def test_a_prepared_directory_holds_per_pair_only_lengths_in_memory(prepared) -> None:
    split = open_prepared(prepared).train
    for array in (split.src.tokens, split.src.offsets):
        assert isinstance(array.base.obj, mmap.mmap) and not array.flags.writeable  # a view of a read-only map
    assert split.src.lengths.dtype == np.uint8 and split.src.tokens.dtype == np.uint16  # lengths < 255, V < 2^16
    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.uint32


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: _flip_byte(d / "train.tgt.bin"), r"train\.tgt\.bin is corrupt: its SHA-256 differs"),
        (lambda d: _truncate(d / "train.src.idx"), r"train\.src\.idx has [\d,]+ bytes, but the manifest says"),
        (lambda d: (d / "valid.ref").unlink(), r"valid\.ref is missing from prepared directory"),
        (lambda d: _truncate(d / MANIFEST), r"manifest\.json is truncated or not JSON"),
        (lambda d: (d / MANIFEST).unlink(), r"manifest\.json does not exist: .* is not a finished nmt-prepare output"),
    ],
    ids=["corrupt-array", "truncated-offsets", "missing-file", "truncated-manifest", "no-manifest"],
)
def test_a_damaged_directory_is_refused_naming_the_file(prepared, tmp_path, damage, message) -> None:
    copy = tmp_path / "copy"
    _copy_tree(prepared, copy)
    damage(copy)
    with pytest.raises(PreparedError, match=message):
        open_prepared(copy)


def test_a_directory_of_another_tokenizer_is_refused(prepared, spm_cache, tmp_path) -> None:
    text = get_corpus(DATA, "valid")
    other = train_tokenizer(text.src, text.tgt, TokenizerConfig(vocab_size=120), spm_cache / "spm")
    with pytest.raises(PreparedError, match="was prepared with another tokenizer than the checkpoint's"):
        open_prepared(prepared, tokenizer=other)
    copy = tmp_path / "copy"
    _copy_tree(prepared, copy)
    (copy / "tokenizer" / "joint.model").write_bytes(other.to_bytes()["joint"])
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["files"].pop("tokenizer/joint.model")  # even past the checksums, the fingerprint decides
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(PreparedError, match=r"tokenizer does not match the tokenizer fingerprint"):
        open_prepared(copy)


def test_an_interrupted_prepare_leaves_nothing_that_looks_finished(spm_cache, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    data = DataConfig(**{**DATA.__dict__, "cache_dir": str(spm_cache)})

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("nmt.data.prepare._write_split", interrupt)
    with pytest.raises(KeyboardInterrupt):
        prepare_corpus(data, TOKENIZER, out)
    assert list(tmp_path.iterdir()) == []  # the temporary directory went with the exception
    monkeypatch.undo()
    # A killed prepare cannot clean up: its temporary directory stays, and opening the output says so.
    (tmp_path / ".out.tmp-999999999-abc").mkdir()
    with pytest.raises(PreparedError, match=r"does not exist, but .*\.out\.tmp-999999999-abc does: .* interrupted"):
        open_prepared(out)
    cfg = PrepareConfig(data=data, tokenizer=TOKENIZER, output=str(out), workers=1)
    prepare_directory(cfg)  # clears the dead process's leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(PreparedError, match="exists already; remove it or choose another directory"):
        prepare_directory(cfg)


def test_files_of_many_parts_and_gzip_are_read_in_order(tmp_path, spm_cache) -> None:
    for name, rows in (("a", ["eins zwei", "drei"]), ("b", ["vier fünf sechs"])):
        (tmp_path / f"{name}.de").write_text("".join(r + "\n" for r in rows))
        with gzip.open(tmp_path / f"{name}.en.gz", "wt") as f:
            f.write("".join(r.upper() + "\n" for r in rows))
    data = DataConfig(name="files", src_lang="en", tgt_lang="de", root=str(tmp_path), train=["a", "b"], valid="b")
    data = DataConfig(**{**data.__dict__, "cache_dir": str(spm_cache)})
    manifest = prepare_corpus(data, TokenizerConfig(vocab_size=40), tmp_path / "out")
    corpus = open_prepared(tmp_path / "out")
    decoded = [corpus.tokenizer.decode_tgt(corpus.train.tgt[i]) for i in range(len(corpus.train))]
    assert decoded == ["eins zwei", "drei", "vier fünf sechs"]
    assert [p[0] for p in manifest["sources"]["train"]] == [
        f"file {tmp_path / 'a.en.gz'}",
        f"file {tmp_path / 'b.en.gz'}",
    ]


def test_the_tokenizer_sample_is_seeded_uniform_and_in_corpus_order() -> None:
    sources = _sources(DataConfig(name="builtin", builtin_train_size=3000), "train")
    a, b = sample_pairs(sources, 500, seed=1), sample_pairs(sources, 500, seed=1)
    assert a == b and len(a[0]) == len(a[1]) == 500
    assert sample_pairs(sources, 500, seed=2) != a
    text = get_corpus(DataConfig(name="builtin", builtin_train_size=3000), "train")
    positions = [text.src.index(line) for line in a[0]]
    assert positions == sorted(positions) and positions[-1] > 2000  # drawn from the whole corpus, kept in order
    assert [text.tgt[i] for i in positions] == a[1]  # pairs stay pairs
    assert sample_pairs(sources, 5000, seed=1) == (text.src, text.tgt)  # a small corpus is taken whole


def test_misaligned_files_are_refused_naming_both(tmp_path, spm_cache) -> None:
    (tmp_path / "t.en").write_text("a\nb\nc\n")
    (tmp_path / "t.de").write_text("x\ny\n")
    data = DataConfig(name="files", root=str(tmp_path), train="t", valid="t", cache_dir=str(spm_cache))
    with pytest.raises(CorpusError, match=r"t\.en has 3 lines but .*t\.de has 2; the files must align"):
        prepare_corpus(data, TOKENIZER, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("side", ["en", "de"])
def test_a_carriage_return_inside_a_line_does_not_split_it(tmp_path, spm_cache, side) -> None:
    text = {
        "en": ["a dog runs.", "the cat sleeps.", "two dogs."],
        "de": ["ein Hund rennt.", "die Katze schläft.", "zwei Hunde."],
    }
    for lang, lines in text.items():
        cut = "\r".join(lines[0].split(" ", 1)) if lang == side else lines[0]  # "a\rdog runs."
        (tmp_path / f"t.{lang}").write_bytes(f"{cut}\r\n{lines[1]}\n{lines[2]}\n".encode())
    data = DataConfig(name="files", root=str(tmp_path), train="t", valid="t", cache_dir=str(spm_cache))
    manifest = prepare_corpus(data, TokenizerConfig(vocab_size=40), tmp_path / "out")
    assert manifest["splits"]["valid"]["pairs"] == 3
    assert open_prepared(tmp_path / "out").valid_refs == text["de"]  # the CR is a space in the references


def test_training_from_a_prepared_directory_equals_training_from_the_corpus(prepared, tmp_path, spm_cache) -> None:
    from nmt.decode.translator import Translator
    from nmt.train.run import train

    options = ["data.builtin_train_size=1500", "data.max_len=12", "data.max_ratio=1.6", "tokenizer.vocab_size=300"]
    options += ["trainer.max_steps=4", "trainer.val_check_interval=4", "data.max_tokens=120", "trainer.num_threads=1"]
    direct = train(train_config(tmp_path / "direct", spm_cache, options))
    from_dir = train(
        train_config(tmp_path / "prepared", spm_cache, [*options, f"data.prepared={prepared}", "data.name=files"])
    )
    a, b = (torch.load(r.model_path, weights_only=True) for r in (direct, from_dir))
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert b["nmt"]["train_config"]["data"]["name"] == "builtin"  # the manifest's corpus, not the command line's
    assert b["nmt"]["train_config"]["data"]["prepared"] == str(prepared)
    (translation,) = Translator.from_checkpoint(from_dir.model_path, DecodeConfig(beam_size=1)).translate(["i see."])
    assert translation.texts[0]  # 4 steps: any German-looking words will do


def test_the_training_cache_is_prepared_once_and_reused(spm_cache) -> None:
    data = DataConfig(**{**DATA.__dict__, "cache_dir": str(spm_cache), "builtin_train_size": 700})
    first = load_training_data(data, TOKENIZER)
    stamp = (first.path / MANIFEST).stat().st_mtime_ns
    again = load_training_data(data, TOKENIZER)
    assert again.path == first.path and (again.path / MANIFEST).stat().st_mtime_ns == stamp
    other = load_training_data(DataConfig(**{**data.__dict__, "max_len": 11}), TOKENIZER)
    assert other.path != first.path


# A rank of a DDP run in its own interpreter, as torchrun starts it: it says when it has imported, waits
# for its configs on stdin (the parent sends them to every rank at once), loads the training data and
# prints where it found it.
RANK = """
import json, pickle, sys
from nmt.data.prepare import load_training_data
print("ready", flush=True)
data, tokenizer_cfg = pickle.load(sys.stdin.buffer)
corpus = load_training_data(data, tokenizer_cfg)
print(json.dumps([str(corpus.path), corpus.tokenizer.fingerprint]))
"""


def _ranks_loading_at_once(data: DataConfig, tokenizer: TokenizerConfig, ranks: int) -> list[tuple[list[str], str]]:
    """`load_training_data` in `ranks` new processes released together; each one's (path, fingerprint) and stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    children = [subprocess.Popen([sys.executable, "-c", RANK], env=env, **pipes) for _ in range(ranks)]
    for child in children:
        assert child.stdout.readline() == b"ready\n", child.communicate()[1].decode()
    for child in children:  # every rank has imported: release them together
        child.stdin.write(pickle.dumps((data, tokenizer)))
        child.stdin.flush()
    results = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err.decode()
        results.append((json.loads(out.decode().splitlines()[-1]), err.decode()))
    return results


def test_ranks_that_load_one_corpus_at_once_prepare_it_once(tmp_path) -> None:
    cfg = train_config(tmp_path / "run", tmp_path / "cache", ["data.builtin_train_size=2000"])
    results = _ranks_loading_at_once(cfg.data, cfg.tokenizer, ranks=2)
    assert sorted(err.count("preparing builtin") for _, err in results) == [0, 1], results
    (found, _), (other, _) = results
    assert found == other  # the same directory, the same tokenizer
    assert (Path(found[0]).parent / f"{Path(found[0]).name}.lock").is_file()


def test_a_split_is_encoded_by_no_more_processes_than_it_has_chunks(spm_cache, tmp_path, monkeypatch) -> None:
    import nmt.data.prepare as prepare_module

    started = []
    real = prepare_module.encode_chunks
    monkeypatch.setattr(
        prepare_module, "encode_chunks", lambda chunks, tok, workers: started.append(workers) or real(chunks, tok, 1)
    )
    data = DataConfig(**{**DATA.__dict__, "cache_dir": str(spm_cache)})  # 1,500 training and 500 valid pairs
    prepare_corpus(data, TOKENIZER, tmp_path / "a", workers=4, chunk_lines=400)  # train: 4 chunks, valid: 2
    prepare_corpus(data, TOKENIZER, tmp_path / "b", workers=4, chunk_lines=1000)  # train: 2 chunks, valid: 1
    assert started == [4, 2, 2, 1]


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)
