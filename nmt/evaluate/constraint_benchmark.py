"""Constrained against unconstrained decoding on one test set: term use, BLEU and speed, side by side.

Every setting translates the same lines with one translator; the timed runs are interleaved (each round runs
every setting once) and the median is reported, so a machine that slows down or speeds up during the run
affects every setting alike. Term use is scored against the constraints a setting declares, also for
settings that do not decode under them (how often the plain search uses those terms unasked).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nmt.checkpoint import trained_on
from nmt.config import DecodeConfig
from nmt.decode.translator import Translation, Translator
from nmt.device import set_threads
from nmt.evaluate.benchmark import open_backend
from nmt.evaluate.metrics import score
from nmt.evaluate.term_use import TermForms, term_use


@dataclass
class Setting:
    """One way to translate the test set.

    Attributes:
        name: the row's name.
        beam_size: 1 is greedy.
        include, avoid: per line, the positive and negative constraints decoded under (None: none).
        scored_include, scored_avoid: per line, the constraints term use is scored against (None: those
            decoded under); a positive one may list several accepted forms.
    """

    name: str
    beam_size: int
    include: list[list[str]] | None = None
    avoid: list[list[str]] | None = None
    scored_include: Sequence[Sequence[TermForms]] | None = None
    scored_avoid: Sequence[Sequence[str]] | None = None


def translate(translator: Translator, lines: list[str], setting: Setting) -> list[Translation]:
    """`lines` translated as `setting` says (the translator's other decode options unchanged)."""
    translator.decode = dataclasses.replace(translator.decode, beam_size=setting.beam_size, n_best=1)
    if setting.include is None and setting.avoid is None:
        return translator.translate(lines)
    return translator.translate(lines, constraints=setting.include, avoid=setting.avoid)


def run_settings(
    translator: Translator,
    src: list[str],
    refs: list[str],
    tgt_lang: str,
    settings: list[Setting],
    repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[dict], dict[str, list[str]]]:
    """Translate `src` under every setting, `repeats` interleaved timed rounds after one untimed warm-up round
    on the first 100 lines; each row has the setting's BLEU, chrF, term use and median sentences per second.

    Returns:
        the rows, in the order of `settings`, and each setting's output lines.
    """
    seconds: dict[str, list[float]] = {s.name: [] for s in settings}
    outputs: dict[str, list[Translation]] = {}
    for setting in settings:
        translate(translator, src[:100], _head(setting, 100))
    for _ in range(repeats):
        for setting in settings:
            start = clock()
            outputs[setting.name] = translate(translator, src, setting)
            seconds[setting.name].append(clock() - start)
    rows = [_row(setting, outputs[setting.name], refs, tgt_lang, seconds[setting.name]) for setting in settings]
    return rows, {name: [t.best for t in found] for name, found in outputs.items()}


def _head(setting: Setting, n: int) -> Setting:
    """The setting restricted to the first `n` lines."""
    cut = [x[:n] if x is not None else None for x in (setting.include, setting.avoid)]
    return dataclasses.replace(setting, include=cut[0], avoid=cut[1])


def _row(setting: Setting, found: list[Translation], refs: list[str], tgt_lang: str, seconds: list[float]) -> dict:
    hyps = [t.best for t in found]
    bleu, chrf = score(hyps, [refs], metrics=("bleu", "chrf"), tgt_lang=tgt_lang)
    include = setting.scored_include if setting.scored_include is not None else setting.include
    avoid = setting.scored_avoid if setting.scored_avoid is not None else setting.avoid
    use = term_use(hyps, include, avoid)
    wall = statistics.median(seconds)
    return {
        "setting": setting.name,
        "beam_size": setting.beam_size,
        "bleu": bleu.value,
        "chrf": chrf.value,
        "term_use": use.share(use.exact, use.terms),
        "term_use_any_case": use.share(use.any_case, use.terms),
        "term_use_word_start": use.share(use.word_start, use.terms),
        "terms": use.terms,
        "kept_out": use.share(use.kept_out, use.avoided),
        "avoided": use.avoided,
        "unmet": sum(1 for t in found if t.met[:1] == [False]),
        "sent_per_s": len(hyps) / wall,
        "wall_s": wall,
        "wall_s_runs": seconds,
        "bleu_signature": bleu.signature,
        "sentences": len(hyps),
    }


def relative_speed(rows: list[dict], baseline: str) -> list[dict]:
    """`rows` with `speed`: each row's sentences per second over those of the row named `baseline`."""
    base = next(r["sent_per_s"] for r in rows if r["setting"] == baseline)
    return [{**r, "speed": r["sent_per_s"] / base} for r in rows]


def prefix_runs(
    ckpt: str, backend: str, lines: list[str], prefixes: list[str], beam_sizes: list[int], threads: int, repeats: int
) -> dict[int, tuple[list[str], float]]:
    """For each beam size, `lines` translated with their forced `prefixes` by `backend` (ctranslate2: a float32
    export of `ckpt` made here) and the median seconds of `repeats` runs, in this process: run one backend
    per process (`nmt.evaluate.benchmark` says why)."""
    set_threads(threads)
    data = trained_on(ckpt)
    out = {}
    with open_backend(ckpt, backend, DecodeConfig(), "cpu", (data.src_lang, data.tgt_lang)) as translator:
        for beam in beam_sizes:
            translator.decode = DecodeConfig(beam_size=beam)
            translator.translate(lines[:100], prefix=prefixes[:100])
            seconds = []
            for _ in range(repeats):
                start = time.perf_counter()
                found = translator.translate(lines, prefix=prefixes)
                seconds.append(time.perf_counter() - start)
            out[beam] = ([t.best for t in found], statistics.median(seconds))
    return out
