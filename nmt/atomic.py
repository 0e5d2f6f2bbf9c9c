"""Atomic file output: write beside the destination, then rename, so a crash never leaves a torn file.

A write of `NAME` goes to a hidden `.NAME.PID-XXXXXXXX.tmp` beside it (PID: the writing process), is
fsynced, renamed over `NAME`, and the directory is fsynced so the rename itself survives a power loss.
A process killed mid-write leaves its temporary behind; `remove_stale_temporaries` clears those.
`sha256_of` names a written file by its content (prepared manifests, back-translation provenance).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from nmt.errors import UserError

RENAME_EXCHANGE = 2  # renameat2 flag, <linux/fs.h>: swap the two paths in one step
AT_FDCWD = -100  # <fcntl.h>: paths relative to the working directory


class OutputPathError(UserError, OSError):
    """An output path cannot be written: its directory is missing or refuses new files."""


def check_writable(path: str | Path, directory: bool = False) -> None:
    """Refuse early, before hours of work, an output path whose directory is missing or refuses new files, or,
    for a file output (not `directory`), a path that is a directory (its final rename would fail).

    The directory is probed by creating (and removing) a temporary file: unlike
    `os.access`, this also catches read-only file systems and holds for root.
    """
    parent = Path(path).parent
    if not parent.is_dir():
        raise OutputPathError(f"output directory {parent} does not exist; create it or choose another path.")
    if not directory and Path(path).is_dir():
        raise OutputPathError(f"output {path} is a directory; name a file in it or choose another path.")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        raise OutputPathError(
            f"output directory {parent} is not writable ({err.strerror}); choose another path."
        ) from None


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success fsync and rename it over `path`.

    On any exception (or a kill) the destination keeps its old content and the
    temporary file is removed (or, after SIGKILL, left as a hidden `.NAME.PID-*.tmp`,
    which `remove_stale_temporaries` clears). The directory is fsynced after the rename.
    """
    path = Path(path)
    check_writable(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
    try:
        os.fchmod(fd, _plain_open_mode(path))  # mkstemp makes 0600 files; a plain `open()` would not
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_directory(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside `path`; on success fsync its files and rename it to `path`.

    An existing `path` is replaced whole (the caller checks it may be); on any exception it is kept and
    the temporary directory removed, so `path` is never a half-written directory. On Linux the
    replacement swaps the two directories in one step (`renameat2` with RENAME_EXCHANGE), so `path`
    exists at every moment; where that call is missing (not Linux, glibc < 2.28, or a file system that
    refuses it) the old directory is renamed away and the new one renamed in, and a crash between the
    two renames leaves `path` missing, its old content in `.NAME.PID-*.old` beside it.
    """
    path = Path(path)
    check_writable(path, directory=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 directories; a plain `mkdir` would not
        yield tmp
        _fsync_tree(tmp)
        if path.exists():
            _replace_directory(tmp, path)
        else:
            os.rename(tmp, path)
            fsync_directory(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_directory(new: Path, path: Path) -> None:
    """Put the directory `new` in the place of the existing `path`, then remove the old content."""
    if exchange_paths(new, path):  # `new` now names the old content
        fsync_directory(path.parent)
        shutil.rmtree(new)
    else:
        _replace_by_two_renames(new, path)


def _replace_by_two_renames(new: Path, path: Path) -> None:
    """The fallback of `_replace_directory`: for a moment `path` does not exist."""
    old = new.with_suffix(".old")
    os.rename(path, old)
    os.rename(new, path)
    fsync_directory(path.parent)
    shutil.rmtree(old)


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically with Linux `renameat2(RENAME_EXCHANGE)`.

    Returns:
        False, having changed nothing, where the call is unavailable: not Linux, a C library without
        it, a kernel before 3.15 (ENOSYS) or a file system that refuses the flag (EINVAL).

    Raises:
        OSError: the swap failed for another reason (a path missing, no permission).
    """
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """libc's `renameat2` (glibc >= 2.28), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename into it) to disk, as a file's fsync flushes its content.

    File systems that cannot fsync a directory (EINVAL, EBADF) are skipped, as PostgreSQL does.
    """
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Fsync every file under `root`, then every directory (their entries), `root` last."""
    directories = [root]
    for entry in sorted(root.rglob("*")):
        if entry.is_dir():
            directories.append(entry)
        else:
            with entry.open("rb") as f:
                os.fsync(f.fileno())
    for directory in reversed(directories):
        fsync_directory(directory)


def _temporary_prefix(path: Path) -> str:
    """`.NAME.PID-`: hidden, beside `path`, naming the writing process (see `remove_stale_temporaries`)."""
    return f".{path.name}.{os.getpid()}-"


def remove_stale_temporaries(directory: str | Path, name: str | None) -> int:
    """Remove what killed writes of `directory/name` left behind; never any other file.

    Only the names `atomic_open` and `atomic_directory` create are touched: `.NAME.PID-XXXXXXXX.tmp`
    (a file or a directory) whose process PID is gone, and `.NAME.XXXXXXXX.tmp` of nmt versions that
    wrote no PID. The temporary of a write in progress in a live process is kept. PIDs are checked on
    this machine only: call it before any process on another machine may write `name` there (training
    does at start-up). The `.NAME.PID-XXXXXXXX.old` of an interrupted two-rename replacement is kept:
    it can hold the only copy.

    Args:
        directory: where `name` is written.
        name: the file or directory name, e.g. `last.ckpt`; None: every name (a directory of checkpoints
            whose names hold their step and score).

    Returns:
        how many temporaries were removed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    stem = ".+" if name is None else re.escape(name)
    pattern = re.compile(rf"\.{stem}\.(?:(\d+)-)?[a-z0-9_]{{8}}\.tmp")  # _temporary_prefix, then mkstemp's
    removed = 0
    for entry in directory.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and remove_if_writer_gone(entry, int(match[1]) if match[1] else None):
            removed += 1
    return removed


def remove_if_writer_gone(leftover: Path, pid: int | None) -> bool:
    """Remove a temporary file or directory unless its writer, process `pid`, is alive; None: no writer known.

    A reused PID keeps a leftover that could go: the safe mistake. Returns whether it was removed.
    """
    if pid is not None and process_alive(pid):
        return False
    if leftover.is_dir() and not leftover.is_symlink():
        shutil.rmtree(leftover, ignore_errors=True)
    else:
        leftover.unlink(missing_ok=True)
    return True


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this machine (one of another user's counts)."""
    if pid <= 0:  # `kill` would address a process group, not a process
        return False
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def _plain_open_mode(path: Path) -> int:
    """The permissions `open(path, "w")` would leave: an existing file's own, else 0o666 less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read from /proc where it is shown (Linux), else by setting and restoring it.

    The fallback is racy: another thread creating a file between the two `os.umask`
    calls would get umask 0. Nothing in nmt creates files from several threads.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0)
    os.umask(old)
    return old


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
