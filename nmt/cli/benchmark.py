"""`nmt-benchmark`: translate test sets with a grid of decode settings; report quality and speed.

For every test split, backend (torch, or ctranslate2 through an export made on the fly), precision
and (beam size, length penalty) pair, translates the split with the checkpoint and reports BLEU
and chrF (with the sacreBLEU signature), sentences and target tokens per second and wall time,
as a Markdown table (and JSON with output=FILE). The data is the one
the checkpoint was trained on unless data=NAME chooses another. ckpt=[A,B] benchmarks the
ensemble of several checkpoints (backend torch). With glossary=FILE (as nmt-translate's) every setting
also runs with the glossary's terms as constraints, in the next row, and every row reports term use: the
share of the terms found in the output (whole words, exactly and in any case).

Examples:
    nmt-benchmark ckpt=runs/quickstart/model.pt beam_sizes=[1,5] repeats=1
    nmt-benchmark ckpt=model.pt data=multi30k_en_de data.root=../shared/data splits=[test2016,test2017] output=b.json
    nmt-benchmark ckpt=model.pt backends=[torch,ctranslate2] precisions=[32,int8] beam_sizes=[1,5]
    nmt-benchmark ckpt=runs/quickstart/model.pt glossary=terms.tsv beam_sizes=[5]
"""

from __future__ import annotations

import json
import sys

from nmt.atomic import atomic_open, check_writable
from nmt.checkpoint import trained_on
from nmt.cli.hydra_config import entry_point
from nmt.config import BenchmarkConfig
from nmt.errors import UserError
from nmt.evaluate import to_markdown_table
from nmt.evaluate.benchmark import run_benchmark
from nmt.evaluate.metrics import check_scoring

COLUMNS = ["split", "backend", "precision", "beam_size", "length_penalty", "bleu", "chrf", "sent_per_s"]
COLUMNS += ["tgt_tok_per_s", "wall_s"]
# with a glossary: whether the row ran under its terms, and how many of them its output uses
TERM_COLUMNS = COLUMNS[:5] + ["constraints"] + COLUMNS[5:7] + ["term_use", "term_use_any_case"] + COLUMNS[7:]


def run(cfg: BenchmarkConfig) -> dict:
    """Benchmark every (split, decode setting) pair; print a Markdown table and return the JSON result.

    Raises:
        UserError: every setting was skipped (e.g. a precision no backend runs here).
    """
    if cfg.output is not None:
        check_writable(cfg.output)  # before minutes of decoding, not after
    check_scoring(["bleu"], cfg.tokenize)
    data = cfg.data or trained_on(cfg.ckpt)
    measured = run_benchmark(cfg, data)
    rows, skipped, env = measured.rows, measured.skipped, measured.environment
    result = {"schema": 1, "ckpt": cfg.ckpt, "environment": env, "results": rows, "skipped": skipped}
    for line in skipped:
        print(f"skipped: {line}", file=sys.stderr)
    if not rows:
        raise UserError(f"every setting was skipped ({len(skipped)}, above): nothing was measured, no output written.")
    print(f"scored: {'; '.join(measured.scored)}")
    print(to_markdown_table(rows, TERM_COLUMNS if cfg.glossary is not None else COLUMNS))
    print(f"\nsignature: {rows[0]['bleu_signature']}; {json.dumps(result['environment'])}")
    if cfg.output is not None:
        with atomic_open(cfg.output) as out:
            json.dump(result, out, indent=2, ensure_ascii=False)
    return result


main = entry_point("benchmark", BenchmarkConfig, run, __doc__)
