"""Named corpora: the built-in synthetic one, Multi30k, Tatoeba en-zh, WMT14 en-de, or any pair of files.

Downloaded corpora land in `cache_dir/{corpus}/` as `{split}.{lang}.gz`, fetched
atomically and verified by SHA-256. With `root` set, the same layout is read from
that local directory instead (`root/multi30k/train.en.gz`, ...), which is how
machines without internet, and the tests, read `shared/data`.

WMT14 keeps each file under its upstream name, plain text (`.gz` is also read),
one sentence per line, for `{lang}` in en and de:

    wmt14/europarl-v7.de-en.{lang}         train: `training/europarl-v7.de-en.*` of the Europarl v7 archive
    wmt14/commoncrawl.de-en.{lang}         train: `commoncrawl.de-en.*` of the Common Crawl archive
    wmt14/news-commentary-v9.de-en.{lang}  train: `training/news-commentary-v9.de-en.*` of News Commentary v9
    wmt14/newstest2013.{lang}              valid: sacreBLEU's `wmt13` en-de (3,000 lines)
    wmt14/newstest2014-full.{lang}         test: sacreBLEU's `wmt14/full` en-de (3,003 lines)
"""

from __future__ import annotations

import gzip
import hashlib
import random
import shutil
import tarfile
import urllib.request
import zipfile
import zlib
from pathlib import Path

from nmt.atomic import atomic_open
from nmt.config import DataConfig
from nmt.data.builtin import builtin_corpus
from nmt.data.corpus import CorpusError, ParallelText, read_lines, read_parallel

CORPORA = ("builtin", "multi30k", "tatoeba", "wmt14", "files")
BUILTIN_SEED = 0  # fixed, not the training seed: every run sees the same test set

# Multi30k task 1 (Elliott et al. 2016), raw cased text.
MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{split}.{lang}.gz"
MULTI30K_SPLITS = {
    "train": ("en", "de", "fr", "cs"),
    "val": ("en", "de", "fr", "cs"),
    "test2016": ("en", "de", "fr", "cs"),
    "test2017": ("en", "de", "fr"),
}
MULTI30K_SHA256 = {
    "test2016.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
    "test2016.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test2016.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test2016.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "test2017.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
    "test2017.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test2017.fr.gz": "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496",
    "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
}

# Tatoeba pairs as packaged by manythings.org. The zip is rebuilt as Tatoeba grows,
# so it has no stable checksum; the split below is a pure function of its content.
TATOEBA_URL = "https://www.manythings.org/anki/cmn-eng.zip"
TATOEBA_DIR = "tatoeba-en-zh"
TATOEBA_SPLITS = ("train", "dev")
TATOEBA_SEED = 1
TATOEBA_HELD_OUT = 1000  # pairs in dev, and again in an unreleased held-out set

# WMT14 English-German (Bojar et al. 2014) as Vaswani et al. (2017) and fairseq's
# examples/translation/prepare-wmt14en2de.sh --icml17 use it: 4.5M training pairs.
# SHA-256 of the archives as registered for these URLs by TensorFlow Datasets
# (tensorflow_datasets/url_checksums/wmt14_translate.txt: url, size, sha256).
WMT14_LANGS = ("en", "de")
WMT14_TRAIN = {  # file stem in wmt14/: (archive URL, its SHA-256, the member path less `.{lang}`)
    "europarl-v7.de-en": (
        "http://www.statmt.org/wmt13/training-parallel-europarl-v7.tgz",
        "0224c7c710c8a063dfd893b0cc0830202d61f4c75c17eb8e31836103d27d96e7",
        "training/europarl-v7.de-en",
    ),
    "commoncrawl.de-en": (
        "http://www.statmt.org/wmt13/training-parallel-commoncrawl.tgz",
        "c7a74e2ea01ac6c920123108627e35278d4ccb5701e15428ffa34de86fa3a9e5",
        "commoncrawl.de-en",
    ),
    "news-commentary-v9.de-en": (
        "http://www.statmt.org/wmt14/training-parallel-nc-v9.tgz",
        "cb8953f292298e6877ae433c98912b927cb0766b303f4540512ddd286c748485",
        "training/news-commentary-v9.de-en",
    ),
}
# valid and test come through sacreBLEU, which downloads them from statmt.org and checks
# their MD5: (file stem, sacreBLEU test set). `wmt14/full` is the 3,003-line newstest2014
# that papers report; sacreBLEU's `wmt14` is a filtered 2,737-line version of it.
WMT14_TEST_SETS = {"valid": ("newstest2013", "wmt13"), "test": ("newstest2014-full", "wmt14/full")}
WMT14_SPLITS = ("train", *WMT14_TEST_SETS)

