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

import csv
import io
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser

from nmt.cli import benchmark, evaluate, export, train, translate
from nmt.cli.hydra_config import entry_point
from nmt.config import DataConfig, DecodeConfig, TranslateConfig
from nmt.data.corpus import iter_lines
from nmt.data.sources import get_corpus
from nmt.decode.translator import Translator

pytestmark = pytest.mark.usefixtures("one_thread")

MAINS = {"nmt-train": train.main, "nmt-translate": translate.main, "nmt-evaluate": evaluate.main}
MAINS |= {"nmt-benchmark": benchmark.main, "nmt-export": export.main}
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
    ("nmt-train", ["data.name=nope"], 1, "`data.name` must be one of builtin, multi30k, tatoeba, wmt14, files"),
    ("nmt-train", [*TRAIN, "data=multi30k_en_de", "data.root={shared}", "data.tgt_lang=xx"], 1, "no language 'xx'"),
    ("nmt-train", ["trainer.max_step=5"], 1, "`trainer.max_step` is not an option of nmt-train. Did you mean"),
    ("nmt-train", ["modle=small"], 1, "`modle` is not an option of nmt-train. Did you mean `model`? Valid top-level"),
    ("nmt-train", ["+modle=small"], 1, "`modle` is not an option of nmt-train. Did you mean `model`?"),
    ("nmt-train", ["+optim.learning_rate=0.1"], 1, "`optim.learning_rate` is not an option of nmt-train. Valid keys"),
    ("nmt-train", ["++trainer.max_step=5"], 1, "Did you mean `trainer.max_steps` or"),
    ("nmt-train", [*TRAIN, "data.train=good"], 0, "tokenizer: asked for 1,000 pieces, the corpus gave"),
    ("nmt-train", ["trainer.max_steps=many"], 1, "Value 'many' of type 'str' could not be converted to Integer"),
    # ---- nmt-train: resuming from a checkpoint ----
    ("nmt-train", [*TRAIN, "data.train=good", f"resume={MISSING_CKPT}"], 1, f"{MISSING_CKPT} does not exist"),
    ("nmt-train", [*TRAIN, "data.train=good", "resume={w}/model.trunc"], 1, "{w}/model.trunc is truncated"),
    ("nmt-train", [*TRAIN, "data.train=good", "resume={w}/notes.txt"], 1, "{w}/notes.txt is truncated or not"),
    ("nmt-train", [*TRAIN, "data.train=good", "resume={ckpt}"], 1, "was trained with a different tokenizer"),
    ("nmt-train", [*TRAIN, "data.train=good", "resume={model}"], 1, "is an exported model, not a training"),
    ("nmt-train", [*RUN, "resume={ckpt}", "model.d_ff=100"], 1, "has a different model: d_ff (checkpoint"),
    (
        "nmt-train",
        [*RUN, "resume={ckpt}", "tokenizer.vocab_size=999"],
        1,
        "tokenizer.vocab_size (checkpoint 1000, config 999)",
    ),
    ("nmt-train", [*TRAIN, "data.train=good", "hydra.run.dir={unwritable}/r"], 1, "{unwritable}/r cannot be created"),
    # ---- nmt-translate: the input file ----
    ("nmt-translate", [*TRANSLATE, "input={w}/missing.en"], 1, "{w}/missing.en does not exist"),
    ("nmt-translate", [*TRANSLATE, "input={w}/adir"], 1, "{w}/adir must be a regular file, but is a directory"),
    ("nmt-translate", [*TRANSLATE, "input={w}/nul.en"], 1, "{w}/nul.en, line 2: NUL byte"),
    ("nmt-translate", [*TRANSLATE, "input={w}/latin1.en"], 1, "{w}/latin1.en, line 3: invalid UTF-8"),
    ("nmt-translate", [*TRANSLATE, "input={w}/bom_crlf.en", "output={w}/out/bom_crlf.de"], 0, "sentences/s"),
    ("nmt-translate", [*TRANSLATE, "input={w}/empty.en", "output={w}/out/empty.de"], 0, "0 sentences"),
    ("nmt-translate", [*TRANSLATE, "input={w}/blank.en", "output={w}/out/blank.de"], 0, "translated 0 sentences"),
    # cut into chunks within the training length, never truncated
    ("nmt-translate", [*TRANSLATE, "input={w}/huge.en", "output={w}/out/huge.de"], 0, "1 sentence(s) longer than the"),
    # ---- nmt-translate: the checkpoint, the output, the config ----
    ("nmt-translate", [*TRANSLATE, f"ckpt={MISSING_CKPT}"], 1, f"checkpoint {MISSING_CKPT} does not exist"),
    ("nmt-translate", [*TRANSLATE, "ckpt={w}/adir"], 1, "checkpoint {w}/adir is a directory"),
    ("nmt-translate", [*TRANSLATE, "ckpt={w}/model.trunc"], 1, "checkpoint {w}/model.trunc is truncated"),
    ("nmt-translate", [*TRANSLATE, "ckpt={w}/notes.txt"], 1, "checkpoint {w}/notes.txt is truncated or not"),
    ("nmt-translate", [*TRANSLATE, "input={w}/good.en", "output={w}/good.en"], 1, "`output` must differ from `input`"),
    ("nmt-translate", [*TRANSLATE, "input={w}/good.en", "output={w}/no/out.de"], 1, "{w}/no does not exist"),
    ("nmt-translate", [*TRANSLATE, "input={w}/good.en", "output={unwritable}/o"], 1, "{unwritable} is not writable"),
    ("nmt-translate", [*TRANSLATE, "decode.beam=3"], 1, "`decode.beam` is not an option of nmt-translate. Did you"),
    ("nmt-translate", [*TRANSLATE, "+decode.beam=3"], 1, "Did you mean `decode.beam_size`? Valid keys of `decode`"),
    ("nmt-translate", [*TRANSLATE, "decode.max_len_a=-1"], 1, "`decode.max_len_a` must be >= 0, but is -1.0 instead."),
    ("nmt-translate", [*TRANSLATE, "decode.max_len_b=-50"], 1, "`decode.max_len_b` must be >= 0 with `decode"),
    ("nmt-translate", [*TRANSLATE, "decode.max_len_a=0", "decode.max_len_b=0"], 1, "must be >= 1 with `decode.max_len"),
    ("nmt-translate", ["num_threads=1"], 1, "`ckpt` is required, but is not given: add ckpt=..."),
    ("nmt-translate", ["{model}"], 1, "nmt-translate takes key=value options: did you mean ckpt={model}?"),
    ("nmt-translate", ["-i", "{w}/good.en"], 1, "takes key=value options, not -i: did you mean input={w}/good.en?"),
    ("nmt-translate", ["--ckpt", "{model}"], 1, "takes key=value options, not --ckpt: did you mean ckpt={model}?"),
    ("nmt-translate", ["--input={w}/good.en"], 1, "not --input: did you mean input={w}/good.en?"),
    ("nmt-benchmark", ["repeats=1"], 1, "`ckpt` is required, but is not given"),
    ("nmt-benchmark", ["ckpt={model}", "+beam=3"], 1, "`beam` is not an option of nmt-benchmark."),
    ("nmt-translate", [*TRANSLATE, "decode.beam_size=wide"], 1, "Value 'wide' of type 'str' could not be converted"),
    ("nmt-translate", [*TRANSLATE, "decode.beam_size=0"], 1, "`decode.beam_size` must be >= 1"),
    ("nmt-translate", [*TRANSLATE, "device=gpu"], 1, "`device` must be auto, cpu, cuda or cuda:N, but is 'gpu'"),
    # ---- nmt-export and nmt-translate backend=ctranslate2 ----
    ("nmt-export", ["output={w}/ct2"], 1, "`ckpt` is required, but is not given"),
    ("nmt-export", ["ckpt={model}", "output={w}/ct2", "quantization=int4"], 1, "`quantization` must be one of float32"),
    ("nmt-export", ["ckpt={model}", "output={w}/adir"], 1, "output {w}/adir exists and is not an earlier CTranslate2"),
    ("nmt-export", ["ckpt={w}/model.trunc", "output={w}/ct2"], 1, "checkpoint {w}/model.trunc is truncated"),
    ("nmt-export", ["ckpt={model}", "output={w}/no/ct2"], 1, "{w}/no does not exist"),
    ("nmt-translate", [*TRANSLATE, "backend=ctranslate2"], 1, "not a CTranslate2 model directory: translate it with"),
    ("nmt-translate", [*TRANSLATE, "backend=ctranslate2", "ckpt={w}/adir"], 1, "directory {w}/adir has no nmt_export"),
    ("nmt-translate", [*TRANSLATE, "backend=onnx"], 1, "`backend` must be one of torch, ctranslate2, but is 'onnx'"),
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
    ("nmt-evaluate", [*SCORE_GOOD, "tokenize=penn"], 1, "`tokenize` must be one of"),
    ("nmt-evaluate", [*SCORE_GOOD, "bleu=true"], 1, "`bleu` is not an option of nmt-evaluate."),
    ("nmt-evaluate", [*SCORE_GOOD, "+bleu=true"], 1, "`bleu` is not an option of nmt-evaluate."),
    ("nmt-evaluate", [*SCORE_GOOD], 0, "scored: {w}/good.de against {w}/good.de (40 sentences)"),
    ("nmt-evaluate", [*SCORE_GOOD, "bootstrap=many"], 1, "Value 'many' of type"),
    # ---- nmt-evaluate: translating a named test set with a checkpoint ----
    ("nmt-evaluate", [*EVALUATE, "ckpt={w}/model.trunc"], 1, "checkpoint {w}/model.trunc is truncated"),
    ("nmt-evaluate", [*EVALUATE, "ckpt={w}/notes.txt"], 1, "checkpoint {w}/notes.txt is truncated or not"),
    ("nmt-evaluate", [*EVALUATE, "ckpt={model}", "data=tatoeba_en_zh"], 1, "translates en->de, but the data is en->zh"),
    ("nmt-evaluate", [*EVALUATE, "ckpt={model}", "data=nope"], 1, "Could not find 'data/nope'"),
    ("nmt-evaluate", [*EVALUATE, "ckpt={model}", "split=test2099"], 1, "builtin corpus has no split 'test2099'"),
    ("nmt-evaluate", [*EVALUATE, "ckpt={model}", "data.root={w}"], 1, "`data.root` needs `data=NAME` too"),
    ("nmt-evaluate", [*EVALUATE, "ckpt={model}", "decode=greedy", "split=valid"], 0, "scored: builtin en-de valid ("),
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
    assert "Traceback" not in output  # refusals are one line; a traceback would mean a bug
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


