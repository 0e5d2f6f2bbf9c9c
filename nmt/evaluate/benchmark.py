"""Quality and cost of decoding settings on test sets: BLEU/chrF with signatures beside speed and memory.

With a glossary, every setting runs twice, side by side: without constraints and with the glossary's terms as
positive constraints (`constraints` column none / glossary); both rows report term use, the plain one how
often the model uses the terms unasked.

Memory is the peak of each setting alone: the peak is reset before every setting. Each backend runs in a
process of its own: CTranslate2 brings its own OpenMP runtime, and once it has translated in a process,
PyTorch's search there runs slower (and CTranslate2 beside a PyTorch that has run, slower too) until its
model is freed, so timings of one process would depend on the order of the settings (docs/engines.md,
"Why one process per engine", has the figures).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from nmt.config import BenchmarkConfig, DataConfig, DecodeConfig
from nmt.ctranslate2.directory import ExportError
from nmt.ctranslate2.engine import load_ctranslate2
from nmt.ctranslate2.export import export_ctranslate2
from nmt.data.sources import describe, get_corpus
from nmt.decode.precision import PrecisionError
from nmt.decode.terms import glossary_constraints, read_glossary
from nmt.decode.translator import Translator, check_langs
from nmt.device import release_freed_memory, retain_freed_memory, set_threads
from nmt.evaluate.metrics import score
from nmt.evaluate.term_use import term_use

WARMUP_LINES = 100  # translated once, untimed, before the timed runs of a setting


def decode_grid(
    base: DecodeConfig, beam_sizes: list[int], length_penalties: list[float], precisions: tuple[str, ...] = ("32",)
) -> list[DecodeConfig]:
    """Every combination of precision, beam size and length penalty (greedy ignores the penalty: once each)."""
    grid = []
    for precision in precisions:
        for beam in beam_sizes:
            for alpha in [1.0] if beam == 1 else length_penalties:
                grid.append(
                    dataclasses.replace(base, beam_size=beam, n_best=1, length_penalty=alpha, precision=precision)
                )
    return grid


@contextlib.contextmanager
def open_backend(
    ckpt: str | list[str], backend: str, decode: DecodeConfig, device: str, langs: tuple[str, str]
) -> Iterator[Translator]:
    """The translator of `backend` for one checkpoint (or, torch only, an ensemble); CTranslate2 gets a float32
    export in a temporary directory, which `decode.precision` then converts at load, as `nmt-translate
    backend=ctranslate2` would."""
    if backend == "torch":
        yield Translator.load(ckpt, decode, device, expect_langs=langs)
        return
    with tempfile.TemporaryDirectory(prefix="nmt-benchmark-") as tmp:
        meta = export_ctranslate2(ckpt, Path(tmp) / "ctranslate2")
        check_langs(ckpt, (meta["src_lang"], meta["tgt_lang"]), langs)
        yield load_ctranslate2(Path(tmp) / "ctranslate2", decode, device, torch.get_num_threads())


@dataclasses.dataclass
class BenchmarkResult:
    """Rows (one per split, setting and backend), settings a backend could not run, splits scored, environment."""

    rows: list[dict]
    skipped: list[str]
    scored: list[str]
    environment: dict


def run_benchmark(cfg: BenchmarkConfig, data: DataConfig) -> BenchmarkResult:
    """Every split and decode setting of `cfg` with each backend, a backend per process when there are several."""
    if len(cfg.backends) == 1:
        return run_backend(cfg, data, cfg.backends[0])
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:  # a new process per backend
        parts = [pool.apply(run_backend, (cfg, data, backend)) for backend in cfg.backends]
    grid = decode_grid(cfg.decode, cfg.beam_sizes, cfg.length_penalties, tuple(cfg.precisions))
    order = {(d.precision, d.beam_size, d.length_penalty): i for i, d in enumerate(grid)}
    splits, modes = cfg.splits or [data.test], constraint_modes(cfg)
    rows = sorted(
        (row for part in parts for row in part.rows),  # side by side: split, then setting, then backend
        key=lambda r: (
            splits.index(r["split"]),
            order[r["precision"], r["beam_size"], r["length_penalty"]],
            modes.index(r["constraints"]),
            cfg.backends.index(r["backend"]),
        ),
    )
    environment = {k: v for part in reversed(parts) for k, v in part.environment.items() if v is not None}
    return BenchmarkResult(rows, [s for p in parts for s in p.skipped], parts[0].scored, environment)


def constraint_modes(cfg: BenchmarkConfig) -> list[str]:
    """How each setting runs: without constraints, and also with the glossary's terms when there is one."""
    return ["none", "glossary"] if cfg.glossary is not None else ["none"]