_USER_AGENT = "Mozilla/5.0 (compatible; nmt corpus download)"  # manythings.org refuses urllib's default


def describe(cfg: DataConfig, split: str, sentences: int) -> str:
    """What was scored, for a result table: "multi30k en-de test2016 (1,000 sentences)"."""
    where = f" in {cfg.root}" if cfg.name == "files" and cfg.root else ""
    return f"{cfg.name} {cfg.src_lang}-{cfg.tgt_lang} {split}{where} ({sentences:,} sentences)"


def get_corpus(cfg: DataConfig, split: str | list[str]) -> ParallelText:
    """The `split` of corpus `cfg.name` for `cfg.src_lang` -> `cfg.tgt_lang`, read into memory.

    Args:
        cfg: corpus name, languages, `root` (local copy) or `cache_dir` (downloads).
        split: a split name (`train`, `val`, ...), or a path prefix for `files`; a list of them is
            read in order as one corpus.

    Raises:
        CorpusError: unknown corpus, language pair or split (the message lists
            what exists), a failed download, or a malformed file.
    """
    if cfg.name == "builtin":
        return _joined([_builtin(cfg, s) for s in _names(split)])
    return _joined([read_parallel(src, tgt) for src, tgt in split_files(cfg, split)])


def split_files(cfg: DataConfig, split: str | list[str]) -> list[tuple[Path, Path]]:
    """The (source file, target file) pairs that make up `split` of corpus `cfg.name`, in order.

    Downloads what is missing into `cfg.cache_dir` unless `cfg.root` is set. The built-in corpus
    has no files (it is generated): see `get_corpus`.

    Raises:
        CorpusError: as `get_corpus`.
    """
    pairs: list[tuple[Path, Path]] = []
    for name in _names(split):
        if cfg.name == "multi30k":
            pairs.append(_multi30k(cfg, name))
        elif cfg.name == "tatoeba":
            pairs.append(_tatoeba(cfg, name))
        elif cfg.name == "files":
            pairs.append(_files(cfg, name))
        elif cfg.name == "wmt14":
            pairs += _wmt14_files(cfg, name)
        elif cfg.name == "builtin":
            raise CorpusError("the builtin corpus is generated, not read from files; use get_corpus.")
        else:
            raise CorpusError(f"unknown corpus {cfg.name!r}; available corpora: {', '.join(CORPORA)}.")
    return pairs


def _names(split: str | list[str]) -> list[str]:
    """One split name or prefix, or several, as a list."""
    return [split] if isinstance(split, str) else [str(s) for s in split]


def _joined(parts: list[ParallelText]) -> ParallelText:
    """Several parallel texts as one, in order."""
    if len(parts) == 1:
        return parts[0]
    return ParallelText([line for p in parts for line in p.src], [line for p in parts for line in p.tgt])


def _builtin(cfg: DataConfig, split: str) -> ParallelText:
    if (cfg.src_lang, cfg.tgt_lang) != ("en", "de"):
        raise CorpusError(f"builtin has no language pair {cfg.src_lang}-{cfg.tgt_lang}; available pairs: en-de.")
    return builtin_corpus(split, cfg.builtin_train_size if split == "train" else None, BUILTIN_SEED)


def _corpus_dir(cfg: DataConfig, name: str) -> Path:
    """Where corpus `name` lives: under the local `root` when set, else under the download cache."""
    return Path(cfg.root if cfg.root is not None else cfg.cache_dir).expanduser() / name


def _multi30k(cfg: DataConfig, split: str) -> tuple[Path, Path]:
    if split not in MULTI30K_SPLITS:
        raise CorpusError(f"multi30k has no split {split!r}; available splits: {', '.join(MULTI30K_SPLITS)}.")
    langs = MULTI30K_SPLITS[split]
    for lang in (cfg.src_lang, cfg.tgt_lang):
        if lang not in langs:
            raise CorpusError(
                f"multi30k split {split} has no language {lang!r}; available languages: {', '.join(langs)} (any two)."
            )
    directory = _corpus_dir(cfg, "multi30k")
    src, tgt = (directory / f"{split}.{lang}.gz" for lang in (cfg.src_lang, cfg.tgt_lang))
    if cfg.root is None:
        for path in (src, tgt):
            if not path.is_file():
                url = MULTI30K_URL.format(split=split, lang=path.name.split(".")[1])
                download(url, path, MULTI30K_SHA256[path.name])
    return src, tgt