# ---- beyond the table: standard input, library bugs, a checkpoint's own data ----


@pytest.mark.parametrize(
    "bad, message",
    [(b"Gr\xfc\xdfe", "<stdin>, line 2: invalid UTF-8 at byte 2 of the line"), (b"a\x00b", "<stdin>, line 2: NUL")],
    ids=["latin1", "nul"],
)
def test_stdin_is_checked_like_a_file_and_keeps_the_lines_before(bad, message, tiny_run, monkeypatch, capsys):
    model_path = tiny_run[0].model_path
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"the dog sees a cat.\n" + bad + b"\nok\n")))
    status, output = _run(translate.main, [f"ckpt={model_path}", "decode=greedy", "num_threads=1"], monkeypatch, capsys)
    assert status == 1 and message in output, output
    greedy = Translator.from_checkpoint(model_path, DecodeConfig(beam_size=1), "cpu")
    assert output.split("\n")[1:3] == [greedy.translate(["the dog sees a cat."])[0].best, ""]


def test_a_library_bug_keeps_its_traceback(monkeypatch, capsys):
    """Only `UserError`s become one-line messages; a bare ValueError from inside a command is a bug to report."""

    def buggy(cfg: TranslateConfig) -> None:
        raise ValueError("a bug in the library")

    main = entry_point("translate", TranslateConfig, buggy, "A command that fails.\n\nExamples:\n    nmt-translate")
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    status, output = _run(main, ["ckpt=model.pt"], monkeypatch, capsys)
    assert status == 1
    assert "Traceback (most recent call last)" in output and "ValueError: a bug in the library" in output
    assert "error: a bug in the library" not in output


