"""`nmt-benchmark` (decode grid, quality and cost per setting, JSON output) and `nmt-plot` (PNG figures)."""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

import pytest
import sacrebleu
import torch

import nmt.cli.benchmark as cli_benchmark
import nmt.evaluate.benchmark
from nmt.checkpoint import CheckpointError
from nmt.cli.plot import main as plot_main
from nmt.config import BenchmarkConfig, DataConfig, DecodeConfig
from nmt.data.builtin import builtin_corpus
from nmt.data.sources import BUILTIN_SEED
from nmt.decode.translator import Translator
from nmt.errors import UserError
from nmt.evaluate.benchmark import BenchmarkResult, benchmark_setting, decode_grid
from nmt.evaluate.plots import read_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SENTENCES = 40  # a prefix of the built-in test split: enough for a meaningful BLEU, fast to translate


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread (the machine is shared), restored afterwards since `run` changes it too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small_split(tmp_path_factory) -> Path:
    """The first `SENTENCES` pairs of the built-in en->de test split as a `files` corpus prefix."""
    corpus = builtin_corpus("test", SENTENCES, BUILTIN_SEED)
    prefix = tmp_path_factory.mktemp("small") / "test"
    Path(f"{prefix}.en").write_text("\n".join(corpus.src) + "\n", encoding="utf-8")
    Path(f"{prefix}.de").write_text("\n".join(corpus.tgt) + "\n", encoding="utf-8")
    return prefix


def bench_config(ckpt: str, prefix: Path, **changes) -> BenchmarkConfig:
    """A one-repeat CPU benchmark of `ckpt` on the small split."""
    data = DataConfig(name="files", src_lang="en", tgt_lang="de")
    base = BenchmarkConfig(ckpt=ckpt, data=data, splits=[str(prefix)], repeats=1, device="cpu", num_threads=1)
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def bench(tiny_run, small_split, tmp_path_factory):
    """One benchmark run (greedy, and beam 2 with two length penalties) written to JSON."""
    result, _ = tiny_run
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    cfg = bench_config(result.model_path, small_split, beam_sizes=[1, 2], length_penalties=[0.6, 1.0], output=str(out))
    return cli_benchmark.run(cfg), cfg, out


def test_one_command_compares_backends_and_precisions(tiny_run, small_split):
    pytest.importorskip("ctranslate2", reason="the ctranslate2 extra is not installed")
    cfg = bench_config(
        tiny_run[0].model_path,
        small_split,
        beam_sizes=[1],
        backends=["torch", "ctranslate2"],
        precisions=["32", "int8"],
    )
    rows = cli_benchmark.run(cfg)["results"]
    assert [(r["backend"], r["precision"]) for r in rows] == [
        ("torch", "32"),
        ("ctranslate2", "32"),
        ("torch", "int8"),
        ("ctranslate2", "int8"),
    ]
    assert rows[0]["bleu"] == pytest.approx(rows[1]["bleu"], abs=1.0)  # one model, two engines
    assert all(r["bleu"] > 20 for r in rows)


def test_a_precision_the_device_cannot_run_is_skipped_and_the_others_stand(tiny_run, small_split, tmp_path):
    out = tmp_path / "bench.json"
    cfg = bench_config(tiny_run[0].model_path, small_split, beam_sizes=[1], precisions=["32", "fp16"], output=str(out))
    result = cli_benchmark.run(cfg)
    assert [r["precision"] for r in result["results"]] == ["32"]
    (skipped,) = result["skipped"]
    assert "precision=fp16" in skipped and "CUDA only" in skipped
    assert json.loads(out.read_text())["results"][0]["precision"] == "32"


def test_a_benchmark_whose_every_setting_was_skipped_says_so_and_writes_nothing(small_split, tmp_path, monkeypatch):
    skipped = ["test ctranslate2 precision=bf16 constraints=none: no bf16 kernels on this CPU"]
    measured = BenchmarkResult([], skipped, ["test"], {})
    monkeypatch.setattr(cli_benchmark, "run_benchmark", lambda cfg, data: measured)
    out = tmp_path / "bench.json"
    cfg = bench_config("model.pt", small_split, backends=["ctranslate2"], precisions=["bf16"], output=str(out))
    with pytest.raises(UserError, match=r"every setting was skipped \(1, above\)"):
        cli_benchmark.run(cfg)
    assert not out.exists()


