"""`nmt-benchmark`: translate test sets with a grid of decode settings; report quality and speed.

For every test split and every (beam size, length penalty) pair, translates the split with the
checkpoint and reports BLEU and chrF (with the sacreBLEU signature), sentences and target tokens
per second and wall time, as a Markdown table (and JSON with output=FILE). The data is the one
the checkpoint was trained on unless data=NAME chooses another.

Examples:
    nmt-benchmark ckpt=runs/quickstart/model.pt beam_sizes=[1,5] repeats=1
    nmt-benchmark ckpt=model.pt data=multi30k_en_de data.root=../shared/data splits=[test2016,test2017] output=b.json
"""

from __future__ import annotations

import json

from nmt.atomic import atomic_open, check_writable
from nmt.cli.hydra_config import entry_point
from nmt.config import BenchmarkConfig
from nmt.data.sources import describe, get_corpus, trained_on
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
    data = cfg.data or trained_on(cfg.ckpt)
    langs = (data.src_lang, data.tgt_lang)
    translator = Translator.from_checkpoint(cfg.ckpt, cfg.decode, cfg.device, expect_langs=langs)
    rows, scored = [], []
    for split in cfg.splits or [data.test]:
        corpus = get_corpus(data, split)
        scored.append(describe(data, split, len(corpus)))
        for decode in decode_grid(cfg.decode, cfg.beam_sizes, cfg.length_penalties):
            translator.decode = decode
            row = benchmark_setting(translator, corpus.src, corpus.tgt, data.tgt_lang, cfg.repeats, cfg.tokenize)
            rows.append({"split": split, **row})
    result = {"schema": 1, "ckpt": cfg.ckpt, "environment": environment(translator), "results": rows}
    print(f"scored: {'; '.join(scored)}")
    print(to_markdown_table(rows, COLUMNS))
    print(f"\nsignature: {rows[0]['bleu_signature']}; {json.dumps(result['environment'])}")
    if cfg.output is not None:
        with atomic_open(cfg.output) as out:
            json.dump(result, out, indent=2, ensure_ascii=False)
    return result


main = entry_point("benchmark", BenchmarkConfig, run, __doc__)