def _tatoeba(cfg: DataConfig, split: str) -> tuple[Path, Path]:
    if {cfg.src_lang, cfg.tgt_lang} != {"en", "zh"}:
        raise CorpusError(f"tatoeba has no language pair {cfg.src_lang}-{cfg.tgt_lang}; available pairs: en-zh, zh-en.")
    if split not in TATOEBA_SPLITS:
        raise CorpusError(f"tatoeba has no split {split!r}; available splits: {', '.join(TATOEBA_SPLITS)}.")
    directory = _corpus_dir(cfg, TATOEBA_DIR)
    src, tgt = (directory / f"{split}.{lang}.gz" for lang in (cfg.src_lang, cfg.tgt_lang))
    if cfg.root is None and not (src.is_file() and tgt.is_file()):
        prepare_tatoeba(directory)
    return src, tgt


def _files(cfg: DataConfig, prefix: str) -> tuple[Path, Path]:
    """`{prefix}.{lang}` or `{prefix}.{lang}.gz`, with `prefix` relative to `root` when set."""
    base = Path(prefix).expanduser()
    if cfg.root is not None:
        base = Path(cfg.root).expanduser() / base
    paths = []
    for lang in (cfg.src_lang, cfg.tgt_lang):
        plain, packed = Path(f"{base}.{lang}"), Path(f"{base}.{lang}.gz")
        if not plain.exists() and not packed.exists():
            raise CorpusError(
                f"no file for language {lang!r} of prefix {prefix!r}: neither {plain} nor {packed} exists."
            )
        paths.append(plain if plain.exists() else packed)
    return paths[0], paths[1]


def _wmt14_files(cfg: DataConfig, split: str) -> list[tuple[Path, Path]]:
    """The (source, target) files of a WMT14 split: one pair per training sub-corpus, or the test set's pair.

    Without `root`, missing files are fetched into `cache_dir/wmt14/` first.
    """
    if {cfg.src_lang, cfg.tgt_lang} != set(WMT14_LANGS):
        raise CorpusError(f"wmt14 has no language pair {cfg.src_lang}-{cfg.tgt_lang}; available pairs: en-de, de-en.")
    if split not in WMT14_SPLITS:
        raise CorpusError(f"wmt14 has no split {split!r}; available splits: {', '.join(WMT14_SPLITS)}.")
    directory = _corpus_dir(cfg, "wmt14")
    stems = list(WMT14_TRAIN) if split == "train" else [WMT14_TEST_SETS[split][0]]
    pairs = []
    for stem in stems:
        if cfg.root is None and not all(_wmt14_path(directory, stem, lang) for lang in WMT14_LANGS):
            _fetch_wmt14(directory, stem)
        pairs.append((_wmt14_file(directory, stem, cfg.src_lang), _wmt14_file(directory, stem, cfg.tgt_lang)))
    return pairs


def _wmt14_path(directory: Path, stem: str, lang: str) -> Path | None:
    """`{stem}.{lang}` in `directory`, else its `.gz`; None when neither exists."""
    plain = directory / f"{stem}.{lang}"
    packed = directory / f"{stem}.{lang}.gz"
    return plain if plain.exists() else packed if packed.exists() else None


def _wmt14_file(directory: Path, stem: str, lang: str) -> Path:
    """As `_wmt14_path`, but a missing file is an error that states the layout expected."""
    path = _wmt14_path(directory, stem, lang)
    if path is None:
        stems = [*WMT14_TRAIN, *(test_stem for test_stem, _ in WMT14_TEST_SETS.values())]
        raise CorpusError(
            f"wmt14: neither {directory / f'{stem}.{lang}'} nor its .gz exists; {directory} must hold "
            f"{', '.join(s + '.{en,de}' for s in stems)} (plain or .gz; see nmt/data/sources.py)."
        )
    return path


def _fetch_wmt14(directory: Path, stem: str) -> None:
    """Write `{stem}.en` and `{stem}.de` into `directory`: out of a statmt.org archive, or through sacreBLEU."""
    if stem in WMT14_TRAIN:
        _extract_wmt14_train(directory, stem)
    else:
        _write_wmt14_test_set(directory, stem, dict(WMT14_TEST_SETS.values())[stem])


