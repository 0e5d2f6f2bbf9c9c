"""`nmt-translate` and `nmt-evaluate`: a few real subprocess runs of the console scripts, the rest in-process.

Subprocesses check what only a real run shows (Hydra overrides, stdout vs stderr,
files left behind); in-process `run(...)` calls check refusals, atomic output and
scores against sacreBLEU, since each subprocess spends seconds on imports.
"""

import json
import os
import shlex
import stat
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import sacrebleu
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser

from nmt.atomic import OutputPathError, atomic_write_bytes
from nmt.cli import evaluate, translate
from nmt.cli.usage import pasteable
from nmt.config import DataConfig, DecodeConfig, EvaluateConfig, TranslateConfig
from nmt.data.corpus import CorpusError
from nmt.data.sources import get_corpus
from nmt.decode.translator import Translation, Translator

FOREIGN = ["你好，世界。", "Grüße aus Köln!", "🙂🚀🎉", "Ωμέγα ↔ ∑"]
GREEDY = DecodeConfig(beam_size=1)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def test_set():
    return get_corpus(DataConfig(), "test")


def _script(name: str) -> str:
    """The console script installed beside this interpreter (the same environment as the tests)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def _cli(name: str, args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [_script(name), *args, "num_threads=1"], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def _best(model_path: Path, decode: DecodeConfig, lines: list[str]) -> list[str]:
    return [t.best for t in Translator.from_checkpoint(model_path, decode, device="cpu").translate(lines)]


# ---- nmt-translate, real subprocesses ----


@pytest.fixture(scope="module")
def file_run(model_path, test_set, tmp_path_factory):
    """One `nmt-translate input=... output=... decode=greedy` run over an old output, in a fresh directory.

    The input holds test sentences on which greedy and beam search disagree, so the
    output shows which search ran, plus empty, whitespace-only and foreign lines.
    """
    pool = test_set.src[:200] + FOREIGN
    greedy, beam = _best(model_path, GREEDY, pool), _best(model_path, DecodeConfig(beam_size=5), pool)
    differ = [line for line, g, b in zip(pool, greedy, beam, strict=True) if g != b][:4]
    assert differ, "greedy and beam search agree on every line: the test cannot tell them apart"
    lines = [differ[0], "", test_set.src[0], "   ", *FOREIGN, *differ[1:], ""]
    work = tmp_path_factory.mktemp("translate-file")
    (work / "input.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (work / "out.txt").write_text("old output\n")
    args = [f"ckpt={model_path}", "input=input.txt", "output=out.txt", "decode=greedy"]
    return work, _cli("nmt-translate", args, work), lines


def test_file_mode_writes_greedy_output_atomically(file_run, model_path):
    work, proc, lines = file_run
    out = (work / "out.txt").read_text(encoding="utf-8").split("\n")
    assert out[-1] == "" and out[:-1] == _best(model_path, GREEDY, lines)
    assert not [p.name for p in work.iterdir() if p.name.endswith(".tmp")]
    assert "sentences/s" in proc.stderr and proc.stdout == ""


def test_file_mode_leaves_no_other_files(file_run):
    work, _, _ = file_run
    assert sorted(p.name for p in work.iterdir()) == ["input.txt", "out.txt"]


def test_stdin_to_stdout_keeps_every_line(model_path, test_set, tmp_path):
    lines = [test_set.src[0], "", test_set.src[1], "  \t ", FOREIGN[0], FOREIGN[2], "", test_set.src[2]]
    proc = _cli("nmt-translate", [f"ckpt={model_path}"], tmp_path, stdin="\n".join(lines) + "\n")
    out = proc.stdout.split("\n")
    assert out[-1] == "" and len(out) - 1 == len(lines)
    assert out[:-1] == _best(model_path, DecodeConfig(), lines)  # conf/decode/beam.yaml == DecodeConfig()
    assert "sentences/s" in proc.stderr and "sentences/s" not in proc.stdout


def test_nbest_lines_are_sorted_and_distinct(model_path, test_set, tmp_path):
    lines = [test_set.src[3], "", test_set.src[4]]
    args = [f"ckpt={model_path}", "decode.beam_size=3", "decode.n_best=3"]
    proc = _cli("nmt-translate", args, tmp_path, stdin="\n".join(lines) + "\n")
    rows = [line.split(" ||| ") for line in proc.stdout.splitlines()]
    assert all(len(row) == 3 for row in rows), proc.stdout
    assert sorted({int(i) for i, _, _ in rows}) == [0, 1, 2]
    assert [int(i) for i, _, _ in rows] == sorted(int(i) for i, _, _ in rows)  # grouped by input, in order
    best = _best(model_path, DecodeConfig(beam_size=3), lines)
    for index in (0, 2):
        texts = [text for i, text, _ in rows if int(i) == index]
        scores = [float(score) for i, _, score in rows if int(i) == index]
        assert len(texts) == 3 and len(set(texts)) == 3
        assert scores == sorted(scores, reverse=True)
        assert texts[0] == best[index]
    assert [text for i, text, _ in rows if int(i) == 1] == [""]


# ---- nmt-translate, in-process ----


def _run_translate(model_path: Path, **fields) -> None:
    translate.run(TranslateConfig(ckpt=str(model_path), decode=GREEDY, num_threads=1, progress=False, **fields))


@pytest.mark.parametrize("spelling", ["same", "aliased"])
def test_output_equal_to_input_is_refused(model_path, tmp_path, spelling):
    (tmp_path / "sub").mkdir()
    src = tmp_path / "in.txt"
    src.write_text("the dog sees a cat.\n")
    output = src if spelling == "same" else tmp_path / "sub" / ".." / "in.txt"
    with pytest.raises(ValueError, match="is the input file"):
        _run_translate(model_path, input=str(src), output=str(output))
    assert src.read_text() == "the dog sees a cat.\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "sub"]


def test_output_into_missing_directory_names_it(model_path, tmp_path):
    (tmp_path / "in.txt").write_text("the dog sees a cat.\n")
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(OutputPathError, match="does not exist") as err:
        _run_translate(model_path, input=str(tmp_path / "in.txt"), output=str(missing / "out.txt"))
    assert str(missing) in str(err.value)
    assert not (tmp_path / "no").exists()


def test_failure_mid_file_keeps_old_output(model_path, tmp_path, monkeypatch):
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("the dog sees a cat.\n" * 2500)  # two chunks of `translate_stream`
    out.write_text("old output\n")
    listings = []

    def translate_once(self, lines):
        listings.append(sorted(p.name for p in tmp_path.iterdir()))
        if len(listings) > 1:
            raise RuntimeError("simulated failure in the second chunk")
        return [Translation([line], [0.0], 1) for line in lines]

    monkeypatch.setattr(Translator, "translate", translate_once)
    with pytest.raises(RuntimeError, match="simulated"):
        _run_translate(model_path, input=str(src), output=str(out))
    assert any(name.endswith(".tmp") for name in listings[1])  # the first chunk went to a temporary file
    assert out.read_text() == "old output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]


@pytest.mark.parametrize("text", ["\n\n  \n\n", ""], ids=["empty-lines", "empty-file"])
def test_empty_input_gives_empty_lines(model_path, tmp_path, text):
    (tmp_path / "in.txt").write_text(text)
    _run_translate(model_path, input=str(tmp_path / "in.txt"), output=str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == text.replace(" ", "")


def test_bad_input_line_names_file_and_line_and_keeps_old_output(model_path, tmp_path):
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_bytes(b"the dog sees a cat.\n\nGr\xfc\xdfe\n")  # Latin-1, not UTF-8, on line 3
    out.write_text("old output\n")
    with pytest.raises(CorpusError, match="line 3") as err:
        _run_translate(model_path, input=str(src), output=str(out))
    assert str(src) in str(err.value)
    assert out.read_text() == "old output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]


def _peak_python_memory(model_path: Path, work: Path, lines: list[str], buffer_size: int) -> int:
    """Peak bytes of Python objects (tracemalloc) while `nmt-translate` turns `lines` into a file."""
    src = work / f"in-{len(lines)}-{buffer_size}.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tracemalloc.start()
    try:
        _run_translate(model_path, input=str(src), output=str(work / "out.txt"), buffer_size=buffer_size)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_translating_a_file_streams_in_flat_memory(model_path, test_set, tmp_path):
    """Ten times the lines, (almost) the same peak: only `buffer_size` lines are held at a time.

    tracemalloc counts Python objects (lines, token ids, outputs), which is what
    grows with the file; tensors live one batch at a time either way. Holding the
    whole file (the control, `buffer_size` = file length) shows what a file of this
    size costs; streaming it may cost at most a tenth of that.
    """
    lines = [test_set.src[i % len(test_set)] for i in range(2000)]
    small = _peak_python_memory(model_path, tmp_path, lines[:200], buffer_size=100)
    large = _peak_python_memory(model_path, tmp_path, lines, buffer_size=100)
    whole = _peak_python_memory(model_path, tmp_path, lines, buffer_size=len(lines))
    assert whole - small > 100_000, (small, whole)  # the control: a held file of 2,000 lines is visible
    assert large - small < 0.1 * (whole - small), (small, large, whole)


def test_num_threads_is_honoured_without_sched_getaffinity(model_path, tmp_path, monkeypatch):
    requested = []
    monkeypatch.delattr("os.sched_getaffinity", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 7)
    monkeypatch.setattr(torch, "set_num_threads", requested.append)
    (tmp_path / "in.txt").write_text("the dog sees a cat.\n")
    _run_translate(model_path, input=str(tmp_path / "in.txt"), output=str(tmp_path / "out.txt"))
    assert requested == [1]


# ---- nmt-evaluate ----


@pytest.fixture(scope="module")
def scored_files(test_set, tmp_path_factory) -> dict[str, Path]:
    """A reference, a second reference, a good system and a worse baseline, 100 lines each."""
    work = tmp_path_factory.mktemp("evaluate")
    ref = test_set.tgt[:100]
    files = {
        "ref": ref,
        "ref2": [line.replace("Jetzt", "Nun") for line in ref],
        "hyp": [line if i % 4 else line.replace("neue", "alte") for i, line in enumerate(ref)],
        "baseline": [" ".join(line.split()[:-1]) if i % 2 else line for i, line in enumerate(ref)],
    }
    for name, lines in files.items():
        (work / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {name: work / f"{name}.txt" for name in files}


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _evaluate(capsys, **fields) -> tuple[dict, str]:
    result = evaluate.run(EvaluateConfig(num_threads=1, **fields))
    return result, capsys.readouterr().out


def test_evaluate_equals_sacrebleu(scored_files, capsys):
    f = scored_files
    result, out = _evaluate(capsys, hyp=str(f["hyp"]), ref=str(f["ref"]), metrics=["bleu", "chrf"])
    bleu, chrf = result["scores"]
    assert bleu["value"] == pytest.approx(sacrebleu.corpus_bleu(_lines(f["hyp"]), [_lines(f["ref"])]).score)
    assert chrf["value"] == pytest.approx(sacrebleu.corpus_chrf(_lines(f["hyp"]), [_lines(f["ref"])]).score)
    assert 0 < bleu["value"] < 100 and "nrefs:1" in bleu["signature"]
    assert "BLEU" in out and "chrF2" in out


def test_evaluate_two_references(scored_files, capsys):
    f = scored_files
    result, _ = _evaluate(capsys, hyp=str(f["hyp"]), ref=[str(f["ref"]), str(f["ref2"])], metrics=["bleu"])
    expected = sacrebleu.corpus_bleu(_lines(f["hyp"]), [_lines(f["ref"]), _lines(f["ref2"])]).score
    assert result["scores"][0]["value"] == pytest.approx(expected)
    assert "nrefs:2" in result["scores"][0]["signature"]


def test_evaluate_json_output(scored_files, capsys):
    f = scored_files
    result, out = _evaluate(capsys, hyp=str(f["hyp"]), ref=str(f["ref"]), json=True)
    printed = json.loads(out)
    assert {"schema", "scores"} <= set(printed) and printed == result
    assert [s["metric"] for s in printed["scores"]] == ["BLEU", "chrF2", "TER"]


def test_evaluate_baseline_gives_p_values(scored_files, capsys):
    f = scored_files
    common = {"hyp": str(f["hyp"]), "ref": str(f["ref"]), "metrics": ["bleu", "chrf"]}
    result, out = _evaluate(capsys, baseline=str(f["baseline"]), **common)
    for comparison in result["comparisons"]:
        assert comparison["system"] > comparison["baseline"] and comparison["p_value"] < 0.05
    assert len(result["comparisons"]) == 2 and "p_value" in out
    same, _ = _evaluate(capsys, baseline=str(f["hyp"]), **common)
    assert [c["p_value"] for c in same["comparisons"]] == [1.0, 1.0]


def test_evaluate_checkpoint_on_test_split(model_path, test_set, tmp_path, capsys):
    output = tmp_path / "test.hyp"
    result, _ = _evaluate(
        capsys, ckpt=str(model_path), split="test", decode=GREEDY, metrics=["bleu"], output=str(output)
    )
    assert result["scores"][0]["value"] > 50
    assert len(_lines(output)) == len(test_set)


def test_evaluate_json_stdout_is_only_json(scored_files, tmp_path):
    f = scored_files
    args = [f"hyp={f['hyp']}", f"ref={f['ref']}", f"baseline={f['baseline']}", "metrics=[bleu]", "json=true"]
    proc = _cli("nmt-evaluate", args, tmp_path)
    assert json.loads(proc.stdout)["comparisons"][0]["p_value"] < 0.05


# ---- file permissions and commands that paste back ----


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_get_the_permissions_of_a_plain_open(model_path, tmp_path, umask_022):
    (tmp_path / "in.txt").write_text("the dog sees a cat.\n")
    _run_translate(model_path, input=str(tmp_path / "in.txt"), output=str(tmp_path / "out.txt"))
    atomic_write_bytes(tmp_path / "new.bin", b"data")
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o644
    (tmp_path / "new.bin").chmod(0o640)  # an existing file keeps its mode, as with open()
    atomic_write_bytes(tmp_path / "new.bin", b"more")
    assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o640


@pytest.mark.parametrize("path", ["runs/a/model.pt", "runs/multirun/0_model.attention=dot,trainer.max_steps=50/m.pt"])
def test_printed_overrides_parse_back_in_a_shell_and_in_hydra(path):
    words = shlex.split(f"nmt-translate {pasteable('ckpt', path)}")
    assert len(words) == 2
    assert OverridesParser.create().parse_override(words[1]).value() == path
