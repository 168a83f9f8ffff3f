"""Atomic output: write under a temporary name in the target's directory, then ``os.replace``.

A writer that fails (or is interrupted) part-way leaves nothing under the final name, and a
reader never sees a half-written file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(final: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success move it over ``final``.

    The temporary name keeps ``final``'s suffix (libraries such as USD and ffmpeg choose the
    format from it). With ``directory=True`` an empty temporary directory is created and
    yielded; it replaces a directory already at ``final`` as a whole. On any exception the
    temporary file or directory is removed and the exception propagates, so ``final`` is left
    as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.tmp-{uuid.uuid4().hex[:8]}{final.suffix}")
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if directory and final.exists():
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
            os.replace(tmp, final)
            _remove(old)
        else:
            os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
