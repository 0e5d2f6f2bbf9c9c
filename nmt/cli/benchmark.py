"""`nmt-benchmark`: translate test sets with a grid of decode settings; report quality and speed."""

from __future__ import annotations

import json

from nmt.atomic import atomic_open, check_writable
from nmt.cli.hydra_config import entry_point
from nmt.config import BenchmarkConfig
from nmt.data.sources import get_corpus
from nmt.decode.translator import Translator
from nmt.device import set_threads
from nmt.evaluate import to_markdown_table
from nmt.evaluate.benchmark import benchmark_setting, decode_grid, environment

COLUMNS = ["split", "beam_size", "length_penalty", "bleu", "chrf", "sent_per_s", "tgt_tok_per_s", "wall_s"]


def run(cfg: BenchmarkConfig) -> dict:
    """Benchmark every (split, decode setting) pair; print a Markdown table and return the JSON result."""
    set_threads(cfg.num_threads)
    if cfg.output is not None:
        check_writable(cfg.output)  # before minutes of decoding, not after
    langs = (cfg.data.src_lang, cfg.data.tgt_lang)
    translator = Translator.from_checkpoint(cfg.ckpt, cfg.decode, cfg.device, expect_langs=langs)
    rows = []
    for split in cfg.splits or [cfg.data.test]:
        corpus = get_corpus(cfg.data, split)
        for decode in decode_grid(cfg.decode, cfg.beam_sizes, cfg.length_penalties):
            translator.decode = decode
            row = benchmark_setting(translator, corpus.src, corpus.tgt, cfg.data.tgt_lang, cfg.repeats, cfg.tokenize)
            rows.append({"split": split, **row})
    result = {"schema": 1, "ckpt": cfg.ckpt, "environment": environment(translator), "results": rows}
    print(to_markdown_table(rows, COLUMNS))
    print(f"\nsignature: {rows[0]['bleu_signature']}; {json.dumps(result['environment'])}")
    if cfg.output is not None:
        with atomic_open(cfg.output) as out:
            json.dump(result, out, indent=2, ensure_ascii=False)
    return result


main = entry_point("benchmark", BenchmarkConfig, run)