def _extract_wmt14_train(directory: Path, stem: str) -> None:
    """Download one training archive, copy this pair's two files out of it in one pass, then delete it.

    The archives (1.6 GB together) also hold other language pairs; only the two members are kept.
    """
    url, sha256, member = WMT14_TRAIN[stem]
    archive = directory / url.rsplit("/", 1)[1]
    if not archive.is_file():  # present only when verified: an earlier run stopped while extracting
        download(url, archive, sha256)
    wanted = {f"{member}.{lang}": directory / f"{stem}.{lang}" for lang in WMT14_LANGS}
    try:
        with tarfile.open(archive, "r|gz") as tar:  # a stream: read once, front to back
            for entry in tar:
                dest = wanted.pop(entry.name.removeprefix("./"), None) if entry.isfile() else None
                if dest is not None:
                    with tar.extractfile(entry) as src, atomic_open(dest, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise CorpusError(
            f"archive {archive} (from {url}) is not a readable .tgz ({e}); delete it to fetch it again."
        ) from e
    if wanted:
        raise CorpusError(f"archive {archive} (from {url}) has no member {' or '.join(wanted)}.")
    archive.unlink()


def _write_wmt14_test_set(directory: Path, stem: str, testset: str) -> None:
    """Fetch a newstest set through sacreBLEU (its official URL, MD5 check and SGML parsing); write it as text.

    sacreBLEU keeps its own copy under `$SACREBLEU` (default `~/.sacrebleu`), the one `sacrebleu -t` scores with.
    """
    import sacrebleu  # here, not at the top: only these test sets need it

    try:
        files = {
            "en": sacrebleu.get_source_file(testset, "en-de"),
            "de": sacrebleu.get_reference_files(testset, "en-de")[0],
        }
    except OSError as e:
        raise CorpusError(
            f"could not download sacreBLEU test set {testset}: {e}. Without internet, set `data.root` to a local copy."
        ) from e
    except SystemExit as e:  # sacreBLEU logs a wrong MD5 (or an SSL failure), then calls sys.exit
        raise CorpusError(f"sacreBLEU could not fetch test set {testset}; its message is above.") from e
    directory.mkdir(parents=True, exist_ok=True)
    for lang, path in files.items():
        lines = read_lines(path)
        with atomic_open(directory / f"{stem}.{lang}", "w") as out:
            out.write("".join(line + "\n" for line in lines))


def download(url: str, dest: Path, sha256: str | None) -> Path:
    """Fetch `url` into `dest` atomically: a partial or corrupt download never appears at `dest`.

    Args:
        url: http(s) or file URL.
        dest: final path; its directory is created.
        sha256: expected hex digest, or None where upstream has no stable one.

    Raises:
        CorpusError: the download failed or its checksum differs.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        with urllib.request.urlopen(request, timeout=60) as response, atomic_open(dest, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            if sha256 is not None and digest.hexdigest() != sha256:  # raising here discards the download
                raise CorpusError(f"checksum mismatch for {url}: expected SHA-256 {sha256}, got {digest.hexdigest()}.")
    except OSError as e:
        raise CorpusError(f"could not download {url}: {e}. Without internet, set `data.root` to a local copy.") from e
    return dest


def _write_gz(path: Path, lines: list[str]) -> None:
    """Write lines as gzip atomically, with a zero timestamp so equal text gives equal bytes."""
    with atomic_open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
        out.write("".join(line + "\n" for line in lines).encode("utf-8"))


def prepare_tatoeba(directory: Path) -> None:
    """Download the Tatoeba cmn-eng zip into `directory` and write its train/dev splits there.

    Pairs are shuffled with a fixed seed; dev takes the first 1,000, the next 1,000
    are held out (not written) and train takes the rest (19,116 for the 21,116-pair
    release copied to `shared/data`).
    """
    archive = directory / "cmn-eng.zip"
    if not archive.is_file():
        download(TATOEBA_URL, archive, None)
    with zipfile.ZipFile(archive) as zf:
        text = zf.read("cmn.txt").decode("utf-8")
    # Each line is "English<TAB>Chinese<TAB>attribution".
    pairs = [line.split("\t")[:2] for line in text.split("\n") if "\t" in line]
    random.Random(TATOEBA_SEED).shuffle(pairs)
    splits = {"dev": pairs[:TATOEBA_HELD_OUT], "train": pairs[2 * TATOEBA_HELD_OUT :]}
    for split, rows in splits.items():
        for column, lang in enumerate(("en", "zh")):
            _write_gz(directory / f"{split}.{lang}.gz", [row[column].strip() for row in rows])
