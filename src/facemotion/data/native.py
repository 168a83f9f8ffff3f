"""The native dataset format (DESIGN.md): ``manifest.jsonl`` plus one ``.npz`` per clip.

Each manifest line is a JSON object with keys ``id``, ``speaker``, ``split``
(``train``/``val``/``test``), ``fps``, ``audio`` and ``motion`` (paths relative to the
dataset directory), ``duration`` (seconds), ``text`` and labels (``emotion``,
``intensity``, ``prompt``, ...).  A motion ``.npz`` has the layout of the exported
``.npz``: ``blendshapes [T, 52]`` (ARKit order), ``blendshape_names [52]``,
``head_rotation [T, 3]`` (radians, pitch/yaw/roll) and ``fps``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from facemotion.errors import DataError

MANIFEST = "manifest.jsonl"
REQUIRED_KEYS = ("id", "speaker", "split", "fps", "audio", "motion", "duration")


def read_manifest(root: str | os.PathLike, split: str | None = None) -> list[dict]:
    """Read ``root/manifest.jsonl``; return its records (optionally only one ``split``).

    A truncated last line (an interrupted writer) is ignored.

    Raises:
        DataError: the directory has no manifest, or a complete line lacks a required key.
    """
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: no manifest (is {root} a facemotion dataset?)")
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith("\n"):
                break  # partial line of an interrupted append
            if not line.strip():
                continue
            rec = json.loads(line)
            missing = [k for k in REQUIRED_KEYS if k not in rec]
            if missing:
                raise DataError(f"{path}:{n}: missing keys {missing}")
            if split is None or rec["split"] == split:
                records.append(rec)
    return records


def append_manifest(root: str | os.PathLike, records: Iterable[dict]) -> None:
    """Append ``records`` to ``root/manifest.jsonl`` in one write followed by fsync.

    Call only after the clips' audio and motion files are complete on disk, so that
    every manifest line points at finished files.
    """
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    with open(Path(root) / MANIFEST, "a", encoding="utf-8") as f:
        f.write(lines)
        f.flush()
        os.fsync(f.fileno())


def load_motion(root: str | os.PathLike, record: dict) -> dict[str, np.ndarray]:
    """Load the motion arrays of one manifest ``record`` as a dict of numpy arrays.

    Returns at least ``blendshapes [T, 52]`` and ``head_rotation [T, 3]`` (float32).

    Raises:
        DataError: the ``.npz`` is missing or lacks those arrays.
    """
    path = Path(root) / record["motion"]
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise DataError(f"{path}: motion file missing") from None
    for k in ("blendshapes", "head_rotation"):
        if k not in data:
            raise DataError(f"{path}: no '{k}' array")
    return data
