"""Atomic output: write under a temporary name in the target's directory, then ``os.replace``.

A writer that fails (or is interrupted) part-way leaves nothing under the final name, and a
reader never sees a half-written file. A writer killed outright (SIGKILL) leaves its temporary
behind; :func:`remove_stale_temporaries` removes such leftovers of this naming
(``.STEM.tmp-XXXXXXXX.SUFFIX`` and ``.NAME.old-XXXXXXXX``) from a folder no one else writes into.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

#: names of :func:`atomic_path`'s temporaries (and of the directories it is replacing)
TEMPORARY_NAME = re.compile(r"\..+\.(tmp|old)-[0-9a-f]{8}(\.[^.]*)?")


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of :func:`atomic_path` (names matching :data:`TEMPORARY_NAME`) that
    killed runs left in ``directory`` (not recursive); return what was removed.

    Call it only while no other process writes into ``directory`` (hold
    :func:`facemotion.export.outputs.output_folder`), or a live writer loses its file.
    """
    directory = Path(directory)
    stale = [p for p in directory.iterdir() if TEMPORARY_NAME.fullmatch(p.name)] if directory.is_dir() else []
    for path in stale:
        _remove(path)
    return stale


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
    tmp = final.with_name(f".{final.stem}.tmp-{_tag()}{final.suffix}")
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if directory and final.exists():
            old = final.with_name(f".{final.name}.old-{_tag()}")
            os.replace(final, old)
            os.replace(tmp, final)
            _remove(old)
        else:
            os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
