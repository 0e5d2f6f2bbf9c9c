"""Constrained against unconstrained decoding of one model: term use, BLEU and sentences/s side by side.

    python scripts/build_term_sets.py --ckpt runs/multi30k_en_de/model.pt --out runs/terms_en_de
    python scripts/benchmark_constraints.py --ckpt runs/multi30k_en_de/model.pt --sets runs/terms_en_de

On Multi30k's --split (the sets of `build_term_sets.py`): greedy and beam 5 without constraints, the same with
an empty constraint list per line (the path of a glossary that matches nothing: it must be as fast), and
beam 5 (and greedy) under the reference constraints, the aligned glossary and the words to avoid; the timed
runs interleaved, `--repeats` rounds, medians. Term use of plain rows is scored against the reference
constraints and the words to avoid. Then the glossary against plain beam 5 (lines with and without terms),
and, where the sets exist, the WMT21 dev set (en-fr, scored with its accepted forms) and the IATE glossary
on the Multi30k lines containing its terms (en-de). Prints Markdown tables; --out writes them as JSON.

With --before DIR (the package as it was before constrained search: `git archive 74e1cb8 nmt | tar -x -C DIR`),
greedy and beam 5 without constraints are also timed in that code and in this tree, each run in a fresh
process, for --repeats rounds in which the two trees alternate which runs first: the plain search must be as
fast as it was (--plain-only: that timing alone). With
--ctranslate2, every line is also forced to start with its reference's first two words, by our search and
by CTranslate2's `target_prefix` on the same weights (exported on the fly), greedy and beam 5.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from nmt.checkpoint import trained_on
from nmt.config import DecodeConfig
from nmt.data.sources import get_corpus
from nmt.decode.terms import glossary_constraints, read_glossary
from nmt.decode.translator import Translator
from nmt.device import set_threads
from nmt.evaluate import score, to_markdown_table
from nmt.evaluate.benchmark import environment
from nmt.evaluate.constraint_benchmark import Setting, prefix_runs, relative_speed, run_settings
from nmt.evaluate.constraint_files import read_segments
from nmt.evaluate.term_sets import read_wmt21, wmt21_test_set
from nmt.evaluate.term_use import term_use

COLUMNS = ["setting", "bleu", "chrf", "term_use", "term_use_any_case", "term_use_word_start", "kept_out", "unmet"]
COLUMNS += ["sent_per_s", "speed"]


def multi30k(translator: Translator, src: list[str], ref: list[str], sets: Path, lang: str, repeats: int) -> dict:
    """The main table, and the glossary's rows against plain beam 5."""
    include = [s.constraints for s in read_segments(sets / "constraints.jsonl", src)]
    avoid = [s.avoid for s in read_segments(sets / "avoid.jsonl", src)]
    terms = read_glossary(sets / "glossary.tsv")
    glossary = [glossary_constraints(line, terms) for line in src]
    empty = [[] for _ in src]
    scored = {"scored_include": include, "scored_avoid": avoid}
    settings = [
        Setting("greedy", 1, **scored),
        Setting("greedy, empty constraint lists", 1, include=empty, **scored),
        Setting("beam 5", 5, **scored),
        Setting("beam 5, empty constraint lists", 5, include=empty, **scored),
        Setting("greedy + reference constraints", 1, include=include, scored_avoid=avoid),
        Setting("beam 5 + reference constraints", 5, include=include, scored_avoid=avoid),
        Setting("beam 5 + words to avoid", 5, avoid=avoid, scored_include=include),
        Setting("beam 5 + aligned glossary", 5, include=glossary),
    ]
    rows, outputs = run_settings(translator, src, ref, lang, settings, repeats)
    with_terms = [i for i, terms in enumerate(glossary) if terms]
    without = [i for i, terms in enumerate(glossary) if not terms]
    compared = []
    for name in ("beam 5", "beam 5 + aligned glossary"):
        hyps = outputs[name]
        use = term_use([hyps[i] for i in with_terms], [glossary[i] for i in with_terms])
        compared.append({
            "setting": name,
            "term_use": use.share(use.exact, use.terms),
            "terms": use.terms,
            "bleu_lines_with_terms": _bleu([hyps[i] for i in with_terms], [ref[i] for i in with_terms], lang),
            "bleu_lines_without": _bleu([hyps[i] for i in without], [ref[i] for i in without], lang),
            "identical_lines_without": sum(hyps[i] == outputs["beam 5"][i] for i in without),
        })  # fmt: skip
    return {"rows": relative_speed(rows, "beam 5"), "glossary": compared, "lines_with_terms": len(with_terms)}


