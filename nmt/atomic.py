"""Atomic file output: write beside the destination, then rename, so a crash never leaves a torn file."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from nmt.errors import UserError


class OutputPathError(UserError, OSError):
    """An output path cannot be written: its directory is missing or refuses new files."""


def check_writable(path: str | Path) -> None:
    """Refuse early, before hours of work, an output path whose directory is missing or refuses new files.

    The directory is probed by creating (and removing) a temporary file: unlike
    `os.access`, this also catches read-only file systems and holds for root.
    """
    directory = Path(path).parent
    if not directory.is_dir():
        raise OutputPathError(f"output directory {directory} does not exist; create it or choose another path.")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        raise OutputPathError(
            f"output directory {directory} is not writable ({err.strerror}); choose another path."
        ) from None


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success fsync and rename it over `path`.

    On any exception (or a kill) the destination keeps its old content and the
    temporary file is removed (or, after SIGKILL, left as a hidden `.NAME.*.tmp`).
    """
    path = Path(path)
    check_writable(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _plain_open_mode(path))  # mkstemp makes 0600 files; a plain `open()` would not
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside `path`; on success fsync its files and rename it to `path`.

    An existing `path` is replaced whole (the caller checks it may be); on any exception it is kept and
    the temporary directory removed, so `path` is never a half-written directory.
    """
    path = Path(path)
    check_writable(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 directories; a plain `mkdir` would not
        yield tmp
        for file in tmp.iterdir():
            with file.open("rb") as f:
                os.fsync(f.fileno())
        if path.exists():
            old = tmp.with_suffix(".old")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
