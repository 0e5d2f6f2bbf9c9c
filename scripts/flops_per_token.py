"""Floating-point operations of one training step per real token, counted by PyTorch (forward + backward).

    python scripts/flops_per_token.py --model base --vocab 32000 --src-len 28 --tgt-len 30 --max-tokens 4096

Builds the preset with random weights, one batch of the given lengths filling `--max-tokens` padded
positions, and counts the FLOPs of the loss and its gradients with `torch.utils.flop_counter` (matrix
products and attention; elementwise work is not counted, which is how training FLOPs are usually quoted).
Dividing a device's sustained FLOP rate by this gives its tokens per second.
"""

from __future__ import annotations

import argparse

import torch
from hydra import compose, initialize_config_dir
from torch.utils.flop_counter import FlopCounterMode

from nmt.cli.hydra_config import CONF_DIR, register_schemas, to_dataclass
from nmt.config import TrainConfig
from nmt.model import Transformer
from nmt.train.loss import label_smoothed_nll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--src-len", type=int, default=28, help="source tokens per sentence, + EOS")
    parser.add_argument("--tgt-len", type=int, default=30, help="target tokens per sentence, + BOS/EOS")
    parser.add_argument("--max-tokens", type=int, default=4096)
    args = parser.parse_args()
    register_schemas()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = to_dataclass(compose(config_name="train", overrides=[f"model={args.model}", "run_dir=."]), TrainConfig)
    model = Transformer(cfg.model, args.vocab, args.vocab, 0)
    rows = args.max_tokens // max(args.src_len, args.tgt_len)
    src = torch.randint(4, args.vocab, (rows, args.src_len))
    tgt = torch.randint(4, args.vocab, (rows, args.tgt_len))
    with FlopCounterMode(display=False) as counter:
        loss, _, _ = label_smoothed_nll(model(src, tgt), tgt, 0.1, 0)
        loss.backward()
    tokens = src.numel() + tgt.numel()
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.model}: {params / 1e6:.1f}M parameters, batch {rows} x ({args.src_len} + {args.tgt_len}) tokens")
    print(f"{counter.get_total_flops() / tokens / 1e6:.1f} MFLOP per real source+target token (forward + backward)")


if __name__ == "__main__":
    main()