def test_evaluate_scores_a_checkpoint_on_its_own_data(work, spm_cache, monkeypatch, capsys):
    """A `data=files` model, evaluated with `ckpt` alone, is scored on its files' test split, not the built-in one."""
    monkeypatch.chdir(work)
    run_dir = work / "runs" / "files-model"
    args = [*TRAIN, "data.train=good", f"data.cache_dir={spm_cache}", f"hydra.run.dir={run_dir}"]
    status, output = _run(train.main, [a.format(w=work) for a in args], monkeypatch, capsys)
    assert status == 0, output
    status, output = _run(evaluate.main, [*EVALUATE, f"ckpt={run_dir}/model.pt"], monkeypatch, capsys)
    assert status == 0, output
    assert f"scored: files en-de good in {work} (40 sentences)" in output


# ---- the command line itself: --help, Hydra's flags, sweeps ----


@pytest.mark.parametrize("command", sorted(MAINS))
def test_help_says_what_the_command_does_and_lists_its_options(command, monkeypatch, capsys):
    status, output = _run(MAINS[command], ["--help"], monkeypatch, capsys)
    assert status == 0 and "powered by Hydra" not in output
    assert output.split("\n")[1].startswith(f"`{command}`: ")  # the summary line first (after the empty message)
    rows = [line for line in output.split("\n") if line.startswith("  ") and "=" in line.split()[0]]
    assert any(row.split()[0] == "decode.beam_size=5" or command in ("nmt-train", "nmt-export") for row in rows)
    assert all(len(row.split(None, 1)) == 2 for row in rows), "an option without a meaning"
    examples = output.split("Examples:\n")[1].split("\n\n")[0].split("\n")
    assert len(examples) >= 2 and all(command in line for line in examples)


