"""Where the time of one training step goes, by part of the model, from PyTorch's profiler; and the step's share of
the machine's measured matrix-product peak.

    python scripts/profile_train_step.py --model small --vocab 8000 --src-len 14 --tgt-len 15 --max-tokens 4096

Builds the preset with random weights in training mode (its dropout), AdamW as `nmt-train` builds it, and one batch
of the given lengths filling `--max-tokens` padded positions (as `scripts/flops_per_token.py`). A step is what
`nmt-train` runs per update: the forward pass under bf16 autocast (`--precision 32`: float32), the label-smoothed
loss, backward, the gradient norm and clipping, and the optimizer step; freed memory is kept for reuse, as in
`nmt-train`. Data loading and Lightning's loop are not in it: compare the steps per second here with
`scripts/benchmark_train.py` for their cost.

Every operator's own time (its time minus its children's) goes to one part, by what it works on: the optimizer
step and clipping by the range it runs in; the embeddings by name; then the output projection and loss (a dimension
of the vocabulary's size), the feed-forward blocks (a dimension of `d_ff`), the attention products and softmax (a
4-D [B, H, T, S] operand), the attention's q, k, v and output projections (the other matrix products), layer norm,
and the rest (dropout, residual additions, masks, casts). What the operators' times do not cover is Python and
dispatch between them. The shares are of the profiled step; `--steps` steps after 5 unprofiled ones.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable

import torch
from hydra import compose, initialize_config_dir
from torch.utils.flop_counter import FlopCounterMode

from nmt.cli.hydra_config import CONF_DIR, register_schemas, to_dataclass
from nmt.config import TrainConfig
from nmt.device import retain_freed_memory
from nmt.model import Transformer
from nmt.train.loss import label_smoothed_nll
from nmt.train.optim import build_optimizer

PARTS = (
    "optimizer step and clipping",
    "embeddings",
    "output projection and loss",
    "feed-forward",
    "attention: scores, softmax, weighted sum",
    "attention: q, k, v and output projections",
    "layer norm",
    "dropout, residuals, masks, casts, other",
)
MATRIX_PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::linear", "aten::matmul")


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
    seconds = _time(step, args.steps)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        profiled = _time(step, args.steps)
    parts = _parts(prof.events(), args.vocab, cfg.model.d_ff)
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    peak = _matmul_peak(torch.bfloat16 if bf16 else torch.float32)
    tokens = src.numel() + tgt.numel()
    print(f"{args.model}, {args.precision}, {args.threads} threads: batch {rows} x ({args.src_len} + {args.tgt_len})")
    print(f"step {seconds * 1e3:.1f} ms ({tokens / seconds:,.0f} tokens/s); profiled {profiled * 1e3:.1f} ms")
    print(
        f"{flops / seconds / 1e9:.0f} GFLOP/s of matrix products, {flops / seconds / peak:.0%} of the measured peak "
        f"({peak / 1e9:.0f} GFLOP/s, 2048^3 products)\n"
    )
    print("| part of the step | ms per step | share |")
    print("| --- | ---: | ---: |")
    covered = 0.0
    for part in PARTS:
        ms = parts[part] / args.steps / 1e3
        covered += ms
        print(f"| {part} | {ms:.1f} | {ms / (profiled * 1e3):.0%} |")
    rest = profiled * 1e3 - covered
    print(f"| between operators (Python, dispatch) | {rest:.1f} | {rest / (profiled * 1e3):.0%} |")


def _time(step: Callable[[], None], steps: int) -> float:
    """Seconds per call of `step`, the mean over `steps` calls."""
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def _parts(events: list, vocab: int, d_ff: int) -> dict[str, float]:
    """Microseconds of the operators' own time by part of the step (see the module docstring)."""
    totals: dict[str, float] = defaultdict(float)
    for event in events:
        totals[_part(event, vocab, d_ff)] += event.self_cpu_time_total
    return totals


def _part(event, vocab: int, d_ff: int) -> str:
    parent = event
    while parent is not None:
        if parent.name.startswith("Optimizer."):
            return PARTS[0]
        parent = parent.cpu_parent
    shapes = [shape for shape in event.input_shapes or [] if shape]
    dims = {dim for shape in shapes for dim in shape}
    if "embedding" in event.name:
        return PARTS[1]
    if vocab in dims:
        return PARTS[2]
    if d_ff in dims:
        return PARTS[3]
    if any(len(shape) == 4 for shape in shapes) or "attention" in event.name:
        return PARTS[4]
    if event.name in MATRIX_PRODUCTS:
        return PARTS[5]
    if "layer_norm" in event.name:
        return PARTS[6]
    return PARTS[7]


def _matmul_peak(dtype: torch.dtype) -> float:
    """FLOP/s of the best of 10 products of two 2048 x 2048 matrices."""
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    best = float("inf")
    for _ in range(10):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * 2048**3 / best


if __name__ == "__main__":
    main()
