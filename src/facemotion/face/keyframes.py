"""Keyframes for editing (Media2Face §4.2): frames whose ARKit expression (and optionally head
pose) a sampler holds by temporal inpainting.

A keyframe file (``--keyframes keys.json``) is a JSON list (or ``{"keyframes": [...]}``) of
entries with ``frame`` (int) or ``time`` (seconds) and one of ``blendshapes`` (ARKit name ->
weight, the rest 0, or a list of 52 weights in ARKit order) or ``expression`` (a name of
:data:`EXPRESSIONS`), and optionally ``head_rotation`` ``[pitch, yaw, roll]`` radians.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from facemotion.errors import DataError
from facemotion.face.arkit import ARKIT_BLENDSHAPES, ARKIT_INDEX

#: named expressions as ARKit weights (unnamed shapes 0)
EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "smile": {"mouthSmileLeft": 0.8, "mouthSmileRight": 0.8, "cheekSquintLeft": 0.4, "cheekSquintRight": 0.4},
    "angry": {"browDownLeft": 0.8, "browDownRight": 0.8, "noseSneerLeft": 0.4, "noseSneerRight": 0.4,
              "mouthPressLeft": 0.4, "mouthPressRight": 0.4},
    "sad": {"browInnerUp": 0.7, "mouthFrownLeft": 0.6, "mouthFrownRight": 0.6, "mouthShrugLower": 0.3},
    "surprised": {"browInnerUp": 0.8, "browOuterUpLeft": 0.8, "browOuterUpRight": 0.8, "eyeWideLeft": 0.6,
                  "eyeWideRight": 0.6, "jawOpen": 0.35},
    "disgusted": {"noseSneerLeft": 0.7, "noseSneerRight": 0.7, "mouthUpperUpLeft": 0.5, "mouthUpperUpRight": 0.5,
                  "browDownLeft": 0.4, "browDownRight": 0.4},
    "eyes_closed": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0},
    "mouth_open": {"jawOpen": 0.7},
}


@dataclasses.dataclass(frozen=True)
class Keyframe:
    """One key: ``frame`` (index at the motion's fps), ``weights`` ``[52]`` float32 ARKit weights or
    None (expression free), ``head_rotation`` ``[3]`` radians or None (pose free)."""

    frame: int
    weights: np.ndarray | None
    head_rotation: np.ndarray | None


def parse_keyframes(entries, fps: float, source: str = "keyframes") -> list[Keyframe]:
    """Keyframes from the JSON form of the module doc (already loaded).

    Raises:
        DataError: an entry without ``frame``/``time``, an unknown shape or expression name, a
            weight list that is not 52 long, non-finite values, or a negative frame (``source``
            named).
    """
    if isinstance(entries, dict):
        entries = entries.get("keyframes")
    if not isinstance(entries, list):
        raise DataError(f"{source}: expected a list of keyframes")
    keys = []
    for i, e in enumerate(entries):
        where = f"{source}: keyframe {i}"
        if not isinstance(e, dict) or ("frame" in e) == ("time" in e):
            raise DataError(f"{where}: give exactly one of 'frame' or 'time'")
        frame = int(e["frame"]) if "frame" in e else int(round(float(e["time"]) * fps))
        if frame < 0:
            raise DataError(f"{where}: negative frame {frame}")
        weights = None
        if "expression" in e:
            if e["expression"] not in EXPRESSIONS:
                raise DataError(f"{where}: unknown expression {e['expression']!r} (choose from {', '.join(EXPRESSIONS)})")
            weights = _weights(EXPRESSIONS[e["expression"]], where)
        elif "blendshapes" in e:
            weights = _weights(e["blendshapes"], where)
        head = None if e.get("head_rotation") is None else np.asarray(e["head_rotation"], np.float32).reshape(-1)
        if head is not None and (head.shape != (3,) or not np.isfinite(head).all()):
            raise DataError(f"{where}: head_rotation must be 3 finite angles (radians)")
        if weights is None and head is None:
            raise DataError(f"{where}: gives neither 'blendshapes', 'expression' nor 'head_rotation'")
        keys.append(Keyframe(frame, weights, head))
    return keys


def _weights(spec, where: str) -> np.ndarray:
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(ARKIT_INDEX))
        if unknown:
            raise DataError(f"{where}: not ARKit blendshape names: {unknown}")
        w = np.zeros(len(ARKIT_BLENDSHAPES), np.float32)
        for name, value in spec.items():
            w[ARKIT_INDEX[name]] = float(value)
    else:
        w = np.asarray(spec, np.float32).reshape(-1)
        if w.shape != (len(ARKIT_BLENDSHAPES),):
            raise DataError(f"{where}: blendshapes must name ARKit shapes or list 52 weights")
    if not np.isfinite(w).all():
        raise DataError(f"{where}: non-finite weight")
    return w


def read_keyframes(path, fps: float) -> list[Keyframe]:
    """:func:`parse_keyframes` of a JSON file.

    Raises:
        DataError: unreadable JSON or a bad entry (the file named).
    """
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable keyframe file ({exc})") from None
    return parse_keyframes(entries, fps, str(path))
