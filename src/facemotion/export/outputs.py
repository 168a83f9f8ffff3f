"""Output paths checked before the work, never overwritten by surprise, never written by two runs.

- :func:`check_output`: a file (or mesh-sequence folder) can be written at a path: nothing of
  the other kind is there, and an existing one is refused unless ``overwrite`` (ffmpeg's ``-y``).
- :func:`output_folder`: hold a folder for one run: create it (its parents too), take an
  exclusive lock ``FOLDER/.facemotion.lock`` (``fcntl.flock``; a second run into the same folder
  is refused with one line, or waits), remove temporaries that killed runs left there
  (:func:`facemotion.export.atomic.remove_stale_temporaries`), and on release remove the lock
  file and the folders it created if they stayed empty (a run that failed writes nothing).
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from facemotion.errors import OutputError
from facemotion.atomic import remove_stale_temporaries

LOCK_NAME = ".facemotion.lock"


def check_output(path: str | os.PathLike, directory: bool = False, overwrite: bool = False) -> Path:
    """Check that an output file (``directory=False``) or folder can be written at ``path``.

    Run it while holding :func:`output_folder` of the parent folder (which checks that the folder
    can be created and written), so nothing appears at ``path`` between the check and the write.

    Returns:
        ``path`` as a Path.
    Raises:
        OutputError: a folder is at ``path`` where a file goes (or a file where a folder goes),
            or ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if directory and path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file, not a folder (the output is a folder of files)")
    if not directory and path.is_dir():
        raise OutputError(f"{path}: is a folder (the output is a file; give a file name)")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists (pass --overwrite to replace it)")
    return path


def _create(directory: Path) -> list[Path]:
    """mkdir -p ``directory``; return the folders created, outermost first."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()][::-1]
    for d in missing:
        try:
            d.mkdir()
        except FileExistsError:
            if not d.is_dir():
                raise OutputError(f"{d}: is a file, not a folder (output folder {directory})") from None
        except NotADirectoryError:
            blocker = next(p for p in d.parents if p.exists())
            raise OutputError(f"{directory}: cannot create it: {blocker} is a file, not a folder") from None
        except OSError as exc:
            raise OutputError(f"{directory}: cannot create the output folder ({exc.strerror})") from None
    if not directory.is_dir():
        raise OutputError(f"{directory}: is a file, not a folder (give an output folder)")
    return missing


def _lock(lock_path: Path, wait: bool) -> int:
    """Open and flock ``lock_path`` (exclusive); return the descriptor.

    Retries when the file it locked was removed meanwhile by the run that released it, so two
    runs can never both hold the folder.
    """
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"{lock_path.parent}: output folder not writable ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            if not wait:
                os.close(fd)
                raise OutputError(f"{lock_path.parent}: another facemotion run (pid {holder}) is writing "
                                  "into this folder; wait for it to finish or choose another") from None
            print(f"facemotion: waiting for another run (pid {holder}) to finish writing into "
                  f"{lock_path.parent}", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextmanager
def output_folder(directory: str | os.PathLike, wait: bool = False) -> Iterator[Path]:
    """Hold ``directory`` for this run (see the module docstring); yields it as a Path.

    Args:
        directory: the output folder (created with its parents when missing).
        wait: when another run holds it, wait for that run (saying so on stderr) instead of
            refusing.
    Raises:
        OutputError: the folder cannot be created (a file is in the way, no permission) or
            written, or another run holds it (``wait`` False).
    """
    directory = Path(directory)
    created = _create(directory)
    lock_path = directory / LOCK_NAME
    try:
        fd = _lock(lock_path, wait)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        remove_stale_temporaries(directory)
        yield directory
    finally:
        lock_path.unlink(missing_ok=True)
        os.close(fd)
        _remove_empty(created)


def _remove_empty(created: list[Path]) -> None:
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                raise
            return
