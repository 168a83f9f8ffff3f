"""ARKit blendshape CSV as Epic's Live Link Face app writes it and Unreal's importer reads it.

Header: ``Timecode,BlendShapeCount,EyeBlinkLeft,...,TongueOut`` (the 52 ARKit names in ARKit
order, first letter capitalised as Live Link Face writes them), then ``HeadYaw,HeadPitch,
HeadRoll,LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll``;
``BlendShapeCount`` is 61 (52 + 9). One row per frame.

Timecodes are ``HH:MM:SS:FF.mmm``: ``FF.mmm`` is the (fractional) frame within the second at 30
or 60 fps, the only rates the app records. Unreal's ``LiveLinkFaceImporter`` has no field for the
rate: older versions always divide ``FF.mmm`` by 60, newer ones by 60 if any frame number exceeds
30 and by 30 otherwise. So the writer resamples the motion (linearly) to
:data:`CSV_FPS` rates only: by default the animation's own rate if it is one of them, else 60 fps,
which both importer versions read right (30 fps files are read right by the newer one only).

Angles follow Unreal's ARKit conversion (``AppleARKitConversion.h``): the rotation in degrees
divided by 180, so [-180, 180] degrees maps to [-1, 1]. Signs, as in
:mod:`facemotion.face.rotation`: ``HeadPitch`` > 0 chin down, ``HeadYaw`` > 0 turned toward the
subject's left, ``HeadRoll`` > 0 about the face's forward axis from its left toward up. The eye
columns (yaw > 0 toward the subject's left, pitch > 0 down, roll 0) are derived from the
``eyeLook*`` weights through :data:`EYE_LOOK_DEGREES`.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from facemotion.errors import DataError
from facemotion.export.atomic import atomic_path
from facemotion.face.arkit import ARKIT_BLENDSHAPES, ARKIT_INDEX, HEAD_POSE_NAMES

#: Live Link Face column names of the 52 blendshapes
CSV_BLENDSHAPES = tuple(n[0].upper() + n[1:] for n in ARKIT_BLENDSHAPES)
#: the 9 rotation columns after the blendshapes
CSV_ROTATIONS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                 "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
HEADER = ("Timecode", "BlendShapeCount") + CSV_BLENDSHAPES + CSV_ROTATIONS
#: frame rates (fps) the Live Link Face app records and Unreal's importer understands
CSV_FPS = (60.0, 30.0)
#: degrees an ``eyeLook*`` weight of 1 turns the eye on the built-in head (ICT Face Model: the
#: pupil's displacement as a chord of its 11.5 mm eyeball)
EYE_LOOK_DEGREES = {"Out": 45.0, "In": 45.0, "Up": 35.0, "Down": 39.0}
#: radians -> CSV angle units (degrees / 180)
_TO_CSV = 1.0 / math.pi


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


def csv_rate(fps: float, csv_fps: float | None = None) -> float:
    """The CSV frame rate for an animation at ``fps``: ``csv_fps`` if given, else ``fps`` when it
    is one of :data:`CSV_FPS`, else 60.

    Raises:
        DataError: ``csv_fps`` is not 30 or 60.
    """
    if csv_fps is None:
        return float(fps) if float(fps) in CSV_FPS else CSV_FPS[0]
    if float(csv_fps) not in CSV_FPS:
        raise DataError(f"--csv-fps {csv_fps:g}: Live Link Face CSVs run at 30 or 60 fps")
    return float(csv_fps)


def resample(values: np.ndarray, fps: float, new_fps: float) -> np.ndarray:
    """Resample ``values [T, D]`` from ``fps`` to ``new_fps`` by linear interpolation over time.

    Returns:
        ``[T', D]`` float64 at times ``k / new_fps`` covering the clip's duration ``T / fps``
        seconds (``T' = ceil(T * new_fps / fps)``; times after the last frame hold it).
    """
    values = np.asarray(values, np.float64)
    count = max(1, math.ceil(len(values) * new_fps / fps - 1e-9))
    t_new, t_old = np.arange(count) / new_fps, np.arange(len(values)) / fps
    return np.stack([np.interp(t_new, t_old, col) for col in values.T], axis=1)


def eye_angles(blendshapes: np.ndarray) -> np.ndarray:
    """Eye rotations from ARKit weights, in the CSV's units and signs (module docstring).

    Args:
        blendshapes: ``[T, 52]`` ARKit weights in ARKit order.
    Returns:
        ``[T, 6]`` float64 ``(LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch,
        RightEyeRoll)`` in degrees / 180; the left eye looks toward the subject's left by looking
        out, the right eye by looking in (:data:`EYE_LOOK_DEGREES` per unit weight).
    """
    w = {n: np.asarray(blendshapes, np.float64)[:, i] for n, i in ARKIT_INDEX.items()}
    deg = EYE_LOOK_DEGREES
    out = []
    for side, toward_left, away in (("Left", "Out", "In"), ("Right", "In", "Out")):
        yaw = deg[toward_left] * w[f"eyeLook{toward_left}{side}"] - deg[away] * w[f"eyeLook{away}{side}"]
        pitch = deg["Down"] * w[f"eyeLookDown{side}"] - deg["Up"] * w[f"eyeLookUp{side}"]
        out += [yaw / 180.0, pitch / 180.0, np.zeros_like(yaw)]
    return np.stack(out, axis=1)


def write_arkit_csv(anim, path: str | Path, csv_fps: float | None = None) -> Path:
    """Write ``anim`` (``blendshapes [T,52]``, ``head_rotation [T,3]`` radians, ``fps``) as a Live
    Link Face CSV at ``csv_fps`` (30 or 60; default :func:`csv_rate`), resampled linearly.

    Returns:
        ``path`` as a Path.
    Raises:
        DataError: ``csv_fps`` is not 30 or 60.
    """
    path = Path(path)
    fps = csv_rate(anim.fps, csv_fps)
    bs = resample(anim.blendshapes, anim.fps, fps)
    pitch, yaw, roll = resample(anim.head_rotation, anim.fps, fps).T * _TO_CSV
    rot = np.concatenate([np.stack([yaw, pitch, roll], axis=1), eye_angles(bs)], axis=1)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(len(bs)):
            w.writerow([format_timecode(i, fps), len(CSV_BLENDSHAPES) + len(CSV_ROTATIONS)]
                       + [f"{x:.6g}" for x in bs[i]] + [f"{x:.6g}" for x in rot[i]])
    return path


def read_arkit_csv(path: str | Path, fps: float | None = None):
    """Read a Live Link Face CSV (:meth:`facemotion.animation.Animation.from_arkit_csv` makes
    an animation of it).

    Columns are found by name (any order; the first letter's case is ignored). Head angles are
    read in the CSV's units (degrees / 180, module docstring); missing head columns read as 0; the
    eye columns are not read (gaze is in the ``eyeLook*`` weights). One row is one frame. ``fps``
    defaults to the frame rate implied by the timecodes (largest ``FF`` + 1, so a clip shorter
    than one second needs ``fps`` given).

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
    try:
        body = [r for r in rows[1:] if r]
        bs = np.array([[float(r[col[n]]) for n in ARKIT_BLENDSHAPES] for r in body], np.float32)
        head = np.array([[float(r[col[n]]) if n in col else 0.0 for n in HEAD_POSE_NAMES] for r in body])
        codes = [r[col["timecode"]] for r in body]
        if fps is None:
            fps = max(int(float(c.split(":")[3])) for c in codes) + 1.0
        times = np.array([parse_timecode(c, fps) for c in codes])
    except (ValueError, IndexError) as exc:
        raise DataError(f"{path}: malformed row ({exc})") from exc
    if len(times) > 1 and np.any(np.diff(times) <= 0):
        raise DataError(f"{path}: timecodes are not increasing")
    return bs, (head * math.pi).astype(np.float32), float(fps)
