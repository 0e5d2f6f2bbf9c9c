"""`nmt-backtranslate`: a synthetic parallel corpus from target-language text, with a reverse model.

Writes `output/train.{src}` (the reverse model's translations, each after `tag`) and
`output/train.{tgt}` (the input lines) with `provenance.json`, atomically; run again with the same
model, input, decode options and tag, it reuses what it wrote. Train the forward model on real and
synthetic pairs together, reserving the tag as one piece (see the README's back-translation section):

Examples:
    nmt-backtranslate ckpt=runs/de_en/model.pt input=mono.de output=bt decode=sample decode.top_p=0.9
    nmt-train data=files data.root=. 'data.train=[real/train,real/train,bt/train]' data.valid=real/dev \\
        data.src_lang=en data.tgt_lang=de 'tokenizer.user_symbols=["<bt>"]'
"""

from __future__ import annotations

from nmt.cli.hydra_config import entry_point
from nmt.config import BacktranslateConfig
from nmt.device import retain_freed_memory, set_threads
from nmt.workflows.backtranslate import backtranslate


def run(cfg: BacktranslateConfig) -> None:
    """Back-translate `cfg.input` into `cfg.output`, or say that the corpus there is reused."""
    set_threads(cfg.num_threads)
    retain_freed_memory()
    record, reused = backtranslate(cfg.ckpt, cfg.input, cfg.output, cfg.decode, cfg.tag, cfg.device)
    what = "reused" if reused else "wrote"
    langs = f"{record['provenance']['src_lang']}-{record['provenance']['tgt_lang']}"
    empty = record["empty_translations"]
    print(f"{what} {cfg.output}: {record['pairs']:,} synthetic {langs} pairs ({empty} empty translations dropped)")


main = entry_point("backtranslate", BacktranslateConfig, run, __doc__)
