"""Helpers that several training test modules share: a tiny `TranslationModule` and random batches for bare
Lightning runs, a counter of host-device syncs, the short `nmt-train` runs' overrides and readers, the epoch
tests' recorded runs and the 2-rank DDP launcher (also run on GPUs by tests/test_gpu.py)."""

from __future__ import annotations

import csv
import dataclasses
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
from conftest import train_config
from lightning.pytorch.callbacks import Callback
from torch.utils._python_dispatch import TorchDispatchMode

from nmt.checkpoint import read_raw
from nmt.config import DecodeConfig, ModelConfig, OptimConfig
from nmt.data.batching import Batch, collate
from nmt.model import Transformer
from nmt.train.module import TranslationModule
from nmt.train.run import train

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


# About 15 batches an epoch (300 short pairs, 400-token batches): 50 steps cross three epoch boundaries.
# A checkpoint is kept at every validation.
EPOCHS = [
    "data.builtin_train_size=300",
    "data.max_tokens=400",
    "data.max_len=40",
    "tokenizer.vocab_size=300",
    "trainer.num_threads=1",
    "trainer.log_every_n_steps=1",
    "trainer.max_steps=50",
    "trainer.val_check_interval=5",
    "save_top_k=-1",
    "optim.warmup_steps=8",
    "model.dropout=0.3",
    "decode.max_len_a=0",
    "decode.max_len_b=1",
]


class RecordBatches(Callback):
    """The epoch and pair indices of every training batch, in the order trained."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, tuple[int, ...]]] = []

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Batch, _: int) -> None:
        self.batches.append((trainer.current_epoch, tuple(batch.index.tolist())))

    def epochs(self) -> dict[int, list[tuple[int, ...]]]:
        out: dict[int, list[tuple[int, ...]]] = {}
        for epoch, indices in self.batches:
            out.setdefault(epoch, []).append(indices)
        return out


def run_epochs(run_dir: Path, cache: Path, extra: list[str] = (), resume: str | None = None) -> RecordBatches:
    cfg = train_config(run_dir, cache, EPOCHS + list(extra))
    if resume is not None:
        cfg = dataclasses.replace(cfg, resume=resume)
    recorder = RecordBatches()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*dirpath has changed.*")  # expected: a new run directory
        train(cfg, callbacks=[recorder])
    return recorder


DDP_WORKER = Path(__file__).with_name("ddp_worker.py")
DDP_COMMON = [
    "data.builtin_train_size=120",
    "data.max_tokens=200",
    "data.max_len=40",
    "tokenizer.vocab_size=200",
    "model.dropout=0.0",
    "trainer.num_threads=1",
    "trainer.log_every_n_steps=1",
    "trainer.val_check_interval=6",
    "optim.warmup_steps=4",
    "decode.max_len_a=0",
    "decode.max_len_b=8",
    "decode.min_len=3",  # with no token twice: hypotheses with text even after 6 updates, so chrF compares something
    "decode.no_repeat_ngram=1",
]
DDP_DROPOUT = ["model.dropout=0.3", "model.attn_dropout=0.1", "model.act_dropout=0.1"]


def launch_two_ranks(run_dir: Path, cache: Path, out: Path, overrides: list[str]) -> dict[int, dict]:
    """Run the worker on 2 ranks; return each rank's record (batches read, weights after each update)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1"]
    command += [f"--master_port={port}", str(DDP_WORKER), str(run_dir), str(cache), str(out), *overrides]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return {rank: torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)}
