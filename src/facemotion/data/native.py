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
from facemotion.face.arkit import ARKIT_BLENDSHAPES

MANIFEST = "manifest.jsonl"
REQUIRED_KEYS = ("id", "speaker", "split", "fps", "audio", "motion", "duration")


def read_manifest(root: str | os.PathLike, split: str | None = None, check_files: bool = False) -> list[dict]:
    """Read ``root/manifest.jsonl``; return its records (optionally only one ``split``).

    A truncated last line (an interrupted writer) is ignored. With ``check_files`` every record
    (of any split) is checked before anything else happens: its audio file exists and its motion
    file loads with the right arrays (:func:`load_motion`).

    Raises:
        DataError: the directory has no manifest, or a complete line is not a JSON object with the
            required keys, or (``check_files``) a clip's file is missing or malformed; the message
            starts with ``MANIFEST:LINE:``.
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
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: not a JSON line ({exc})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{n}: not a JSON object")
            missing = [k for k in REQUIRED_KEYS if k not in rec]
            if missing:
                raise DataError(f"{path}:{n}: missing keys {missing}")
            if check_files:
                try:
                    _check_clip(root, rec)
                except DataError as exc:
                    raise DataError(f"{path}:{n}: {exc}") from None
            if split is None or rec["split"] == split:
                records.append(rec)
    return records


def _check_clip(root: str | os.PathLike, record: dict) -> None:
    audio = Path(root) / record["audio"]
    if not audio.is_file():
        raise DataError(f"{audio}: audio file missing" if not audio.exists() else f"{audio}: not a file")
    load_motion(root, record)


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

    Returns at least ``blendshapes [T, 52]`` and ``head_rotation [T, 3]`` (T >= 1, the same T).

    Raises:
        DataError: the ``.npz`` is missing, unreadable, or lacks those arrays in those shapes
            (the message names the file).
    """
    path = Path(root) / record["motion"]
    if not path.is_file():
        raise DataError(f"{path}: motion file missing" if not path.exists() else f"{path}: not a file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile, zlib, pickle and format errors all mean "not a valid npz"
        raise DataError(f"{path}: not a readable .npz ({type(exc).__name__}: {exc})") from None
    for k, width in (("blendshapes", len(ARKIT_BLENDSHAPES)), ("head_rotation", 3)):
        if k not in data:
            raise DataError(f"{path}: no '{k}' array")
        shape = data[k].shape
        if len(shape) != 2 or shape[1] != width or shape[0] < 1:
            raise DataError(f"{path}: '{k}' has shape {shape}, expected [T, {width}]")
    if len(data["head_rotation"]) != len(data["blendshapes"]):
        raise DataError(f"{path}: {len(data['blendshapes'])} frames of blendshapes but "
                        f"{len(data['head_rotation'])} of head_rotation")
    return data
