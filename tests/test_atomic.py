"""Atomic output (`nmt.atomic`): checkpoints stream to disk, renames are made durable, a directory is
replaced with no moment where it is missing, and the temporaries of killed writes are cleared."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import torch

from nmt import atomic
from nmt.atomic import atomic_directory, atomic_open, exchange_paths, remove_stale_temporaries
from nmt.checkpoint import read_raw, save_checkpoint

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")


def test_saving_a_checkpoint_streams_its_tensors_to_disk(tmp_path) -> None:
    """No in-memory copy of the serialised checkpoint: Python allocations stay far below the tensor's size."""
    weights = torch.randn(8 << 20)  # 32 MiB of float32
    tracemalloc.start()
    try:
        save_checkpoint({"state_dict": {"model.w": weights}, "global_step": 3}, tmp_path / "big.ckpt")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    size = weights.numel() * weights.element_size()
    assert peak < size / 8, f"saving a {size / 2**20:.0f} MiB tensor peaked at {peak / 2**20:.1f} MiB"
    assert torch.equal(read_raw(tmp_path / "big.ckpt")["state_dict"]["model.w"], weights)


def _record_fsyncs(monkeypatch, destination: Path) -> list[tuple[bool, bool]]:
    """Patch `os.fsync` to record, for each call, whether it syncs a directory and whether `destination`
    already exists with its new content (the rename is done)."""
    calls: list[tuple[bool, bool]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        is_directory = stat.S_ISDIR(os.fstat(fd).st_mode)
        calls.append((is_directory, (destination / "new").exists() or _reads(destination) == "new"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def _reads(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def test_atomic_open_fsyncs_the_directory_after_the_rename(tmp_path, monkeypatch) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")
    calls = _record_fsyncs(monkeypatch, path)
    with atomic_open(path) as f:
        f.write("new")
    assert calls[0] == (False, False)  # the file's content, before the rename
    assert (True, True) in calls, calls  # its directory, after it


@pytest.mark.parametrize("existing", [False, True], ids=["new", "replacing"])
def test_atomic_directory_fsyncs_its_parent_after_the_rename(tmp_path, monkeypatch, existing) -> None:
    path = tmp_path / "out"
    if existing:
        path.mkdir()
        (path / "old").write_text("old")
    calls = _record_fsyncs(monkeypatch, path)
    with atomic_directory(path) as tmp:
        (tmp / "new").write_text("new")
    assert (True, True) in calls, calls
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and [p.name for p in path.iterdir()] == ["new"]


def _replace(path: Path) -> None:
    with atomic_directory(path) as tmp:
        (tmp / "new.txt").write_text("new")


def _old_directory(path: Path) -> None:
    path.mkdir()
    (path / "old.txt").write_text("old")
    (path / "sub").mkdir()
    (path / "sub" / "older.txt").write_text("older")


def _contents(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def test_replacing_a_directory_never_leaves_its_path_missing(tmp_path, monkeypatch) -> None:
    """Every rename during the replacement leaves `path` in place (the old code renamed it away first)."""
    path = tmp_path / "out"
    _old_directory(path)
    real_rename = os.rename

    def rename(src, dst, **kwargs) -> None:
        real_rename(src, dst, **kwargs)
        assert path.is_dir(), f"{path} missing after renaming {src} to {dst}"

    monkeypatch.setattr(os, "rename", rename)
    _replace(path)
    assert _contents(path) == {"new.txt": "new"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # the old content removed, no temporaries


def test_a_directory_may_hold_directories(tmp_path) -> None:
    """Every file is fsynced, however deep (the old code opened a subdirectory as a file and failed)."""
    path = tmp_path / "out"
    _old_directory(path)
    with atomic_directory(path) as tmp:
        (tmp / "sub" / "deeper").mkdir(parents=True)
        (tmp / "sub" / "deeper" / "new.txt").write_text("new")
    assert _contents(path) == {"sub/deeper/new.txt": "new"}


@linux_only
def test_on_linux_the_directories_are_exchanged_not_renamed_twice(tmp_path, monkeypatch) -> None:
    def fallback(new: Path, path: Path) -> None:
        raise AssertionError("the two-rename fallback was taken on Linux")

    monkeypatch.setattr(atomic, "_replace_by_two_renames", fallback)
    path = tmp_path / "out"
    _old_directory(path)
    _replace(path)
    assert _contents(path) == {"new.txt": "new"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_without_renameat2_the_directory_is_replaced_by_two_renames(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(atomic, "_renameat2", lambda: None)  # as on macOS, or glibc < 2.28
    path = tmp_path / "out"
    _old_directory(path)
    _replace(path)
    assert _contents(path) == {"new.txt": "new"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@linux_only
def test_exchange_swaps_two_paths_and_names_a_missing_one(tmp_path) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").mkdir()
    assert exchange_paths(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a").is_dir() and (tmp_path / "b").read_text() == "a"
    with pytest.raises(FileNotFoundError, match="missing"):
        exchange_paths(tmp_path / "a", tmp_path / "missing")


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The PID of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_temporaries_of_one_name_are_removed_and_nothing_else(tmp_path, dead_pid) -> None:
    stale = [f".last.ckpt.{dead_pid}-abc_1234.tmp", ".last.ckpt.k2x9_q0a.tmp"]  # a dead writer's; an older nmt's
    (tmp_path / stale[0]).write_bytes(b"half a checkpoint")
    (tmp_path / stale[1]).mkdir()  # an `atomic_directory` temporary, with content
    (tmp_path / stale[1] / "model.bin").write_bytes(b"half a model")
    kept = [
        "last.ckpt",
        f".last.ckpt.{os.getpid()}-abcdefgh.tmp",  # a write in progress in a live process (this one)
        f".last.ckpt.{dead_pid}-abcdefgh.old",  # the only copy after an interrupted two-rename replacement
        f".best.ckpt.{dead_pid}-abcdefgh.tmp",  # another name
        ".last.ckpt.abc.tmp",  # not mkstemp's eight characters
        ".last.ckpt.ABCDEFGH.tmp",
        "last.ckpt.abcdefgh.tmp",  # not hidden
        "notes.tmp",
    ]
    for name in kept:
        (tmp_path / name).write_text("keep")
    assert remove_stale_temporaries(tmp_path, "last.ckpt") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    assert remove_stale_temporaries(tmp_path, "last.ckpt") == 0
    assert remove_stale_temporaries(tmp_path / "missing", "last.ckpt") == 0


def test_stale_temporaries_of_every_name(tmp_path, dead_pid) -> None:
    names = [f".step000100-bleu12.50.ckpt.{dead_pid}-abcdefgh.tmp", f".last.ckpt.{dead_pid}-abcdefgh.tmp"]
    for name in [*names, "step000100-bleu12.50.ckpt", f".last.ckpt.{os.getpid()}-abcdefgh.tmp"]:
        (tmp_path / name).write_text("x")
    assert remove_stale_temporaries(tmp_path, None) == 2
    assert not any((tmp_path / name).exists() for name in names) and len(list(tmp_path.iterdir())) == 2


def test_a_temporary_names_its_writer(tmp_path) -> None:
    """`remove_stale_temporaries` relies on the writer's PID in the name."""
    with atomic_open(tmp_path / "out.txt") as f:
        [temporary] = [p.name for p in tmp_path.iterdir()]
        assert temporary.startswith(f".out.txt.{os.getpid()}-") and temporary.endswith(".tmp")
        f.write("x")
    with atomic_directory(tmp_path / "out") as tmp:
        assert tmp.name.startswith(f".out.{os.getpid()}-") and tmp.name.endswith(".tmp")


def test_an_output_that_is_a_directory_is_refused_before_any_work(tmp_path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(atomic.OutputPathError, match=r"output .*out is a directory"):
        atomic.check_writable(tmp_path / "out")
    atomic.check_writable(tmp_path / "out" / "file.txt")  # a file inside it is fine