def _bleu(hyps: list[str], refs: list[str], lang: str) -> float:
    return score(hyps, [refs], metrics=("bleu",), tgt_lang=lang)[0].value


def wmt21(translator: Translator, data: Path) -> list[dict]:
    """The WMT21 en-fr terminology dev set, out of Multi30k's domain: term use is the figure that counts."""
    folder = data / "terminology" / "wmt21-en-fr-dev"
    test = wmt21_test_set(read_wmt21(folder / "dev.en-fr.en.sgm", folder / "dev.en-fr.fr.sgm"))
    settings = [
        Setting("beam 5", 5, scored_include=test.accepted),
        Setting("beam 5 + WMT21 terms", 5, include=test.include, scored_include=test.accepted),
    ]
    rows, _ = run_settings(translator, test.src, test.ref, "fr", settings, repeats=1)
    return relative_speed(rows, "beam 5")


def iate(translator: Translator, src: list[str], ref: list[str], sets: Path) -> list[dict]:
    """Dinu et al.'s IATE pairs as a glossary, on the lines that contain one of its terms (none: no rows)."""
    terms = read_glossary(sets / "iate.tsv")
    lines = [i for i, line in enumerate(src) if glossary_constraints(line, terms)]
    if not lines:
        return []
    sub_src, sub_ref = [src[i] for i in lines], [ref[i] for i in lines]
    include = [glossary_constraints(line, terms) for line in sub_src]
    settings = [
        Setting("beam 5", 5, scored_include=include),
        Setting("beam 5 + IATE glossary", 5, include=include),
    ]
    rows, _ = run_settings(translator, sub_src, sub_ref, "de", settings, repeats=1)
    return relative_speed(rows, "beam 5")


def prefix_vs_ctranslate2(
    ckpt: str, src: list[str], ref: list[str], lang: str, threads: int, repeats: int
) -> list[dict]:
    """Each line forced to start with its reference's first two words: our search against CTranslate2's
    `target_prefix` on the same weights, greedy and beam 5, each backend in a process of its own."""
    prefixes = [" ".join(line.split()[:2]) for line in ref]
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        runs = {
            backend: pool.apply(prefix_runs, (ckpt, backend, src, prefixes, [1, 5], threads, repeats))
            for backend in ("torch", "ctranslate2")
        }
    rows = []
    for beam in (1, 5):
        for backend, found in runs.items():
            hyps, seconds = found[beam]
            torch_hyps = runs["torch"][beam][0]
            rows.append({
                "backend": backend,
                "beam_size": beam,
                "bleu": _bleu(hyps, ref, lang),
                "prefix_kept": 100 * sum(h.startswith(p) for h, p in zip(hyps, prefixes, strict=True)) / len(hyps),
                "same_as_torch": 100 * sum(a == b for a, b in zip(hyps, torch_hyps, strict=True)) / len(hyps),
                "sent_per_s": len(hyps) / seconds,
            })  # fmt: skip
    return rows


# Runs under either tree: only APIs both have. argv: checkpoint, source file, threads; prints {beam: seconds}.
TIME_PLAIN = """
import json, sys, time, torch
from nmt.config import DecodeConfig
from nmt.decode.translator import Translator
ckpt, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
lines = open(path, encoding="utf-8").read().splitlines()
seconds = {}
for beam in (1, 5):
    translator = Translator.from_checkpoint(ckpt, DecodeConfig(beam_size=beam), device="cpu")
    translator.translate(lines[:100])
    start = time.perf_counter()
    translator.translate(lines)
    seconds[beam] = time.perf_counter() - start
print(json.dumps(seconds))
"""


