"""Where the time of one training step goes, by part of the model (`nmt.train.step_profile`); and the step's share
of the machine's measured matrix-product peak.

    python scripts/profile_train_step.py --model small --vocab 8000 --src-len 14 --tgt-len 15 --max-tokens 4096

Builds the preset with random weights in training mode (its dropout), AdamW as `nmt-train` builds it, and one batch
of the given lengths filling `--max-tokens` padded positions (as `scripts/flops_per_token.py`). A step is what
`nmt-train` runs per update: the forward pass under bf16 autocast (`--precision 32`: float32), the label-smoothed
loss, backward, the gradient norm and clipping, and the optimizer step; freed memory is kept for reuse, as in
`nmt-train`. Data loading and Lightning's loop are not in it: compare the steps per second here with
`scripts/benchmark_train.py` for their cost. `--steps` steps are timed, then profiled, after 5 unprofiled ones.
"""

from __future__ import annotations

import argparse

import torch
from hydra import compose, initialize_config_dir
from torch.utils.flop_counter import FlopCounterMode

from nmt.cli.hydra_config import CONF_DIR, register_schemas, to_dataclass
from nmt.config import TrainConfig
from nmt.device import retain_freed_memory
from nmt.model import Transformer
from nmt.train.loss import label_smoothed_nll
from nmt.train.optim import build_optimizer
from nmt.train.step_profile import matmul_peak, profile_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="small")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--src-len", type=int, default=14, help="tokens per source sentence, EOS included")
    parser.add_argument("--tgt-len", type=int, default=15, help="tokens per target sentence, BOS or EOS included")
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--precision", choices=("bf16", "32"), default="bf16")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retain_freed_memory()  # as nmt-train: large temporaries reuse freed memory instead of faulting in new pages
    torch.manual_seed(0)
    register_schemas()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = to_dataclass(compose(config_name="train", overrides=[f"model={args.model}", "run_dir=."]), TrainConfig)
    model = Transformer(cfg.model, args.vocab, args.vocab, 0).train()
    optimizer = build_optimizer(model, cfg.optim, 1000)["optimizer"]
    rows = args.max_tokens // max(args.src_len, args.tgt_len)
    src = torch.randint(4, args.vocab, (rows, args.src_len))
    tgt = torch.randint(4, args.vocab, (rows, args.tgt_len))
    bf16 = args.precision == "bf16"

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(src, tgt)
        loss, _, _ = label_smoothed_nll(logits, tgt, cfg.optim.label_smoothing, 0)
        loss.backward()
        with torch.profiler.record_function("Optimizer.clip"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.gradient_clip_val)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    found = profile_step(step, args.steps, args.vocab, cfg.model.d_ff)
    with FlopCounterMode(display=False) as counter:
        step()
    flops, peak = counter.get_total_flops(), matmul_peak(torch.bfloat16 if bf16 else torch.float32)
    tokens = src.numel() + tgt.numel()
    print(f"{args.model}, {args.precision}, {args.threads} threads: batch {rows} x ({args.src_len} + {args.tgt_len})")
    step_ms, profiled_ms = found.seconds * 1e3, found.profiled * 1e3
    print(f"step {step_ms:.1f} ms ({tokens / found.seconds:,.0f} tokens/s); profiled {profiled_ms:.1f} ms")
    print(
        f"{flops / found.seconds / 1e9:.0f} GFLOP/s of matrix products, {flops / found.seconds / peak:.0%} of the "
        f"measured peak ({peak / 1e9:.0f} GFLOP/s, 2048^3 products)\n"
    )
    print("| part of the step | ms per step | share |")
    print("| --- | ---: | ---: |")
    for part, seconds in found.parts.items():
        print(f"| {part} | {seconds * 1e3:.1f} | {seconds / found.profiled:.0%} |")


if __name__ == "__main__":
    main()