def test_help_lists_only_the_groups_a_command_accepts(monkeypatch, capsys):
    _, translate_help = _run(translate.main, ["-h"], monkeypatch, capsys)
    groups = translate_help.split("Config groups")[1].split("Examples:")[0]
    assert "decode: beam (default), greedy" in groups
    assert not {"model:", "data:", "trainer:", "experiment:"} & set(groups.split())
    _, train_help = _run(train.main, ["--help"], monkeypatch, capsys)
    assert "  experiment: multi30k_bt, multi30k_de_en, " in train_help  # every recipe, sorted
    assert "  model: base, big, small, tiny (default)" in train_help
    assert "model.attention=scaled_dot" in train_help and "scaled_dot | dot | additive" in train_help


def test_hydra_flags_still_work(monkeypatch, capsys):
    status, output = _run(translate.main, ["--cfg", "job", "ckpt=m.pt", "decode=greedy"], monkeypatch, capsys)
    assert status == 0 and "ckpt: m.pt" in output and "beam_size: 1" in output
    status, output = _run(translate.main, ["--hydra-help"], monkeypatch, capsys)
    assert status == 0 and "Hydra" in output


def test_a_sweep_ends_with_a_table_and_pasteable_paths(tmp_path, spm_cache, monkeypatch, capsys):
    """`nmt-train -m`: two jobs of two steps; each job's `translate with` line parses back to its model."""
    monkeypatch.chdir(tmp_path)
    args = ["-m", *RUN[:-1], "model.attention=scaled_dot,dot", "data.builtin_train_size=200"]
    args += [f"hydra.sweep.dir={tmp_path}/sweep", f"data.cache_dir={spm_cache}"]
    status, output = _run(train.main, args, monkeypatch, capsys)
    assert status == 0, output
    pasted = [shlex.split(line.split("|", 1)[1])[1] for line in output.split("\n") if "translate with:" in line]
    values = [OverridesParser.create().parse_override(word).value() for word in pasted]
    assert len(values) == 2 and all(Path(v).is_file() and v.endswith("model.pt") for v in values), pasted
    assert all("'" not in word for word in pasted)  # job directories need no quoting
    table = output.split("sweep of 2 jobs:")[1]
    for value in values:
        assert f"| {Path(value).parent} " in table
    assert "model.attention=scaled_dot" in table and "model.attention=dot" in table


# ---- nmt-train on a machine that lacks what the config asks for; what stdout carries ----


