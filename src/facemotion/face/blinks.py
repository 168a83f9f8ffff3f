"""Blinks: when people blink and how a blink looks, shared by the data engine
(:mod:`facemotion.synth.animate`) and the idle blinks of the speech gate
(:mod:`facemotion.face.gate`).

Blinks follow a gamma renewal process (shape 4) at ~16 a minute, drawn towards pauses in
speech; each closes the lids over 40 % of its duration and opens them over 60 %, with a
duration of 0.1–0.25 s (Kwon et al. 2013 report 0.1–0.4 s; the data engine's choice).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def smoothstep(x: np.ndarray) -> np.ndarray:
    """``3x² − 2x³`` on ``x`` clipped to [0, 1] (any shape, unitless)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def bump(times: np.ndarray, centre: float, rise: float, fall: float) -> np.ndarray:
    """Smoothstep bump over ``times [T]`` (s): 0 → 1 over ``rise`` s before ``centre`` (s),
    → 0 over ``fall`` s after it. Returns ``[T]`` in [0, 1]."""
    up = smoothstep((times - (centre - rise)) / rise)
    down = 1.0 - smoothstep((times - centre) / fall)
    return np.where(times < centre, up, down)


def blink_times(gaps: Sequence[tuple[float, float]], duration: float, rng: np.random.Generator,
                rate: float = 16.0) -> np.ndarray:
    """Blink peak times (s): a gamma renewal process at ``rate`` blinks/min (shape 4), each
    blink moved into a nearby pause (within 1 s, probability 0.7), plus extra blinks in
    pauses longer than 0.35 s (probability 0.4).

    Args:
        gaps: ``(start, end)`` seconds of the pauses in speech (none: a plain renewal process).
        duration: seconds; rng: numpy generator; rate: blinks per minute.
    Returns:
        sorted ``[K]`` seconds in ``[0, duration)``.
    """
    mean = 60.0 / rate
    t = rng.uniform(0.0, mean)
    out = []
    while t < duration:
        near = [s for s, e in gaps if abs(0.5 * (s + e) - t) < 1.0]
        if near and rng.random() < 0.7:
            t = near[0] + 0.08
        out.append(t)
        t += rng.gamma(4.0, mean / 4.0)
    for s, e in gaps:
        if e - s > 0.35 and rng.random() < 0.4 and all(abs(b - s - 0.1) > 0.6 for b in out):
            out.append(s + 0.1)
    return np.array(sorted(b for b in out if b < duration))


def blink_track(times: np.ndarray, peaks: np.ndarray, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Lid closure ``[T]`` in [0, 1] over frame ``times [T]`` (s) for blinks peaking at
    ``peaks [K]`` (s): each peak moved onto a frame (so the lids close fully), 0.1–0.25 s
    long, 0.9–1.0 deep, drawn from ``rng`` (two draws per blink)."""
    track = np.zeros(len(times))
    for t in peaks:
        tp = round(t * fps) / fps
        d = rng.uniform(0.1, 0.25)
        track = np.maximum(track, rng.uniform(0.9, 1.0) * bump(times, tp, 0.4 * d, 0.6 * d))
    return track
