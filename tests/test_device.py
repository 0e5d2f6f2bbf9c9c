"""Devices and CPU threads: a clear refusal for a device that is not there, fewer threads on a busy machine."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nmt import device
from nmt.device import DeviceError, busy_cores, resolve_device, set_threads, usable_cores


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:x"])
def test_an_unknown_device_is_refused_naming_the_choices(name: str) -> None:
    with pytest.raises(DeviceError, match=rf"`device` must be auto, cpu, cuda or cuda:N, but is '{name}' instead"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: device=cuda is valid here")
def test_cuda_without_a_gpu_is_refused_with_what_to_do() -> None:
    with pytest.raises(DeviceError, match=r"device=cuda was asked for, but .*; use device=cpu \(or device=auto\)"):
        resolve_device("cuda")


def test_auto_and_cpu_always_work() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.skipif(usable_cores() < 2, reason="one core: every thread count gives 1")
def test_auto_threads_leave_a_busy_core_alone(restore_threads) -> None:
    """With a busy process beside it, `num_threads=0` takes at most the other cores (OpenMP threads that share
    a core with a busy process stall the rest: see scripts/benchmark_threads.py)."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # running, and seen by the scheduler
        assert busy_cores() >= 1
        assert set_threads(0) <= usable_cores() - 1
    finally:
        busy.kill()
        busy.wait()


def test_an_explicit_thread_count_is_taken_as_given(restore_threads) -> None:
    assert set_threads(1) == 1
    assert set_threads(1, processes=4) == 1


@pytest.mark.parametrize(("free", "processes", "threads"), [(8, 1, 8), (8, 2, 4), (8, 3, 2), (2, 4, 1)])
def test_auto_threads_share_the_free_cores_out_over_processes_started_together(
    restore_threads, monkeypatch, free, processes, threads
) -> None:
    """DDP's CPU ranks each count the free cores while the others wait: without sharing, 2 ranks on 8 cores would
    run 16 spinning threads."""
    monkeypatch.setattr(device, "usable_cores", lambda: free)
    monkeypatch.setattr(device, "busy_cores", lambda: 0)
    assert set_threads(0, processes) == threads


@pytest.mark.parametrize(("has_bf16", "warned"), [(False, True), (True, False), (None, False)])
def test_bf16_on_a_cpu_without_bf16_units_is_warned_about(monkeypatch, capsys, has_bf16, warned) -> None:
    monkeypatch.setattr(device, "cpu_has_bf16", lambda: has_bf16)
    device.warn_if_slow_bf16("bf16-mixed", torch.device("cpu"), "trainer.precision")
    device.warn_if_slow_bf16("32", torch.device("cpu"), "trainer.precision")  # never
    err = capsys.readouterr().err
    assert ("trainer.precision=32 is the fast choice" in err) is warned
    assert err.count("warning") == int(warned)


def test_cpu_has_bf16_reads_the_cpu_flags(monkeypatch) -> None:
    real_read = Path.read_text

    def fake(path: Path, *args, **kwargs) -> str:
        if str(path) == "/proc/cpuinfo":
            return "processor\t: 0\nflags\t\t: fpu sse2 avx2 amx_bf16\n"
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", fake)
    assert device.cpu_has_bf16() is True


def test_freed_memory_is_retained_on_glibc() -> None:
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert device.retain_freed_memory() is True
