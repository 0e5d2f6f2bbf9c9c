"""Bad input, table-driven: each case runs a real console script's `main()` and checks exit status and message.

Each row is (command, arguments, expected exit status, text the output must
hold). `{w}` in a row is the directory of prepared files below, `{model}` the
session's exported tiny model, `{ckpt}` its full training checkpoint and
`{unwritable}` a directory this process cannot write to. Commands run in-process
(the same `main` as the installed script: Hydra composition, conversion,
errors), so the table costs seconds rather than one interpreter start per row.

Files in `{w}`, each a parallel corpus `NAME.en` / `NAME.de`:
    good       40 clean pairs
    bom_crlf   the good pairs with a UTF-8 BOM and CRLF line ends (accepted, normalised)
    nul        binary bytes with a NUL on line 2
    latin1     Latin-1 text, invalid UTF-8 on line 3 of the source
    empty      empty files
    blank      only empty and whitespace-only lines
    huge       the good pairs plus one 1 MB line
    short      a source with one line fewer than its target
plus `adir/` (a directory), `notes.txt` (text), `model.trunc` (half a checkpoint).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from nmt.cli import evaluate, train, translate
from nmt.config import DataConfig
from nmt.data.corpus import iter_lines
from nmt.data.sources import get_corpus

pytestmark = pytest.mark.usefixtures("one_thread")

MAINS = {"nmt-train": train.main, "nmt-translate": translate.main, "nmt-evaluate": evaluate.main}
HUGE_LINE = "ein Hund " * 116_000  # 1,044,000 bytes

# nmt-train runs a few steps of the tiny model, so accepted cases finish quickly; most rows read `data=files` in {w}.
RUN = [
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "trainer.progress_bar=false",
    "trainer.num_threads=1",
    "val_samples=0",
    "hydra.run.dir={w}/runs/${{now:%H-%M-%S-%f}}",
]
TRAIN = ["data=files", "data.root={w}", "data.valid=good", "data.test=good", *RUN]
TRANSLATE = ["ckpt={model}", "decode=greedy", "num_threads=1", "progress=false"]
EVALUATE = ["num_threads=1", "metrics=[bleu]"]
SCORE_GOOD = [*EVALUATE, "hyp={w}/good.de", "ref={w}/good.de"]
MISSING_CKPT = "{w}/no-such-model.pt"

CASES = [
    # ---- nmt-train: the training corpus ----
    ("nmt-train", [*TRAIN, "data.train=missing"], 1, "neither {w}/missing.en nor {w}/missing.en.gz exists"),
    ("nmt-train", [*TRAIN, "data.train=adir"], 1, "{w}/adir.en must be a regular file, but is a directory"),
    ("nmt-train", [*TRAIN, "data.train=nul"], 1, "{w}/nul.en, line 2: NUL byte"),
    ("nmt-train", [*TRAIN, "data.train=latin1"], 1, "{w}/latin1.en, line 3: invalid UTF-8"),
    ("nmt-train", [*TRAIN, "data.train=bom_crlf"], 0, "exported model:"),
    ("nmt-train", [*TRAIN, "data.train=short"], 1, "{w}/short.en has 39 lines but {w}/short.de has 40"),
    ("nmt-train", [*TRAIN, "data.train=empty"], 1, "{w}/empty.en is empty"),
    ("nmt-train", [*TRAIN, "data.train=blank"], 1, "{w}/blank.en has only empty lines"),
    ("nmt-train", [*TRAIN, "data.train=huge"], 0, "kept 40 of 41 pairs"),  # the 1 MB pair is filtered out
    # ---- nmt-train: corpus names, config keys and types ----
    ("nmt-train", ["data=nope"], 1, "Could not find 'data/nope'"),
    ("nmt-train", ["data.name=nope"], 1, "`data.name` must be one of builtin, multi30k, tatoeba, files"),
    ("nmt-train", [*TRAIN, "data=multi30k_en_de", "data.root={shared}", "data.tgt_lang=xx"], 1, "no language 'xx'"),
    ("nmt-train", ["trainer.max_step=5"], 1, "Key 'max_step' not in 'TrainerConfig'"),
    ("nmt-train", ["trainer.max_steps=many"], 1, "Value 'many' of type 'str' could not be converted to Integer"),
    # ---- nmt-train: resuming from a checkpoint ----
    ("nmt-train", [*TRAIN, "data.train=good", f"resume={MISSING_CKPT}"], 1, f"{MISSING_CKPT} does not exist"),
    ("nmt-train", [*TRAIN, "data.train=good", "resume={w}/model.trunc"], 1, "{w}/model.trunc is truncated"),
    ("nmt-train", [*TRAIN, "data.train=good", "resume={w}/notes.txt"], 1, "{w}/notes.txt is truncated or not"),
    ("nmt-train", [*TRAIN, "data.train=good", "resume={ckpt}"], 1, "was trained with a different tokenizer"),
    ("nmt-train", [*TRAIN, "data.train=good", "resume={model}"], 1, "is an exported model, not a training"),
    ("nmt-train", [*RUN, "resume={ckpt}", "model.d_ff=100"], 1, "has a different model: d_ff (checkpoint"),
    ("nmt-train", [*TRAIN, "data.train=good", "hydra.run.dir={unwritable}/r"], 1, "'{unwritable}/r'"),  # Hydra's error
    # ---- nmt-translate: the input file ----
    ("nmt-translate", [*TRANSLATE, "input={w}/missing.en"], 1, "{w}/missing.en does not exist"),
    ("nmt-translate", [*TRANSLATE, "input={w}/adir"], 1, "{w}/adir must be a regular file, but is a directory"),
    ("nmt-translate", [*TRANSLATE, "input={w}/nul.en"], 1, "{w}/nul.en, line 2: NUL byte"),
    ("nmt-translate", [*TRANSLATE, "input={w}/latin1.en"], 1, "{w}/latin1.en, line 3: invalid UTF-8"),
    ("nmt-translate", [*TRANSLATE, "input={w}/bom_crlf.en", "output={w}/out/bom_crlf.de"], 0, "sentences/s"),
    ("nmt-translate", [*TRANSLATE, "input={w}/empty.en", "output={w}/out/empty.de"], 0, "0 sentences"),
    ("nmt-translate", [*TRANSLATE, "input={w}/blank.en", "output={w}/out/blank.de"], 0, "4 sentences"),
    ("nmt-translate", [*TRANSLATE, "input={w}/huge.en", "output={w}/out/huge.de"], 0, "1 input line(s) longer than"),
    # ---- nmt-translate: the checkpoint, the output, the config ----
    ("nmt-translate", [*TRANSLATE, f"ckpt={MISSING_CKPT}"], 1, f"checkpoint {MISSING_CKPT} does not exist"),
    ("nmt-translate", [*TRANSLATE, "ckpt={w}/adir"], 1, "checkpoint {w}/adir is a directory"),
    ("nmt-translate", [*TRANSLATE, "ckpt={w}/model.trunc"], 1, "checkpoint {w}/model.trunc is truncated"),
    ("nmt-translate", [*TRANSLATE, "ckpt={w}/notes.txt"], 1, "checkpoint {w}/notes.txt is truncated or not"),
    ("nmt-translate", [*TRANSLATE, "input={w}/good.en", "output={w}/good.en"], 1, "`output` must differ from `input`"),
    ("nmt-translate", [*TRANSLATE, "input={w}/good.en", "output={w}/no/out.de"], 1, "{w}/no does not exist"),
    ("nmt-translate", [*TRANSLATE, "input={w}/good.en", "output={unwritable}/o"], 1, "{unwritable} is not writable"),
    ("nmt-translate", [*TRANSLATE, "decode.beam=3"], 1, "Key 'beam' not in 'DecodeConfig'"),
    ("nmt-translate", [*TRANSLATE, "decode.beam_size=wide"], 1, "Value 'wide' of type 'str' could not be converted"),
    ("nmt-translate", [*TRANSLATE, "decode.beam_size=0"], 1, "`decode.beam_size` must be >= 1"),
    # ---- nmt-evaluate: hypothesis and reference files ----
    ("nmt-evaluate", [*EVALUATE, "hyp={w}/missing.de", "ref={w}/good.de"], 1, "{w}/missing.de does not exist"),
    ("nmt-evaluate", [*EVALUATE, "hyp={w}/good.de", "ref={w}/adir"], 1, "{w}/adir must be a regular file"),
    ("nmt-evaluate", [*EVALUATE, "hyp={w}/nul.de", "ref={w}/good.de"], 1, "{w}/nul.de, line 2: NUL byte"),
    ("nmt-evaluate", [*EVALUATE, "hyp={w}/good.de", "ref={w}/latin1.de"], 1, "{w}/latin1.de, line 3: invalid UTF-8"),
    ("nmt-evaluate", [*EVALUATE, "hyp={w}/bom_crlf.de", "ref={w}/good.de"], 0, "| BLEU | 100.00 |"),
    ("nmt-evaluate", [*EVALUATE, "hyp={w}/good.de", "ref={w}/short.en"], 1, "has 40 lines but {w}/short.en has 39"),
    ("nmt-evaluate", [*EVALUATE, "hyp={w}/empty.de", "ref={w}/good.de"], 1, "{w}/empty.de is empty"),
    ("nmt-evaluate", [*EVALUATE, "hyp={w}/blank.de", "ref={w}/blank.en"], 1, "{w}/blank.en has only empty lines"),
    ("nmt-evaluate", [*EVALUATE, "hyp={w}/huge.de", "ref={w}/huge.en"], 0, "| BLEU |"),
    ("nmt-evaluate", [*SCORE_GOOD, "tokenize=moses"], 1, "`tokenize` must be one of"),
    ("nmt-evaluate", [*SCORE_GOOD, "bleu=true"], 1, "Key 'bleu' not in 'EvaluateConfig'"),
    ("nmt-evaluate", [*SCORE_GOOD, "bootstrap=many"], 1, "Value 'many' of type"),
    # ---- nmt-evaluate: translating a named test set with a checkpoint ----
    ("nmt-evaluate", [*EVALUATE, "ckpt={w}/model.trunc"], 1, "checkpoint {w}/model.trunc is truncated"),
    ("nmt-evaluate", [*EVALUATE, "ckpt={w}/notes.txt"], 1, "checkpoint {w}/notes.txt is truncated or not"),
    ("nmt-evaluate", [*EVALUATE, "ckpt={model}", "data=tatoeba_en_zh"], 1, "translates en->de, but the data is en->zh"),
    ("nmt-evaluate", [*EVALUATE, "ckpt={model}", "data=nope"], 1, "Could not find 'data/nope'"),
    ("nmt-evaluate", [*EVALUATE, "ckpt={model}", "split=test2099"], 1, "builtin corpus has no split 'test2099'"),
    ("nmt-evaluate", [*EVALUATE, "ckpt={model}", "output={w}/no/hyp.de"], 1, "{w}/no does not exist"),
    ("nmt-evaluate", [*EVALUATE, "ckpt={model}", "output={unwritable}/hyp"], 1, "{unwritable} is not writable"),
]


def _case_id(case: tuple) -> str:
    command, args, status, _ = case
    return f"{command[4:]}-{status}-" + "-".join(a for a in args if a not in TRAIN + TRANSLATE + SCORE_GOOD)


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_run) -> Path:
    """The prepared files listed in the module docstring."""
    w = tmp_path_factory.mktemp("bad-input")
    corpus = get_corpus(DataConfig(), "valid")
    src, tgt = corpus.src[:40], corpus.tgt[:40]

    def pair(name: str, en: bytes, de: bytes) -> None:
        (w / f"{name}.en").write_bytes(en)
        (w / f"{name}.de").write_bytes(de)

    def text(lines: list[str], end: str = "\n") -> bytes:
        return "".join(line + end for line in lines).encode()

    pair("good", text(src), text(tgt))
    pair("bom_crlf", b"\xef\xbb\xbf" + text(src, "\r\n"), b"\xef\xbb\xbf" + text(tgt, "\r\n"))
    pair("nul", b"a dog runs.\n\x89PNG\x1a\x00\x00\x00IHDR\n", b"ein Hund rennt.\n\x00\x01\x02\n")
    pair("latin1", "a dog.\nthe cat.\nGrüße\n".encode("latin-1"), "ein Hund.\ndie Katze.\nGrüße\n".encode("latin-1"))
    pair("empty", b"", b"")
    pair("blank", b"\n  \n\t\n\n", b"\n\n \n\n")
    pair("huge", text([*src, HUGE_LINE]), text([*tgt, HUGE_LINE]))
    pair("short", text(src[:-1]), text(tgt))
    (w / "adir").mkdir()
    (w / "adir.en").mkdir()
    (w / "adir.de").mkdir()
    (w / "notes.txt").write_text("This is not a checkpoint.\n")
    (w / "out").mkdir()
    model = Path(tiny_run[0].model_path).read_bytes()
    (w / "model.trunc").write_bytes(model[: len(model) // 2])
    return w


@pytest.fixture(scope="module")
def unwritable(tmp_path_factory) -> Path:
    """A directory this process cannot create files in: read-only mode, or for root a read-only /sys."""
    locked = tmp_path_factory.mktemp("locked")
    locked.chmod(0o500)
    for candidate in (locked, Path("/sys")):
        try:
            (candidate / "probe").touch()
        except OSError:
            return candidate
        (candidate / "probe").unlink()
    pytest.fail("no directory refuses writes here (root with a writable /sys?): cannot test unwritable outputs.")


def _run(main, args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """Run a console script's `main` with `args`; return its exit status and all it printed."""
    monkeypatch.setattr(sys, "argv", ["nmt", *args])
    status, message = 0, ""
    try:
        main()
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else 1
        message = exit.code if isinstance(exit.code, str) else ""
    out, err = capsys.readouterr()
    return status, "\n".join((message, out, err))


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input(case, work, shared_data, spm_cache, tiny_run, request, monkeypatch, capsys):
    command, args, status, expected = case
    monkeypatch.chdir(work)
    result, _ = tiny_run
    last = Path(result.best_checkpoint).parent / "last.ckpt"
    values = {"w": work, "shared": shared_data, "model": result.model_path, "ckpt": last}
    if "{unwritable}" in " ".join(args):
        values["unwritable"] = request.getfixturevalue("unwritable")
    args = [arg.format(**values) for arg in args]
    if command == "nmt-train":
        args.append(f"data.cache_dir={spm_cache}")
    inputs = _snapshot(work)
    got_status, output = _run(MAINS[command], args, monkeypatch, capsys)
    assert got_status == status, output
    assert _squeeze(expected.format(**values)) in _squeeze(output), output
    assert _snapshot(work) == inputs  # no input touched, no stray file left
    if command == "nmt-translate" and status == 0:  # accepted input: one output line per input line
        given = dict(arg.split("=", 1) for arg in args)
        lines = sum(1 for _ in iter_lines(given["input"]))
        assert Path(given["output"]).read_text(encoding="utf-8").count("\n") == lines


def _squeeze(text: str) -> str:
    """Runs of whitespace as one space: messages may wrap."""
    return re.sub(r"\s+", " ", text)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of every file under `root`, except the `runs/` and `out/` that commands may write."""
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if rel.split("/")[0] not in ("runs", "out"):
                stat = path.stat()
                files[rel] = (stat.st_size, stat.st_mtime_ns)
    return files
