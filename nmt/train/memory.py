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
        self._trimmed = 0  # the update after which it last trimmed: once per update, not per accumulated batch

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._trimmed = trainer.global_step
        if self.libc is not None:
            self.libc.malloc_trim(0)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if self.libc is not None and step != self._trimmed and step % self.every == 0:
            self._trimmed = step
            self.libc.malloc_trim(0)
