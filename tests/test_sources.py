import gzip
import hashlib
import io
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import pytest
import sacrebleu

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
        (DataConfig(name="wmt19"), "train", "available corpora: builtin, multi30k, tatoeba, wmt14, files"),
        (DataConfig(name="wmt14", root="."), "newstest2012", "available splits: train, valid, test"),
        (DataConfig(name="wmt14", root=".", tgt_lang="fr"), "train", "available pairs: en-de, de-en"),
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


WMT14_TEST_STEMS = ["newstest2013", "newstest2014-full"]


def make_wmt14_dir(directory, packed=()) -> None:
    """A tiny `wmt14/` in the documented layout: two lines per file, saying which file and line they are."""
    directory.mkdir(parents=True)
    for stem in [*sources.WMT14_TRAIN, *WMT14_TEST_STEMS]:
        for lang in ("en", "de"):
            name, text = f"{stem}.{lang}", f"{stem} {lang} 1\n{stem} {lang} 2\n".encode()
            if name in packed:
                (directory / f"{name}.gz").write_bytes(gzip.compress(text))
            else:
                (directory / name).write_bytes(text)


def test_wmt14_train_is_three_file_pairs_in_a_fixed_order(tmp_path):
    make_wmt14_dir(tmp_path / "wmt14", packed={"commoncrawl.de-en.de"})
    d = tmp_path / "wmt14"
    en_de = sources._wmt14_files(DataConfig(name="wmt14", root=str(tmp_path)), "train")
    assert en_de == [
        (d / "europarl-v7.de-en.en", d / "europarl-v7.de-en.de"),
        (d / "commoncrawl.de-en.en", d / "commoncrawl.de-en.de.gz"),
        (d / "news-commentary-v9.de-en.en", d / "news-commentary-v9.de-en.de"),
    ]
    de_en = sources._wmt14_files(DataConfig(name="wmt14", root=str(tmp_path), src_lang="de", tgt_lang="en"), "train")
    assert de_en == [(tgt, src) for src, tgt in en_de]


@pytest.mark.parametrize(("split", "stem"), [("valid", "newstest2013"), ("test", "newstest2014-full")])
def test_wmt14_valid_and_test_are_one_pair_each(tmp_path, split, stem):
    make_wmt14_dir(tmp_path / "wmt14")
    d = tmp_path / "wmt14"
    assert sources._wmt14_files(DataConfig(name="wmt14", root=str(tmp_path)), split) == [
        (d / f"{stem}.en", d / f"{stem}.de")
    ]


def test_wmt14_train_corpus_concatenates_the_sub_corpora_in_order(tmp_path):
    make_wmt14_dir(tmp_path / "wmt14", packed={"europarl-v7.de-en.en"})
    corpus = get_corpus(DataConfig(name="wmt14", root=str(tmp_path)), "train")
    stems = list(sources.WMT14_TRAIN)
    assert corpus.src == [f"{stem} en {i}" for stem in stems for i in (1, 2)]
    assert corpus.tgt == [f"{stem} de {i}" for stem in stems for i in (1, 2)]


def test_wmt14_missing_file_names_it_and_the_layout(tmp_path):
    make_wmt14_dir(tmp_path / "wmt14")
    (tmp_path / "wmt14" / "commoncrawl.de-en.de").unlink()
    with pytest.raises(CorpusError) as err:
        get_corpus(DataConfig(name="wmt14", root=str(tmp_path)), "train")
    message = str(err.value)
    assert f"neither {tmp_path / 'wmt14' / 'commoncrawl.de-en.de'} nor its .gz exists" in message
    assert "europarl-v7.de-en.{en,de}, commoncrawl.de-en.{en,de}" in message
    assert "newstest2014-full.{en,de}" in message