def test_decode_grid_has_greedy_once_and_beams_times_penalties():
    base = DecodeConfig(beam_size=5, n_best=4, length_penalty=0.3, max_len_b=7)
    grid = decode_grid(base, [1, 3, 5], [0.6, 1.0, 1.4])
    settings = [(d.beam_size, d.length_penalty) for d in grid]
    assert sum(1 for beam, _ in settings if beam == 1) == 1
    assert sorted(s for s in settings if s[0] > 1) == [(b, a) for b in (3, 5) for a in (0.6, 1.0, 1.4)]
    assert all(d.n_best == 1 and d.max_len_b == 7 for d in grid)
    assert base.n_best == 4  # the base settings are not mutated
    assert len(decode_grid(base, [1], [0.2, 0.4])) == 1
    by_precision = decode_grid(base, [1, 3], [0.6], ("32", "int8"))
    assert [(d.precision, d.beam_size) for d in by_precision] == [("32", 1), ("32", 3), ("int8", 1), ("int8", 3)]


def test_run_returns_documented_json(bench):
    result, cfg, _ = bench
    assert result["schema"] == 1
    assert result["ckpt"] == cfg.ckpt
    env = result["environment"]
    assert env["device"] == "cpu" and env["threads"] == 1 and env["parameters"] > 0 and env["cpu"]
    assert env["torch"] == torch.__version__
    rows = result["results"]
    assert [(r["split"], r["backend"], r["precision"], r["beam_size"], r["length_penalty"]) for r in rows] == [
        (str(cfg.splits[0]), "torch", "32", 1, 1.0),
        (str(cfg.splits[0]), "torch", "32", 2, 0.6),
        (str(cfg.splits[0]), "torch", "32", 2, 1.0),
    ]
    for row in rows:
        assert 0 <= row["bleu"] <= 100 and 0 <= row["chrf"] <= 100
        assert row["bleu_signature"].startswith("nrefs:1") and "tok:13a" in row["bleu_signature"]
        assert "chrF2" in row["chrf_signature"] or "nc:6" in row["chrf_signature"]
        assert row["sentences"] == SENTENCES and row["wall_s"] > 0 and row["peak_memory_mb"] > 0
        assert row["sent_per_s"] == pytest.approx(SENTENCES / row["wall_s"])
        assert row["tgt_tok_per_s"] >= row["sent_per_s"]  # every hypothesis has at least one token
    assert rows[0]["bleu"] > 20  # the tiny model translates the built-in corpus well