def _filled(args: list[str], work: Path, tiny_run) -> list[str]:
    """The table's `{w}` and `{model}` placeholders filled in, as `test_bad_input` does."""
    return [arg.format(w=work, model=tiny_run[0].model_path) for arg in args]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("args", [["trainer=gpu"], ["trainer=ddp"]], ids=["gpu", "ddp"])
def test_a_gpu_trainer_without_a_gpu_is_refused_before_any_work(
    args, work, spm_cache, tiny_run, monkeypatch, capsys
) -> None:
    run_dir = work / "runs" / "refused"
    status, output = _run(
        train.main,
        _filled([*TRAIN, "data.train=good", *args], work, tiny_run)
        + [f"hydra.run.dir={run_dir}", f"data.cache_dir={spm_cache}"],
        monkeypatch,
        capsys,
    )
    assert status == 1 and "no CUDA GPU is visible to this PyTorch; use trainer=cpu" in _squeeze(output), output
    assert "Traceback" not in output and "data:" not in output
    assert not run_dir.exists()  # the directory Hydra made for the refused run is gone


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: device=cuda is valid here")
def test_translating_on_cuda_without_a_gpu_is_one_line(work, tiny_run, monkeypatch, capsys) -> None:
    args = _filled([*TRANSLATE, "device=cuda", "input={w}/good.en"], work, tiny_run)
    status, output = _run(translate.main, args, monkeypatch, capsys)
    assert status == 1 and "device=cuda was asked for, but" in output and "Traceback" not in output, output


def test_train_stdout_holds_only_results(work, spm_cache, tiny_run, monkeypatch, capsys) -> None:
    """Progress bars and Lightning's messages go to stderr; stdout is the closing summary, line by line."""
    run_dir = work / "runs" / "stdout"
    args = _filled([*TRAIN, "data.train=good", "trainer.progress_bar=true"], work, tiny_run)
    args += [f"hydra.run.dir={run_dir}", f"data.cache_dir={spm_cache}"]
    monkeypatch.setattr(sys, "argv", ["nmt-train", *args])
    train.main()
    out, err = capsys.readouterr()
    assert [line.split(":")[0] for line in out.strip().splitlines()] == [
        "best checkpoint",
        "exported model",
        "throughput",
        "translate with",
    ], out
    assert "\r" not in out and "GPU available" not in out
    assert "data:" in err and "model:" in err


def test_a_resumed_run_keeps_its_history(work, spm_cache, tiny_run, monkeypatch, capsys) -> None:
    """Each invocation's overrides stay in `.hydra/`, and `logs/metrics.csv` holds the rows of the first run and
    the resumed one; resuming the finished run again changes nothing in it."""
    run_dir = work / "runs" / "history"
    common = _filled([*TRAIN, "data.train=good"], work, tiny_run)
    common += [f"hydra.run.dir={run_dir}", f"data.cache_dir={spm_cache}"]
    for extra in (["trainer.max_steps=2"], ["trainer.max_steps=4", "resume=last"]):
        status, output = _run(train.main, [*common, *extra], monkeypatch, capsys)
        assert status == 0, output
    overrides = sorted((run_dir / ".hydra").glob("*/overrides.yaml"))
    assert len(overrides) == 2
    assert "trainer.max_steps=2" in overrides[0].read_text() and "resume=last" in overrides[1].read_text()
    log = run_dir / "logs" / "metrics.csv"
    with log.open(newline="") as f:
        validated = [int(row["step"]) for row in csv.DictReader(f) if row["val/bleu"]]
    assert validated == [1, 3]  # after 2 and after 4 updates
    before = log.read_text()
    status, output = _run(train.main, [*common, "trainer.max_steps=4", "resume=last"], monkeypatch, capsys)
    assert status == 0 and log.read_text() == before, output


def test_translating_a_file_shows_a_bar_with_its_total(work, tiny_run, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    args = _filled([*TRANSLATE, "input={w}/good.en", "progress=true"], work, tiny_run)
    status, output = _run(translate.main, [*args, f"output={work}/out/bar.de"], monkeypatch, capsys)
    assert status == 0 and "40/40" in output, output
