"""Choosing the device and the number of CPU threads."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available, else CPU; other names pass through (`cpu`, `cuda:1`)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_threads(num_threads: int) -> int:
    """Use `num_threads` intra-op threads, or one per available core when 0; returns the count."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = num_threads or cores
    torch.set_num_threads(max(1, count or 1))
    return torch.get_num_threads()