def test_run_bleu_matches_sacrebleu_on_translator_output(bench, tiny_run):
    result, cfg, _ = bench
    corpus = builtin_corpus("test", SENTENCES, BUILTIN_SEED)
    for row in result["results"]:
        decode = dataclasses.replace(
            cfg.decode, beam_size=row["beam_size"], length_penalty=row["length_penalty"], n_best=1
        )
        translator = Translator.from_checkpoint(tiny_run[0].model_path, decode, "cpu")
        hyps = [t.best for t in translator.translate(corpus.src)]
        assert row["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [corpus.tgt]).score)


def test_run_writes_same_json_atomically(bench):
    result, _, out = bench
    assert json.loads(out.read_text(encoding="utf-8")) == result
    assert not list(out.parent.glob("*.tmp")) and not list(out.parent.glob(".*.tmp"))


def test_run_prints_markdown_row_per_setting(tiny_run, small_split, capsys):
    cli_benchmark.run(bench_config(tiny_run[0].model_path, small_split, beam_sizes=[1, 2], length_penalties=[0.6]))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    header, rule, *body = lines
    assert "beam_size" in header and "bleu" in header and "sent_per_s" in header
    assert set(rule.replace("|", "").strip()) <= set("-: ")
    assert len(body) == 2
    assert [cell.strip() for cell in body[0].split("|")[2:6]] == ["torch", "32", "1", "1.00"]
    assert [cell.strip() for cell in body[1].split("|")[2:6]] == ["torch", "32", "2", "0.60"]


def test_benchmark_setting_reports_median_of_clock_durations(tiny_run):
    corpus = builtin_corpus("test", 5, BUILTIN_SEED)
    translator = Translator.from_checkpoint(tiny_run[0].model_path, DecodeConfig(beam_size=1), "cpu")
    ticks = iter([0.0, 3.0, 10.0, 11.0, 20.0, 22.0])  # durations 3, 1, 2
    row = benchmark_setting(translator, corpus.src, corpus.tgt, "de", repeats=3, clock=lambda: next(ticks))
    assert row["wall_s_runs"] == [3.0, 1.0, 2.0]
    assert row["wall_s"] == statistics.median([3.0, 1.0, 2.0]) == 2.0
    assert row["sent_per_s"] == pytest.approx(5 / 2.0)


def test_run_refuses_checkpoint_for_other_language_pair(tiny_run, shared_data, monkeypatch):
    def no_corpus(*args):
        raise AssertionError("the corpus was read before the language pair was checked")

    monkeypatch.setattr(nmt.evaluate.benchmark, "get_corpus", no_corpus)
    monkeypatch.setattr(Translator, "translate", no_corpus)
    data = DataConfig(name="multi30k", src_lang="de", tgt_lang="en", root=str(shared_data))
    cfg = BenchmarkConfig(ckpt=tiny_run[0].model_path, data=data, repeats=1, device="cpu", num_threads=1)
    with pytest.raises(CheckpointError, match=r"en->de.*de->en"):
        cli_benchmark.run(cfg)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1024


def test_plot_learning_curves_of_run(tiny_run, tmp_path, capsys):
    png = tmp_path / "curves.png"
    plot_main(["--run", str(tiny_run[1].run_dir), "--out", str(png), "--title", "tiny"])
    assert_png(png)
    assert str(png) in capsys.readouterr().out


def test_plot_bleu_vs_speed_from_benchmark_json(bench, tmp_path):
    png = tmp_path / "speed.png"
    plot_main(["--benchmark", str(bench[2]), "--out", str(png)])
    assert_png(png)


def test_read_metrics_gives_validation_bleu_at_validation_steps(tiny_run):
    result, cfg = tiny_run
    bleu = read_metrics(cfg.run_dir)["val/bleu"]
    interval = cfg.trainer.val_check_interval
    assert len(bleu) == cfg.trainer.max_steps // interval
    steps = [step for step, _ in bleu]
    assert steps == sorted(steps)
    assert all(min(step % interval, interval - step % interval) <= 1 for step in steps)
    assert max(value for _, value in bleu) == pytest.approx(result.best_bleu)


@pytest.mark.parametrize(
    ("args", "message"),
    [([], "one of the arguments --run --benchmark --pruning --attention is required"),
     (["--run", "r", "--benchmark", "b.json"], "argument --benchmark: not allowed with argument --run")],
)  # fmt: skip
def test_plot_needs_exactly_one_source(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        plot_main([*args, "--out", str(tmp_path / "x.png")])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_plot_of_directory_without_logs_names_it(tmp_path):
    with pytest.raises(SystemExit, match=str(tmp_path / "logs" / "metrics.csv")):
        plot_main(["--run", str(tmp_path), "--out", str(tmp_path / "x.png")])
    assert not (tmp_path / "x.png").exists()


class _Hungry:
    """A stand-in translator whose `translate` holds `megabytes` of memory while it runs."""

    device = torch.device("cpu")

    def __init__(self, megabytes: int) -> None:
        self.decode = DecodeConfig(beam_size=1)
        self.megabytes = megabytes

    def translate(self, src: list[str]) -> list:
        held = torch.ones(self.megabytes * 2**20 // 4)  # float32: 4 bytes each
        held.add_(1.0)  # touch every page
        return [type("T", (), {"best": line, "tokens": 1})() for line in src]


def test_each_setting_reports_its_own_peak_memory_not_the_runs_peak() -> None:
    """A 400 MB setting followed by a 10 MB one: the second's peak must not carry the first's."""
    src = ["ein Hund ."] * 4
    big = benchmark_setting(_Hungry(400), src, src, "de", repeats=1)
    small = benchmark_setting(_Hungry(10), src, src, "de", repeats=1)
    assert big["peak_memory_mb"] - small["peak_memory_mb"] > 300, (big["peak_memory_mb"], small["peak_memory_mb"])
