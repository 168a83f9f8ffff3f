"""ARKit blendshape CSV in the layout of Epic's Live Link Face app.

Header: ``Timecode,BlendShapeCount,EyeBlinkLeft,...,TongueOut`` (the 52 ARKit names in ARKit
order, first letter capitalised as Live Link Face writes them), then ``HeadYaw,HeadPitch,
HeadRoll,LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll``;
``BlendShapeCount`` is 61 (52 + 9). One row per frame; the timecode is ``HH:MM:SS:FF.mmm``
(frame ``FF`` within the second at the animation fps, ``.mmm`` the sub-frame fraction).
Head angles are radians in facemotion's convention (see :mod:`facemotion.face.rotation`);
the eye-rotation columns are written as 0 (gaze is carried by the ``eyeLook*`` weights).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from facemotion.errors import DataError
from facemotion.export.atomic import atomic_path
from facemotion.face.arkit import ARKIT_BLENDSHAPES, HEAD_POSE_NAMES

#: Live Link Face column names of the 52 blendshapes
CSV_BLENDSHAPES = tuple(n[0].upper() + n[1:] for n in ARKIT_BLENDSHAPES)
#: the 9 rotation columns after the blendshapes
CSV_ROTATIONS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                 "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
HEADER = ("Timecode", "BlendShapeCount") + CSV_BLENDSHAPES + CSV_ROTATIONS


def format_timecode(frame: int, fps: float) -> str:
    """Timecode ``HH:MM:SS:FF.mmm`` of frame index ``frame`` at ``fps`` frames per second."""
    t = frame / fps
    seconds = math.floor(t + 1e-9)
    sub = (t - seconds) * fps
    ff = math.floor(sub + 1e-6)
    ms = min(int(round((sub - ff) * 1000)), 999)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{ff:02d}.{ms:03d}"


def parse_timecode(code: str, fps: float) -> float:
    """Seconds of a ``HH:MM:SS:FF[.mmm]`` timecode at ``fps``; raises ValueError if malformed."""
    hh, mm, ss, ff = code.split(":")
    return int(hh) * 3600 + int(mm) * 60 + int(ss) + float(ff) / fps


def write_arkit_csv(anim, path: str | Path) -> Path:
    """Write ``anim`` (``blendshapes [T,52]``, ``head_rotation [T,3]``) as a Live Link Face CSV."""
    path = Path(path)
    pitch, yaw, roll = anim.head_rotation.T
    zeros = np.zeros(anim.num_frames)
    rot = np.stack([yaw, pitch, roll] + [zeros] * 6, axis=1)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(anim.num_frames):
            w.writerow([format_timecode(i, anim.fps), len(CSV_BLENDSHAPES) + len(CSV_ROTATIONS)]
                       + [f"{x:.6g}" for x in anim.blendshapes[i]] + [f"{x:.6g}" for x in rot[i]])
    return path


def read_arkit_csv(path: str | Path, fps: float | None = None):
    """Read a Live Link Face CSV (:meth:`facemotion.animation.Animation.from_arkit_csv` makes
    an animation of it).

    Columns are found by name (any order; the first letter's case is ignored). Missing head
    columns read as 0. ``fps`` defaults to the frame rate implied by the timecodes
    (largest ``FF`` + 1, so a clip shorter than one second needs ``fps`` given).

    Returns:
        ``(blendshapes [T, 52] float32 in ARKit order, head_rotation [T, 3] float32 radians
        (pitch, yaw, roll), fps)``.
    Raises:
        DataError: the file is missing, lacks a blendshape column or has a malformed row; the
            message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such CSV file")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise DataError(f"{path}: no header and frames in this CSV")
    col = {name[:1].lower() + name[1:]: i for i, name in enumerate(c.strip() for c in rows[0])}
    missing = [n for n in ARKIT_BLENDSHAPES if n not in col]
    if missing or "timecode" not in col:
        raise DataError(f"{path}: not a Live Link Face CSV (missing columns "
                        f"{(missing or ['Timecode'])[:5]})")
    heads = HEAD_POSE_NAMES
    try:
        body = [r for r in rows[1:] if r]
        bs = np.array([[float(r[col[n]]) for n in ARKIT_BLENDSHAPES] for r in body], np.float32)
        head = np.array([[float(r[col[n]]) if n in col else 0.0 for n in heads] for r in body],
                        np.float32)
        codes = [r[col["timecode"]] for r in body]
        if fps is None:
            fps = max(int(float(c.split(":")[3])) for c in codes) + 1.0
        times = np.array([parse_timecode(c, fps) for c in codes])
    except (ValueError, IndexError) as exc:
        raise DataError(f"{path}: malformed row ({exc})") from exc
    if len(times) > 1 and np.any(np.diff(times) <= 0):
        raise DataError(f"{path}: timecodes are not increasing")
    return bs, head, float(fps)
