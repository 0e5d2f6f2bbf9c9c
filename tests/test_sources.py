import gzip
import hashlib
import zipfile

import pytest

from nmt.config import DataConfig
from nmt.data import sources
from nmt.data.corpus import CorpusError
from nmt.data.sources import download, get_corpus, prepare_tatoeba


@pytest.mark.parametrize(("split", "size"), [("train", 29000), ("val", 1014), ("test2016", 1000), ("test2017", 1000)])
def test_multi30k_en_de_from_local_root(shared_data, split, size):
    corpus = get_corpus(DataConfig(name="multi30k", root=str(shared_data)), split)
    assert len(corpus.src) == len(corpus.tgt) == size
    assert all(corpus.src) and all(corpus.tgt)


def test_multi30k_other_pairs(shared_data):
    en_cs = get_corpus(DataConfig(name="multi30k", root=str(shared_data), tgt_lang="cs"), "val")
    de_fr = get_corpus(DataConfig(name="multi30k", root=str(shared_data), src_lang="de", tgt_lang="fr"), "val")
    en_de = get_corpus(DataConfig(name="multi30k", root=str(shared_data)), "val")
    assert len(en_cs) == len(de_fr) == 1014
    assert en_cs.src == en_de.src and de_fr.src == en_de.tgt
    assert en_cs.tgt != de_fr.tgt


def test_multi30k_test2017_has_no_czech(shared_data):
    cfg = DataConfig(name="multi30k", root=str(shared_data), tgt_lang="cs")
    with pytest.raises(CorpusError, match=r"test2017 has no language 'cs'; available languages: en, de, fr"):
        get_corpus(cfg, "test2017")


def test_multi30k_download_path_verifies_checksums(shared_data, tmp_path, monkeypatch):
    # The real download code, fed the local copies of the upstream files by file:// URL.
    monkeypatch.setattr(sources, "MULTI30K_URL", f"file://{shared_data}/multi30k/{{split}}.{{lang}}.gz")
    corpus = get_corpus(DataConfig(name="multi30k", cache_dir=str(tmp_path)), "val")
    assert len(corpus) == 1014
    assert sorted(p.name for p in (tmp_path / "multi30k").iterdir()) == ["val.de.gz", "val.en.gz"]


@pytest.mark.parametrize(("split", "size"), [("train", 19116), ("dev", 1000)])
def test_tatoeba_both_directions(shared_data, split, size):
    en_zh = get_corpus(DataConfig(name="tatoeba", root=str(shared_data), tgt_lang="zh"), split)
    zh_en = get_corpus(DataConfig(name="tatoeba", root=str(shared_data), src_lang="zh", tgt_lang="en"), split)
    assert len(en_zh) == size
    assert (zh_en.src, zh_en.tgt) == (en_zh.tgt, en_zh.src)


def test_builtin_uses_the_configured_train_size():
    cfg = DataConfig(builtin_train_size=200)
    assert len(get_corpus(cfg, "train")) == 200
    assert len(get_corpus(cfg, "valid")) == 500


def test_files_plain_and_gz_relative_to_root(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "train.en").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "corpus" / "train.de.gz").write_bytes(gzip.compress(b"eins\nzwei\n"))
    corpus = get_corpus(DataConfig(name="files", root=str(tmp_path)), "corpus/train")
    assert (corpus.src, corpus.tgt) == (["one", "two"], ["eins", "zwei"])
    absolute = get_corpus(DataConfig(name="files"), str(tmp_path / "corpus" / "train"))
    assert absolute.tgt == ["eins", "zwei"]


def test_files_missing_language_lists_both_names(tmp_path):
    (tmp_path / "train.en").write_text("one\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"neither .*train\.de nor .*train\.de\.gz exists"):
        get_corpus(DataConfig(name="files"), str(tmp_path / "train"))


@pytest.mark.parametrize(
    ("cfg", "split", "message"),
    [
        (DataConfig(name="wmt14"), "train", "available corpora: builtin, multi30k, tatoeba, files"),
        (DataConfig(name="multi30k", root="."), "valid", "available splits: train, val, test2016, test2017"),
        (
            DataConfig(name="multi30k", root=".", tgt_lang="zh"),
            "train",
            "available languages: en, de, fr, cs",
        ),
        (DataConfig(name="tatoeba", root="."), "train", "available pairs: en-zh, zh-en"),
        (DataConfig(name="tatoeba", root=".", tgt_lang="zh"), "test", "available splits: train, dev"),
        (DataConfig(src_lang="de", tgt_lang="en"), "train", "available pairs: en-de"),
    ],
)
def test_unknown_names_list_what_exists(cfg, split, message):
    with pytest.raises(CorpusError, match=message):
        get_corpus(cfg, split)


def test_download_file_url_with_checksum(tmp_path):
    origin = tmp_path / "origin.txt"
    origin.write_bytes(b"payload\n")
    dest = tmp_path / "cache" / "copy.txt"
    download(origin.as_uri(), dest, hashlib.sha256(b"payload\n").hexdigest())
    assert dest.read_bytes() == b"payload\n"
    assert [p.name for p in dest.parent.iterdir()] == ["copy.txt"]


def test_download_checksum_mismatch_leaves_nothing(tmp_path):
    origin = tmp_path / "origin.txt"
    origin.write_bytes(b"tampered\n")
    dest = tmp_path / "cache" / "copy.txt"
    with pytest.raises(CorpusError, match="checksum mismatch .* expected SHA-256 0000"):
        download(origin.as_uri(), dest, "0" * 64)
    assert list(dest.parent.iterdir()) == []


def test_download_failure_is_a_corpus_error(tmp_path):
    with pytest.raises(CorpusError, match="could not download .*set `data.root` to a local copy"):
        download((tmp_path / "absent").as_uri(), tmp_path / "cache" / "x", None)
    assert list((tmp_path / "cache").iterdir()) == []


def make_tatoeba_zip(directory, pairs: int) -> None:
    directory.mkdir(parents=True)
    lines = [f"Sentence {i}.\t句子{i}。\tCC-BY 2.0 (France) Attribution: tatoeba.org #{i}" for i in range(pairs)]
    with zipfile.ZipFile(directory / "cmn-eng.zip", "w") as zf:
        zf.writestr("cmn.txt", "\n".join(lines) + "\n")


def test_prepare_tatoeba_splits_deterministically(tmp_path):
    make_tatoeba_zip(tmp_path / "a", 2100)
    make_tatoeba_zip(tmp_path / "b", 2100)
    prepare_tatoeba(tmp_path / "a")
    prepare_tatoeba(tmp_path / "b")
    for name in ("train.en.gz", "train.zh.gz", "dev.en.gz", "dev.zh.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    cfg = DataConfig(name="tatoeba", cache_dir=str(tmp_path / "cache"), src_lang="zh", tgt_lang="en")
    make_tatoeba_zip(tmp_path / "cache" / "tatoeba-en-zh", 2100)
    train, dev = get_corpus(cfg, "train"), get_corpus(cfg, "dev")
    assert (len(train), len(dev)) == (100, 1000)
    assert not set(train.tgt) & set(dev.tgt)
    assert all(zh == f"句子{en[9:-1]}。" for zh, en in zip(dev.src, dev.tgt, strict=True))