def plain_speed(ckpt: str, src: list[str], before: Path, threads: int, repeats: int) -> list[dict]:
    """Sentences/s of greedy and beam 5 without constraints, in the code of `before` and in this tree."""
    trees = {"before constrained search": str(before), "this tree": str(Path(__file__).resolve().parents[1])}
    seconds: dict[tuple[str, str], list[float]] = {}
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as lines:
        lines.write("".join(line + "\n" for line in src))
        lines.flush()
        for round_ in range(repeats):  # the two trees alternate which runs first
            for tree, path in list(trees.items())[:: 1 if round_ % 2 == 0 else -1]:
                env = {**os.environ, "PYTHONPATH": path}
                cmd = [sys.executable, "-c", TIME_PLAIN, ckpt, lines.name, str(threads)]
                found = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
                for beam, wall in found.items():
                    seconds.setdefault((tree, beam), []).append(wall)
    return [
        {"code": tree, "beam_size": int(beam), "sent_per_s": len(src) / statistics.median(walls), "wall_s_runs": walls}
        for (tree, beam), walls in sorted(seconds.items(), key=lambda item: (item[0][1], item[0][0]))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--sets", required=True, type=Path, help="the directory build_term_sets.py wrote")
    parser.add_argument("--data", default="../shared/data", type=Path, help="the shared data directory")
    parser.add_argument("--split", default="test2016")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--before", type=Path, help="the package before constrained search, to time plain search")
    parser.add_argument("--ctranslate2", action="store_true", help="also compare prefixes with CTranslate2's")
    parser.add_argument("--plain-only", action="store_true", help="with --before: time the plain search only")
    parser.add_argument("--out", type=Path, help="JSON file to write")
    args = parser.parse_args()
    if args.plain_only:
        data = dataclasses.replace(trained_on(args.ckpt), root=str(args.data))
        src = get_corpus(data, args.split).src
        rows = plain_speed(args.ckpt, src, args.before, args.threads, args.repeats)
        print(to_markdown_table(rows, ["code", "beam_size", "sent_per_s"]))
        if args.out is not None:
            args.out.write_text(json.dumps({"ckpt": args.ckpt, "plain_speed": rows}, indent=2), encoding="utf-8")
        return

    set_threads(args.threads)
    translator = Translator.from_checkpoint(args.ckpt, DecodeConfig(beam_size=5), device="cpu")
    data = dataclasses.replace(trained_on(args.ckpt), root=str(args.data))
    corpus = get_corpus(data, args.split)
    result = {"ckpt": args.ckpt, "split": args.split, "environment": environment({"torch": translator})}
    result["multi30k"] = multi30k(translator, corpus.src, corpus.tgt, args.sets, data.tgt_lang, args.repeats)
    print(f"## {data.name} {data.src_lang}-{data.tgt_lang} {args.split} ({len(corpus.src)} lines)\n")
    print(to_markdown_table(result["multi30k"]["rows"], COLUMNS))
    print(f"\naligned glossary: {result['multi30k']['lines_with_terms']} lines with terms\n")
    print(to_markdown_table(result["multi30k"]["glossary"], list(result["multi30k"]["glossary"][0])))
    if (args.sets / "wmt21.jsonl").exists():
        result["wmt21"] = wmt21(translator, args.data)
        print("\n## WMT21 terminology dev set, en-fr (971 lines; term use with the task's accepted forms)\n")
        print(to_markdown_table(result["wmt21"], COLUMNS))
    if (args.sets / "iate.tsv").exists() and (rows := iate(translator, corpus.src, corpus.tgt, args.sets)):
        result["iate"] = rows
        print(f"\n## IATE glossary (Dinu et al. 2019) on the {result['iate'][0]['sentences']} lines with its terms\n")
        print(to_markdown_table(result["iate"], COLUMNS))
    if args.ctranslate2:
        result["prefix"] = prefix_vs_ctranslate2(
            args.ckpt, corpus.src, corpus.tgt, data.tgt_lang, args.threads, args.repeats
        )
        print("\n## Forced prefixes (the reference's first two words): ours and CTranslate2's target_prefix\n")
        print(to_markdown_table(result["prefix"], list(result["prefix"][0])))
    if args.before is not None:
        result["plain_speed"] = plain_speed(args.ckpt, corpus.src, args.before, args.threads, args.repeats)
        print("\n## Plain search before and after constrained search (a fresh process per run)\n")
        print(to_markdown_table(result["plain_speed"], ["code", "beam_size", "sent_per_s"]))
    print(f"\n{json.dumps(result['environment'])}; signature: {result['multi30k']['rows'][0]['bleu_signature']}")
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
