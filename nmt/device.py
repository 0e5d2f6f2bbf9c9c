"""Choosing the device and the number of CPU threads."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
from pathlib import Path

import torch

from nmt.errors import UserError


class DeviceError(UserError, ValueError):
    """The requested device does not exist or is not usable on this machine."""


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available, else CPU; other names (`cpu`, `cuda`, `cuda:1`) must be usable here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"`device` must be auto, cpu, cuda or cuda:N, but is {name!r} instead.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "this PyTorch has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceError(f"device={name} was asked for, but {build}; use device=cpu (or device=auto).")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device={name} was asked for, but only {torch.cuda.device_count()} GPU(s) exist.")
    elif device.type != "cpu":
        raise DeviceError(f"`device` must be auto, cpu, cuda or cuda:N, but is {name!r} instead.")
    return device


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and `taskset` narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def busy_cores(samples: int = 3, interval: float = 0.02) -> int:
    """Cores other tasks keep busy right now: the runnable tasks in `/proc/loadavg`, less this one.

    The least of a few samples, so a short-lived process is not taken for a busy core; 0 where the
    kernel does not say (not Linux).
    """
    counts = []
    for i in range(samples):
        try:
            running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        except (OSError, IndexError, ValueError):
            return 0
        counts.append(running - 1)  # this process is running while it reads
        if i + 1 < samples:
            time.sleep(interval)
    return max(0, min(counts))


def set_threads(num_threads: int, processes: int = 1) -> int:
    """Use `num_threads` intra-op threads, or with 0 one per free core, shared out over the `processes` that start
    together on this machine (DDP's ranks on CPU: each would find every core free); returns the count.

    PyTorch's OpenMP threads spin while they wait for each other, so a thread that shares its core
    with another busy process stalls all the others, and more threads than free cores can run slower
    than fewer (`scripts/benchmark_threads.py`; docs/engines.md, "CPU threads on a shared machine").
    So 0 (auto) counts the cores that are not busy when the command starts, and never takes more
    threads than there are free cores.
    """
    count = num_threads or max(1, (usable_cores() - busy_cores()) // max(1, processes))
    torch.set_num_threads(max(1, count))
    return torch.get_num_threads()


def cpu_has_bf16() -> bool | None:
    """Whether this CPU computes bf16 in hardware (AMX or AVX512-BF16); None where /proc/cpuinfo is absent.

    Elsewhere PyTorch emulates bf16 matrix products, and they run many times slower than float32
    (docs/scale.md, "Training speed"), so `auto` precision must not choose bf16 there.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return bool({"amx_bf16", "avx512_bf16"} & set(flags))


def training_precision(precision: str, device: torch.device) -> str:
    """`auto` made concrete: bf16-mixed where the device computes bf16 in hardware, else 32; others as they are."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32"
    return "bf16-mixed" if cpu_has_bf16() else "32"


def warn_if_slow_bf16(precision: str, device: torch.device, key: str) -> None:
    """One warning on stderr when bf16 is asked for on a CPU that would emulate it."""
    if "bf16" in precision and device.type == "cpu" and cpu_has_bf16() is False:
        print(
            f"warning: {key}={precision}, but this CPU has no bf16 instructions (AMX or AVX512-BF16), so bf16 "
            f"runs emulated and far slower than float32 here; {key}=32 is the fast choice on this machine.",
            file=sys.stderr,
        )


def retain_freed_memory() -> bool:
    """Keep freed memory in this process for reuse (glibc only); returns whether it could.

    glibc serves every allocation above 32 MiB with a fresh mmap and returns it on free, so each
    decoding step's [rows, vocabulary] log-probs and each reordered cache would come back as new
    pages, faulted in one by one, many times slower than reused memory (docs/engines.md, "Freed
    memory kept for reuse"). Raising the mmap and trim thresholds keeps such blocks in the heap; the
    peak resident size is unchanged, but memory is not returned to the system before the process ends.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def release_freed_memory() -> None:
    """Return the heap's free memory to the system now (glibc's malloc_trim), e.g. before measuring a peak."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing is retained
        ctypes.CDLL("libc.so.6").malloc_trim(0)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
