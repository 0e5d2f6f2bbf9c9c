"""Named corpora: the built-in synthetic one, Multi30k, Tatoeba en-zh, or any pair of files.

Downloaded corpora land in `cache_dir/{corpus}/` as `{split}.{lang}.gz`, fetched
atomically and verified by SHA-256. With `root` set, the same layout is read from
that local directory instead (`root/multi30k/train.en.gz`, ...), which is how
machines without internet, and the tests, read `shared/data`.
"""

from __future__ import annotations

import gzip
import hashlib
import random
import urllib.request
import zipfile
from pathlib import Path

from nmt.atomic import atomic_open
from nmt.checkpoint import load_checkpoint
from nmt.config import DataConfig
from nmt.data.builtin import builtin_corpus
from nmt.data.corpus import CorpusError, ParallelText, read_parallel

CORPORA = ("builtin", "multi30k", "tatoeba", "files")
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

_USER_AGENT = "Mozilla/5.0 (compatible; nmt corpus download)"  # manythings.org refuses urllib's default


def trained_on(ckpt: str | Path) -> DataConfig:
    """The data config a checkpoint was trained with, so that it is scored on its own test set by default.

    Raises:
        CheckpointError: `ckpt` is not a usable checkpoint.
        CorpusError: its training config holds no usable data section.
    """
    train_config = load_checkpoint(ckpt).train_config
    try:
        return DataConfig(**train_config["data"])
    except (KeyError, TypeError) as err:  # an older or foreign training config
        raise CorpusError(f"checkpoint {ckpt} does not record its training data; choose one with data=NAME.") from err


def describe(cfg: DataConfig, split: str, sentences: int) -> str:
    """What was scored, for a result table: "multi30k en-de test2016 (1,000 sentences)"."""
    where = f" in {cfg.root}" if cfg.name == "files" and cfg.root else ""
    return f"{cfg.name} {cfg.src_lang}-{cfg.tgt_lang} {split}{where} ({sentences:,} sentences)"


def get_corpus(cfg: DataConfig, split: str) -> ParallelText:
    """The `split` of corpus `cfg.name` for `cfg.src_lang` -> `cfg.tgt_lang`.

    Args:
        cfg: corpus name, languages, `root` (local copy) or `cache_dir` (downloads).
        split: a split name (`train`, `val`, ...), or a path prefix for `files`.

    Raises:
        CorpusError: unknown corpus, language pair or split (the message lists
            what exists), a failed download, or a malformed file.
    """
    if cfg.name == "builtin":
        return _builtin(cfg, split)
    if cfg.name == "multi30k":
        return _multi30k(cfg, split)
    if cfg.name == "tatoeba":
        return _tatoeba(cfg, split)
    if cfg.name == "files":
        return _files(cfg, split)
    raise CorpusError(f"unknown corpus {cfg.name!r}; available corpora: {', '.join(CORPORA)}.")


def _builtin(cfg: DataConfig, split: str) -> ParallelText:
    if (cfg.src_lang, cfg.tgt_lang) != ("en", "de"):
        raise CorpusError(f"builtin has no language pair {cfg.src_lang}-{cfg.tgt_lang}; available pairs: en-de.")
    return builtin_corpus(split, cfg.builtin_train_size if split == "train" else None, BUILTIN_SEED)


def _corpus_dir(cfg: DataConfig, name: str) -> Path:
    """Where corpus `name` lives: under the local `root` when set, else under the download cache."""
    return Path(cfg.root if cfg.root is not None else cfg.cache_dir).expanduser() / name


def _multi30k(cfg: DataConfig, split: str) -> ParallelText:
    if split not in MULTI30K_SPLITS:
        raise CorpusError(f"multi30k has no split {split!r}; available splits: {', '.join(MULTI30K_SPLITS)}.")
    langs = MULTI30K_SPLITS[split]
    for lang in (cfg.src_lang, cfg.tgt_lang):
        if lang not in langs:
            raise CorpusError(
                f"multi30k split {split} has no language {lang!r}; available languages: {', '.join(langs)} (any two)."
            )
    directory = _corpus_dir(cfg, "multi30k")
    paths = [directory / f"{split}.{lang}.gz" for lang in (cfg.src_lang, cfg.tgt_lang)]
    if cfg.root is None:
        for path in paths:
            if not path.is_file():
                url = MULTI30K_URL.format(split=split, lang=path.name.split(".")[1])
                download(url, path, MULTI30K_SHA256[path.name])
    return read_parallel(*paths)


def _tatoeba(cfg: DataConfig, split: str) -> ParallelText:
    if {cfg.src_lang, cfg.tgt_lang} != {"en", "zh"}:
        raise CorpusError(f"tatoeba has no language pair {cfg.src_lang}-{cfg.tgt_lang}; available pairs: en-zh, zh-en.")
    if split not in TATOEBA_SPLITS:
        raise CorpusError(f"tatoeba has no split {split!r}; available splits: {', '.join(TATOEBA_SPLITS)}.")
    directory = _corpus_dir(cfg, TATOEBA_DIR)
    paths = [directory / f"{split}.{lang}.gz" for lang in (cfg.src_lang, cfg.tgt_lang)]
    if cfg.root is None and not all(path.is_file() for path in paths):
        prepare_tatoeba(directory)
    return read_parallel(*paths)


def _files(cfg: DataConfig, prefix: str) -> ParallelText:
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
    return read_parallel(*paths)


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