def make_tgz(path, members: dict[str, bytes]) -> str:
    """Write a .tgz holding `members`; return its SHA-256."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def serve_wmt14_archives(origin, monkeypatch, drop: str | None = None) -> None:
    """Point the WMT14 training archives at local .tgz files of the real member layout, checksummed."""
    origin.mkdir()
    served = {}
    for stem, (url, _, member) in sources.WMT14_TRAIN.items():
        members = {f"{member}.{lang}": f"{stem} {lang}\n".encode() for lang in ("en", "de") if lang != drop}
        members["training/europarl-v7.fr-en.fr"] = b"another pair\n"
        archive = origin / url.rsplit("/", 1)[1]
        served[stem] = (archive.as_uri(), make_tgz(archive, members), member)
    monkeypatch.setattr(sources, "WMT14_TRAIN", served)


def test_wmt14_train_download_extracts_the_pair_and_drops_the_archives(tmp_path, monkeypatch):
    serve_wmt14_archives(tmp_path / "origin", monkeypatch)
    corpus = get_corpus(
        DataConfig(name="wmt14", cache_dir=str(tmp_path / "cache"), src_lang="de", tgt_lang="en"), "train"
    )
    assert corpus.src == [f"{stem} de" for stem in sources.WMT14_TRAIN]
    assert corpus.tgt == [f"{stem} en" for stem in sources.WMT14_TRAIN]
    expected = sorted(f"{stem}.{lang}" for stem in sources.WMT14_TRAIN for lang in ("en", "de"))
    assert sorted(p.name for p in (tmp_path / "cache" / "wmt14").iterdir()) == expected


def test_wmt14_archive_without_the_member_is_a_corpus_error(tmp_path, monkeypatch):
    serve_wmt14_archives(tmp_path / "origin", monkeypatch, drop="de")
    with pytest.raises(CorpusError, match=r"training-parallel-europarl-v7\.tgz .* has no member training/europarl-v7"):
        get_corpus(DataConfig(name="wmt14", cache_dir=str(tmp_path / "cache")), "train")


def serve_sacrebleu_test_sets(tmp_path, monkeypatch, error: Exception | None = None) -> list[tuple[str, str]]:
    """Feed sacreBLEU's wmt13 and wmt14/full tiny SGML files in place of its download; record what it fetched.

    sacreBLEU's own code does the rest (MD5 aside): the member paths, the SGML parsing, its cache layout.
    """
    fetched = []
    datasets = {name: sacrebleu.DATASETS[name] for name in ("wmt13", "wmt14/full")}
    for name, dataset in datasets.items():  # its cache under tmp_path, not ~/.sacrebleu
        monkeypatch.setattr(dataset, "_outdir", str(tmp_path / "sacrebleu" / name))
        monkeypatch.setattr(dataset, "_rawdir", str(tmp_path / "sacrebleu" / name / "raw"))

    def download_file(url, dest, extract_to=None, expected_md5=None):
        if error is not None:
            raise error
        fetched.append((url, expected_md5))
        dataset = next(d for d in datasets.values() if url in d.data)
        for lang, member in zip(("en", "de"), dataset.langpairs["en-de"], strict=True):
            segments = "".join(f'<seg id="{i}"> {dataset.name} {lang} {i} </seg>\n' for i in (1, 2, 3))
            path = Path(extract_to) / member
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                f'<srcset setid="x" srclang="any">\n<doc docid="d" genre="news" origlang="en">\n'
                f"{segments}</doc>\n</srcset>\n",
                encoding="utf-8",
            )

    monkeypatch.setattr(sacrebleu.dataset.base, "download_file", download_file)
    return fetched


def test_wmt14_valid_and_test_come_from_sacrebleu_as_plain_files(tmp_path, monkeypatch):
    fetched = serve_sacrebleu_test_sets(tmp_path, monkeypatch)
    cfg = DataConfig(name="wmt14", cache_dir=str(tmp_path / "cache"), src_lang="de", tgt_lang="en")
    test, valid = get_corpus(cfg, "test"), get_corpus(cfg, "valid")
    assert (test.src, test.tgt) == (
        [f"wmt14/full de {i}" for i in (1, 2, 3)],
        [f"wmt14/full en {i}" for i in (1, 2, 3)],
    )
    assert valid.tgt == [f"wmt13 en {i}" for i in (1, 2, 3)]
    directory = tmp_path / "cache" / "wmt14"
    assert (directory / "newstest2014-full.de").read_text(
        encoding="utf-8"
    ) == "wmt14/full de 1\nwmt14/full de 2\nwmt14/full de 3\n"
    assert sorted(p.name for p in directory.iterdir()) == [
        f"{s}.{lang}" for s in WMT14_TEST_STEMS for lang in ("de", "en")
    ]
    # The official URLs, each with its MD5; a second read finds the files and fetches nothing.
    assert [url for url, _ in fetched] == [
        "https://statmt.org/wmt14/test-full.tgz",
        "https://statmt.org/wmt13/test.tgz",
    ]
    assert all(md5 for _, md5 in fetched)
    assert get_corpus(cfg, "test") == test and len(fetched) == 2


def test_wmt14_test_set_download_failure_is_a_corpus_error(tmp_path, monkeypatch):
    serve_sacrebleu_test_sets(tmp_path, monkeypatch, error=urllib.error.URLError("no route to host"))
    with pytest.raises(CorpusError, match="could not download sacreBLEU test set wmt13: .*no route to host.*data.root"):
        get_corpus(DataConfig(name="wmt14", cache_dir=str(tmp_path / "cache")), "valid")
    assert not (tmp_path / "cache" / "wmt14" / "newstest2013.en").exists()
