"""`nmt-benchmark`: translate test sets with a grid of decode settings; report quality and speed.

For every test split, backend (torch, or ctranslate2 through an export made on the fly), precision
and (beam size, length penalty) pair, translates the split with the checkpoint and reports BLEU
and chrF (with the sacreBLEU signature), sentences and target tokens per second and wall time,
as a Markdown table (and JSON with output=FILE). The data is the one
the checkpoint was trained on unless data=NAME chooses another. ckpt=[A,B] benchmarks the
ensemble of several checkpoints (backend torch).

Examples:
    nmt-benchmark ckpt=runs/quickstart/model.pt beam_sizes=[1,5] repeats=1
    nmt-benchmark ckpt=model.pt data=multi30k_en_de data.root=../shared/data splits=[test2016,test2017] output=b.json
    nmt-benchmark ckpt=model.pt backends=[torch,ctranslate2] precisions=[32,int8] beam_sizes=[1,5]
"""

from __future__ import annotations

import json
import sys

from nmt.atomic import atomic_open, check_writable
from nmt.cli.hydra_config import entry_point
from nmt.config import BenchmarkConfig
from nmt.data.sources import describe, get_corpus, trained_on
from nmt.device import retain_freed_memory, set_threads
from nmt.evaluate import to_markdown_table
from nmt.evaluate.benchmark import benchmark_setting, decode_grid, environment, open_backends
from nmt.export.ctranslate2 import ExportError

COLUMNS = ["split", "backend", "precision", "beam_size", "length_penalty", "bleu", "chrf", "sent_per_s"]
COLUMNS += ["tgt_tok_per_s", "wall_s"]


def run(cfg: BenchmarkConfig) -> dict:
    """Benchmark every (split, decode setting) pair; print a Markdown table and return the JSON result."""
    set_threads(cfg.num_threads)
    retain_freed_memory()
    if cfg.output is not None:
        check_writable(cfg.output)  # before minutes of decoding, not after
    data = cfg.data or trained_on(cfg.ckpt)
    langs = (data.src_lang, data.tgt_lang)
    rows, scored, skipped = [], [], []
    with open_backends(cfg.ckpt, cfg.backends, cfg.decode, cfg.device, langs) as translators:
        for split in cfg.splits or [data.test]:
            corpus = get_corpus(data, split)
            scored.append(describe(data, split, len(corpus)))
            # Settings outside, backends inside: the runs compared side by side are the closest in time.
            for decode in decode_grid(cfg.decode, cfg.beam_sizes, cfg.length_penalties, tuple(cfg.precisions)):
                for backend, translator in translators:
                    translator.decode = decode
                    try:
                        row = benchmark_setting(
                            translator, corpus.src, corpus.tgt, data.tgt_lang, cfg.repeats, cfg.tokenize
                        )
                    except ExportError as err:  # a precision this engine cannot run here: the other rows stand
                        skipped.append(f"{split} {backend} precision={decode.precision}: {err}")
                        continue
                    rows.append({"split": split, "backend": backend, **row})
        env = environment(dict(translators))
    result = {"schema": 1, "ckpt": cfg.ckpt, "environment": env, "results": rows, "skipped": skipped}
    for line in skipped:
        print(f"skipped: {line}", file=sys.stderr)
    print(f"scored: {'; '.join(scored)}")
    print(to_markdown_table(rows, COLUMNS))
    print(f"\nsignature: {rows[0]['bleu_signature']}; {json.dumps(result['environment'])}")
    if cfg.output is not None:
        with atomic_open(cfg.output) as out:
            json.dump(result, out, indent=2, ensure_ascii=False)
    return result


main = entry_point("benchmark", BenchmarkConfig, run, __doc__)