def run_backend(cfg: BenchmarkConfig, data: DataConfig, backend: str) -> BenchmarkResult:
    """Every split and decode setting of `cfg` with one backend, in this process."""
    set_threads(cfg.num_threads)
    retain_freed_memory()
    rows, skipped, scored = [], [], []
    glossary = read_glossary(cfg.glossary) if cfg.glossary is not None else None
    with open_backend(cfg.ckpt, backend, cfg.decode, cfg.device, (data.src_lang, data.tgt_lang)) as translator:
        for split in cfg.splits or [data.test]:
            corpus = get_corpus(data, split)
            scored.append(describe(data, split, len(corpus)))
            terms = [glossary_constraints(line, glossary) for line in corpus.src] if glossary is not None else None
            for decode in decode_grid(cfg.decode, cfg.beam_sizes, cfg.length_penalties, tuple(cfg.precisions)):
                translator.decode = decode
                for mode in constraint_modes(cfg):
                    constraints = terms if mode == "glossary" else None
                    try:
                        row = benchmark_setting(
                            translator, corpus.src, corpus.tgt, data.tgt_lang, cfg.repeats, cfg.tokenize,
                            constraints=constraints, terms=terms,
                        )  # fmt: skip
                    except (ExportError, PrecisionError) as err:  # a precision (or constraints) this engine or
                        # device cannot run: the other settings stand
                        skipped.append(f"{split} {backend} precision={decode.precision} constraints={mode}: {err}")
                        continue
                    rows.append({"split": split, "backend": backend, "constraints": mode, **row})
        return BenchmarkResult(rows, skipped, scored, environment({backend: translator}))


def reset_peak_memory(device: torch.device) -> bool:
    """Start a new peak-memory measurement; False where the platform cannot reset the peak.

    On CPU, writing 5 to `/proc/self/clear_refs` resets the kernel's peak resident set size
    (`VmHWM`; Linux 4.0+); `getrusage`'s peak cannot be reset and would carry one setting's peak
    into every later one.
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    release_freed_memory()  # memory freed by earlier settings but kept for reuse would count as this one's
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_memory_mb(device: torch.device) -> float:
    """Peak accelerator memory, or peak resident memory of this process on CPU, since the last reset."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise OSError("/proc/self/status has no VmHWM line; peak memory cannot be measured here.")


def benchmark_setting(
    translator: Translator,
    src: list[str],
    refs: list[str],
    tgt_lang: str,
    repeats: int,
    tokenize: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
    constraints: list[list[str]] | None = None,
    terms: list[list[str]] | None = None,
) -> dict:
    """Translate `src` `repeats` times with the translator's settings; report quality and median cost.

    An untimed warm-up on the first `WARMUP_LINES` lines comes first, so that no timed run pays for what a
    first call does once (converting the weights to the search's precision, growing the heap).

    Args:
        constraints: per line, target terms the translation must contain (None: none).
        terms: per line, the terms whose use the row reports (`term_use`, `term_use_any_case`, `terms`;
            None: no such columns), whether or not they were constraints.
    """
    seconds, hyps, tokens = [], [], 0
    resettable = reset_peak_memory(translator.device)
    _translate(translator, src[:WARMUP_LINES], constraints[:WARMUP_LINES] if constraints is not None else None)
    for _ in range(repeats):
        _synchronize(translator.device)
        start = clock()
        translations = _translate(translator, src, constraints)
        _synchronize(translator.device)
        seconds.append(clock() - start)
        hyps = [t.best for t in translations]
        tokens = sum(t.tokens for t in translations)
    bleu, chrf = score(hyps, [refs], metrics=("bleu", "chrf"), tgt_lang=tgt_lang, tokenize=tokenize)
    wall = statistics.median(seconds)
    return {
        "precision": translator.decode.precision,
        "beam_size": translator.decode.beam_size,
        "length_penalty": translator.decode.length_penalty,
        "bleu": bleu.value,
        "chrf": chrf.value,
        "bleu_signature": bleu.signature,
        "chrf_signature": chrf.signature,
        "sentences": len(src),
        "wall_s": wall,
        "wall_s_runs": seconds,
        "sent_per_s": len(src) / wall,
        "tgt_tok_per_s": tokens / wall,
        "peak_memory_mb": peak_memory_mb(translator.device) if resettable else None,  # None: not measurable
        **(_term_columns(hyps, terms, translations) if terms is not None else {}),
    }


def _translate(translator: Translator, src: list[str], constraints: list[list[str]] | None) -> list:
    """The translations of `src`, under per-line `constraints` when given."""
    return translator.translate(src) if constraints is None else translator.translate(src, constraints=constraints)


def _term_columns(hyps: list[str], terms: list[list[str]], translations: list) -> dict:
    """Term use of the output in percent (exactly, in any case, and where the last word may go on), the terms
    counted, and the lines that reached the length limit before meeting their constraints."""
    use = term_use(hyps, terms)
    return {
        "term_use": use.share(use.exact, use.terms),
        "term_use_any_case": use.share(use.any_case, use.terms),
        "term_use_word_start": use.share(use.word_start, use.terms),
        "terms": use.terms,
        "unmet": sum(1 for t in translations if t.met[:1] == [False]),
    }


def _synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so wall times measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def environment(translators: dict[str, Translator]) -> dict:
    """Where the numbers were measured: device, CPU, threads, model size, library versions."""
    device = next(iter(translators.values())).device
    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": _cpu_model(),
        "threads": torch.get_num_threads(),
        "parameters": translators["torch"].model.param_count() if "torch" in translators else None,
        "torch": torch.__version__,
    }
    with contextlib.suppress(PackageNotFoundError):
        env["ctranslate2"] = version("ctranslate2")
    return env


def _cpu_model() -> str:
    """The processor's name from /proc/cpuinfo ("unknown" elsewhere): speeds mean little without it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"
