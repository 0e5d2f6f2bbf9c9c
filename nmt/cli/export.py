"""`nmt-export`: write a checkpoint as a CTranslate2 model directory (needs the `ctranslate2` extra).

The directory holds the weights (optionally quantized), the SentencePiece models and `nmt_export.json`,
so `nmt-translate backend=ctranslate2 ckpt=DIR` needs nothing else. It is written beside its place and
renamed into it: an interrupted export leaves no directory behind.

Examples:
    nmt-export ckpt=runs/quickstart/model.pt output=runs/quickstart/ct2 quantization=int8
    nmt-export ckpt=runs/quickstart/checkpoints/last.ckpt output=runs/quickstart/ct2-f16 quantization=float16
"""

from __future__ import annotations

from nmt.cli.hydra_config import entry_point
from nmt.config import ExportConfig
from nmt.ctranslate2.export import export_ctranslate2


def run(cfg: ExportConfig) -> None:
    """Export `cfg.ckpt` to `cfg.output` and say what was written."""
    meta = export_ctranslate2(cfg.ckpt, cfg.output, cfg.quantization)
    print(f"wrote {cfg.output}: {meta['src_lang']}->{meta['tgt_lang']}, {meta['quantization']} weights")


main = entry_point("export", ExportConfig, run, __doc__)
