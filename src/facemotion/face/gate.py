"""Resting the mouth where nobody speaks: a gate over a generated motion, driven by the speech
activity of :func:`facemotion.audio.vad.speech_activity` (issue 12, item 3).

Not from the four papers (their models only ever see speech): the shipped model, trained on
speech alone, animates digital silence and noise as speech; the gate keeps the mouth at rest
there and leaves the idle motion (blinks, gaze, brows, slow head drift).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.ndimage import uniform_filter1d

from facemotion.face.arkit import HEAD_POSE_NAMES
from facemotion.face.blinks import blink_times, blink_track

MOUTH_PREFIXES = ("jaw", "mouth", "cheekPuff", "tongueOut")
"""ARKit channels (name prefixes) that :func:`gate_motion` rests outside speech."""


BLINK_NAMES = ("eyeBlinkLeft", "eyeBlinkRight")
"""ARKit channels of the idle blinks :func:`gate_motion` adds outside speech."""


def idle_blinks(num_frames: int, fps: float, rng: np.random.Generator, rate: float = 16.0) -> np.ndarray:
    """A blink track ``[T]`` in [0, 1] at ``fps`` for a face at rest: the data engine's blinks
    (:mod:`facemotion.face.blinks`) at ``rate`` per minute, with no speech pauses to draw them.

    Args:
        num_frames: T; fps: frames per second; rng: numpy generator (same seed → same blinks);
        rate: blinks per minute (people at rest: ~15–20).
    """
    times = np.arange(num_frames) / fps
    return blink_track(times, blink_times([], num_frames / fps, rng, rate), fps, rng)


def gate_motion(motion: np.ndarray, activity: np.ndarray, names: Sequence[str], head_calm: float = 0.5,
                drift_s: float = 2.0, fps: float = 25.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Rest the mouth where nobody speaks.

    Mouth and jaw channels (names starting with one of :data:`MOUTH_PREFIXES`: ``jaw*``,
    ``mouth*``, ``cheekPuff``, ``tongueOut``) are multiplied by the activity, so they ease to
    their neutral value 0 outside speech. Head rotation channels (``headPitch``, ``headYaw``,
    ``headRoll``, radians) keep their slow drift (a moving average over ``drift_s`` seconds) and
    their faster motion around it is scaled by ``head_calm + (1 - head_calm) · activity``. Other
    channels (blinks, gaze, brows, cheeks, nose) are left as they are, except that with ``rng``
    the idle blinks of :func:`idle_blinks` are added outside speech (weighted by ``1 -
    activity``; a model trained on speech alone hardly blinks on silence). A space without such
    names (FLAME, vertices) is returned unchanged.

    Args:
        motion: ``[T, D]`` motion whose columns are named by ``names`` (e.g. a BlendshapeSpace
            motion: 52 ARKit weights, then head pitch, yaw, roll in radians).
        activity: ``[T]`` speech activity in [0, 1] (:func:`facemotion.audio.vad.speech_activity`).
        names: ``D`` channel names (a face space's ``names``).
        head_calm: scale of the head's fast motion at activity 0 (1 = unchanged).
        drift_s: window of the head's slow drift, seconds.
        fps: frame rate of ``motion`` (frames per second).
        rng: numpy generator of the idle blinks, or None for none.
    Returns:
        ``[T, D]`` array of ``motion``'s dtype (a new array).
    Raises:
        ValueError: ``motion`` is not ``[T, len(names)]`` or ``activity`` not ``[T]``.
    """
    motion = np.asarray(motion)
    activity = np.clip(np.asarray(activity, np.float64), 0.0, 1.0)
    if motion.ndim != 2 or motion.shape[1] != len(names):
        raise ValueError(f"motion must be [T, {len(names)}] (one column per name), got {motion.shape}")
    if activity.shape != (motion.shape[0],):
        raise ValueError(f"activity must be [T] = [{motion.shape[0]}], got {activity.shape}")
    out = motion.astype(np.float64, copy=True)
    mouth = [i for i, n in enumerate(names) if n.startswith(MOUTH_PREFIXES)]
    out[:, mouth] *= activity[:, None]
    head = [i for i, n in enumerate(names) if n in HEAD_POSE_NAMES]
    if head and head_calm != 1.0 and len(out) > 1:
        width = max(1, int(round(drift_s * fps)) | 1)  # odd, so the average is centred
        drift = uniform_filter1d(out[:, head], width, axis=0, mode="nearest")
        out[:, head] = drift + (out[:, head] - drift) * (head_calm + (1.0 - head_calm) * activity)[:, None]
    blinks = [i for i, n in enumerate(names) if n in BLINK_NAMES]
    if rng is not None and blinks and len(out):
        idle = idle_blinks(len(out), fps, rng) * (1.0 - activity)
        out[:, blinks] = np.maximum(out[:, blinks], idle[:, None])
    return out.astype(motion.dtype, copy=False)
