"""The native dataset format (DESIGN.md): ``manifest.jsonl`` plus one ``.npz`` per clip.

Each manifest line is a JSON object with keys ``id``, ``speaker``, ``split``
(``train``/``val``/``test``), ``fps``, ``audio`` and ``motion`` (paths relative to the
dataset directory), ``duration`` (seconds), ``text`` and labels (``emotion``,
``intensity``, ``prompt``, ...).  A motion ``.npz`` has the layout of the exported
``.npz`` of its face space (``FaceSpace.to_arrays``): for the blendshape space
``blendshapes [T, 52]`` (ARKit order), ``blendshape_names [52]``, ``head_rotation [T, 3]``
(radians, pitch/yaw/roll) and ``fps``; for a vertex space ``vertices [T, V, 3]`` metres
(or ``displacements``), optionally ``template [V, 3]``, ``faces`` and ``head_rotation``.
A space turns a clip's arrays into motion vectors with ``space.from_arrays``.
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


def load_motion(root: str | os.PathLike, record: dict, space=None) -> dict[str, np.ndarray]:
    """Load the motion arrays of one manifest ``record`` as a dict of numpy arrays.

    The arrays are checked: with a face ``space``, by ``space.from_arrays`` (the clip must be
    in that space's layout); without one, by the layout they show (``blendshapes [T, 52]`` +
    ``head_rotation [T, 3]``, or ``vertices``/``displacements [T, V, 3]``, see
    :func:`motion_frames`).

    Raises:
        DataError: the ``.npz`` is missing or unreadable, or its arrays do not fit the layout
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
    try:
        if space is not None:
            space.from_arrays(data)
        else:
            motion_frames(data)
    except (ValueError, KeyError) as exc:
        raise DataError(f"{path}: {exc}") from None
    return data


def motion_frames(data: dict[str, np.ndarray]) -> int:
    """Number of frames T of a clip's motion arrays, whatever its face space.

    Layouts: ``blendshapes [T, 52]`` with ``head_rotation [T, 3]``; ``vertices`` /
    ``displacements [T, V, 3]`` (with ``head_rotation [T, 3]`` if present); or FLAME's ``exp
    [T, E]`` with ``pose [T, 6]`` (:class:`facemotion.face.flame.FlameSpace`).

    Raises:
        ValueError: neither layout, wrong shapes, fewer than one frame, or frame counts that differ.
    """
    if "blendshapes" in data:
        main, width = "blendshapes", (52,)
    elif "exp" in data:
        if np.ndim(data["exp"]) != 2:
            raise ValueError(f"'exp' has shape {np.shape(data['exp'])}, expected [T, E]")
        main, width = "exp", (np.shape(data["exp"])[1],)
    elif "vertices" in data or "displacements" in data:
        main = "vertices" if "vertices" in data else "displacements"
        width = tuple(np.shape(data[main])[1:]) if np.ndim(data[main]) == 3 and np.shape(data[main])[2] == 3 else None
        if width is None:
            raise ValueError(f"'{main}' has shape {np.shape(data[main])}, expected [T, V, 3]")
    else:
        raise ValueError(f"no motion arrays: expected 'blendshapes' + 'head_rotation', 'vertices' or "
                         f"'exp' + 'pose' (found {sorted(data)})")
    arrays = {main: width}
    if main == "exp":
        arrays["pose"] = (6,)
    elif main == "blendshapes" or "head_rotation" in data:
        arrays["head_rotation"] = (3,)
    frames = None
    for k, w in arrays.items():
        if k not in data:
            raise ValueError(f"no '{k}' array")
        shape = np.shape(data[k])
        if len(shape) != 1 + len(w) or tuple(shape[1:]) != w or shape[0] < 1:
            want = ", ".join(["T"] + [str(n) for n in w])
            raise ValueError(f"'{k}' has shape {shape}, expected [{want}]")
        if frames is not None and shape[0] != frames:
            raise ValueError(f"{frames} frames of {main} but {shape[0]} of {k}")
        frames = shape[0]
    return int(frames)
