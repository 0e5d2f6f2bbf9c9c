"""Helpers that several training test modules share: a tiny `TranslationModule` and random batches for bare
Lightning runs, a counter of host-device syncs, and the short `nmt-train` runs' overrides and readers."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nmt.checkpoint import read_raw
from nmt.config import DecodeConfig, ModelConfig, OptimConfig
from nmt.data.batching import collate
from nmt.model import Transformer
from nmt.train.module import TranslationModule

PAD, BOS, EOS, V = 0, 1, 2, 20

# Short runs where quality does not matter: a small corpus and vocabulary, a log row per step, and
# validation that decodes a single token (its BLEU is meaningless; it is there to save checkpoints).
SHORT = [
    "data.builtin_train_size=2000",
    "tokenizer.vocab_size=300",
    "trainer.log_every_n_steps=1",
    "optim.warmup_steps=8",
    "decode.max_len_a=0",
    "decode.max_len_b=1",
]


def make_module(max_bad_steps: int, dropout: float = 0.1, compile: bool = False, **optim) -> TranslationModule:
    """A 1+1-layer model over a vocabulary of `V` in a module that trains without validation."""
    torch.manual_seed(0)
    shape = ModelConfig(d_model=16, n_heads=2, enc_layers=1, dec_layers=1, d_ff=32, dropout=dropout)
    model = Transformer(shape, V, V, PAD)
    optim = OptimConfig(max_bad_steps=max_bad_steps, warmup_steps=2, **optim)
    # No tokenizer, references or metadata: they serve validation, which these runs do not reach.
    return TranslationModule(model, None, optim, DecodeConfig(beam_size=1), [], {}, max_steps=100, compile=compile)


def random_batches(n: int, rows: int = 32, length: int = 30) -> list:
    """`n` batches of random ids below `V` (the same every call)."""
    generator = torch.Generator().manual_seed(0)

    def side() -> list[list[int]]:
        return torch.randint(4, V, (rows, length), generator=generator).tolist()

    return [collate(side(), side(), PAD, BOS, EOS) for _ in range(n)]


class HostReads(TorchDispatchMode):
    """Counts the ops that, on a GPU, make the host wait for the device: reading a value (`item`, `bool`,
    `int`, `float` all run `_local_scalar_dense`) and making a tensor from Python data (`torch.tensor`,
    which copies it to the device and waits)."""

    SYNCING = (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.lift_fresh.default)

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func in self.SYNCING
        return func(*args, **(kwargs or {}))


def metrics(run_dir: str | Path, column: str) -> dict[int, float]:
    """`column` of the run's CSV log by step, from the rows that hold it."""
    with open(Path(run_dir) / "logs" / "metrics.csv", newline="") as f:
        return {int(row["step"]): float(row[column]) for row in csv.DictReader(f) if row[column]}


def weights(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint's raw state dict."""
    return read_raw(checkpoint)["state_dict"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different}"
