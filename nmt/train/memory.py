"""Keep CPU training's resident memory near its working set.

Batches of varying shapes leave glibc's heap fragmented: freed tensor buffers stay
mapped, and resident memory creeps up by gigabytes over a run, far above the working set
(docs/scale.md, "Memory of a whole run"). `malloc_trim` hands the free pages back to the OS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


def _libc() -> Any | None:
    """glibc, if this process runs on it (malloc_trim is glibc-only)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    return libc if hasattr(libc, "malloc_trim") else None


class TrimHeap(Callback):
    """Return freed heap memory to the OS when training starts and every `every` training steps (CPU, glibc
    only; else a no-op). At the start it drops what setting up the data left: sorting the lengths of 10M
    pairs frees a few hundred MB of temporaries, which would otherwise sit under the training peak."""

    def __init__(self, every: int = 10) -> None:
        self.every = every
        self.libc = _libc()

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.libc is not None:
            self.libc.malloc_trim(0)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        if self.libc is not None and trainer.global_step % self.every == 0:
            self.libc.malloc_trim(0)
