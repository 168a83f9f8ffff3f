"""Speech activity: where in a recording someone speaks.

:func:`speech_activity` runs Silero VAD (the ONNX model bundled with faster-whisper, run by
onnxruntime; nothing is downloaded) over a 16 kHz waveform and returns a per-frame activity in
[0, 1] at the motion frame rate: 1 during speech (padded so that speech edges are not clipped),
0 in silence, noise or music, with raised-cosine ramps in between.
:func:`facemotion.face.gate.gate_motion` then eases the mouth and jaw of a generated motion to
rest where the activity is 0.

Not from the four papers: their models only ever see speech. Here the shipped model, trained on
speech alone, animates digital silence and white noise as speech; the gate keeps the mouth at
rest there (issue 12, item 3).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np

from facemotion.audio.io import SAMPLE_RATE

WINDOW = 512
"""Samples per Silero VAD decision at 16 kHz (32 ms)."""

_CHUNK_WINDOWS = 9375
"""VAD windows run at once (9375 × 32 ms = 300 s), so memory stays bounded on long audio."""


@dataclasses.dataclass(frozen=True)
class VadSettings:
    """How :func:`speech_activity` turns Silero's per-window speech probabilities into activity.

    Attributes:
        threshold: probability at or above which a 32 ms window starts speech.
        neg_threshold: probability below which speech may end (hysteresis, Silero's
            ``neg_threshold``).
        min_speech_s: speech stretches shorter than this are dropped (clicks, coughs), seconds.
        min_silence_s: pauses shorter than this stay speech (the model animates them), seconds.
        pad_s: speech stretches are widened by this on each side, seconds.
        ramp_s: length of the raised-cosine ramp from 0 to 1 at each edge of a padded stretch,
            seconds; it lies inside the padding when ``ramp_s / 2 <= pad_s``, so speech itself
            always gets activity 1.

    The thresholds are lower than Silero's own (0.5 / 0.35) so that whispered, falsetto and
    creaky speech is mostly kept (the realval recordings peak at 0.3-0.9 there), while white
    and pink noise at any level stay below 0.25, music and tones below 0.1; a tone sweep
    reaches 0.38 for less than ``min_speech_s``. The padding is wide because Silero's
    speech edges fall late or early by up to a few windows, and a mouth gated shut there
    reads as a closure during speech: on ``realval`` + ARCTIC (shipped model, three seeds),
    closures during speech away from /p b m/ are 0.289 of all with 0.2 s, 0.267 with 0.3 or
    0.4 s and 0.258 without the gate (``benchmarks/lipsync_realval.py --no-gate``); the other
    lip-sync figures do not change.
    """

    threshold: float = 0.35
    neg_threshold: float = 0.2
    min_speech_s: float = 0.15
    min_silence_s: float = 0.5
    pad_s: float = 0.4
    ramp_s: float = 0.2


@functools.lru_cache(maxsize=1)
def _vad_model():
    from faster_whisper.vad import get_vad_model

    return get_vad_model()


def speech_probability(wave: np.ndarray) -> np.ndarray:
    """Silero VAD speech probability of each 32 ms window of a waveform.

    The audio is run in blocks of 300 s (the model's state restarts at each block), so memory
    is bounded whatever the length.

    Args:
        wave: ``[N]`` float32 waveform, 16 kHz mono.
    Returns:
        ``[ceil(N / 512)]`` float32 probabilities in [0, 1]; window ``i`` covers samples
        ``[512 i, 512 (i + 1))`` (the last one zero-padded).
    Raises:
        ValueError: ``wave`` is not one-dimensional.
        RuntimeError: onnxruntime is missing (a dependency of faster-whisper).
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform [N], got shape {wave.shape}")
    model = _vad_model()
    count = -(-len(wave) // WINDOW)
    out = np.zeros(count, np.float32)
    block = _CHUNK_WINDOWS * WINDOW
    for lo in range(0, len(wave), block):
        chunk = wave[lo : lo + block]
        if len(chunk) % WINDOW:
            chunk = np.pad(chunk, (0, WINDOW - len(chunk) % WINDOW))
        probs = np.asarray(model(chunk), np.float32).reshape(-1)
        out[lo // WINDOW : lo // WINDOW + len(probs)] = probs
    return out


def speech_segments(probability: np.ndarray, settings: VadSettings = VadSettings()) -> list[tuple[float, float]]:
    """Speech stretches ``[(start, end), ...]`` in seconds (unpadded, sorted, disjoint) from
    per-window probabilities (:func:`speech_probability`), by Silero's hysteresis: speech starts
    at a window ``>= threshold`` and ends at the first window ``< neg_threshold`` followed by at
    least ``min_silence_s`` without a window ``>= threshold``; stretches shorter than
    ``min_speech_s`` are dropped."""
    step = WINDOW / SAMPLE_RATE
    segments: list[tuple[float, float]] = []
    start = end = None
    for i, p in enumerate(np.asarray(probability, np.float64)):
        if p >= settings.threshold:
            if start is None:
                start = i
            end = None
        elif start is not None and p < settings.neg_threshold and end is None:
            end = i
        if start is not None and end is not None and (i - end) * step >= settings.min_silence_s:
            segments.append((start * step, end * step))
            start = end = None
    if start is not None:
        segments.append((start * step, (end if end is not None else len(probability)) * step))
    return [(a, b) for a, b in segments if b - a >= settings.min_speech_s]


def activity_from_segments(segments: Sequence[tuple[float, float]], num_frames: int, fps: float,
                           settings: VadSettings = VadSettings()) -> np.ndarray:
    """Per-frame speech activity ``[num_frames]`` in [0, 1] from speech stretches in seconds.

    Each stretch is widened by ``settings.pad_s`` on both sides, and each widened edge gets a
    raised-cosine ramp of length ``ramp_s`` centred on it: frame ``t`` (centred at
    ``(t + 0.5) / fps`` s) gets 1 more than ``ramp_s / 2`` inside a widened stretch (so the
    whole unpadded stretch when ``ramp_s / 2 <= pad_s``), 0.5 on its edge and 0 more than
    ``ramp_s / 2`` outside every one.

    Args:
        segments: ``[(start, end), ...]`` speech stretches, seconds.
        num_frames: T.
        fps: frame rate of the activity (frames per second).
        settings: ``pad_s`` and ``ramp_s`` (:class:`VadSettings`).
    Returns:
        ``[T]`` float32 in [0, 1].
    """
    t = (np.arange(num_frames) + 0.5) / float(fps)
    half = max(settings.ramp_s / 2.0, 1e-9)
    activity = np.zeros(num_frames, np.float64)
    for start, end in segments:
        lo, hi = start - settings.pad_s, end + settings.pad_s
        a = max(0, int(np.floor((lo - half) * fps)))   # the frames it reaches: linear in the length
        b = min(num_frames, int(np.ceil((hi + half) * fps)) + 1)
        inside = np.minimum(t[a:b] - lo, hi - t[a:b])  # signed distance into the padded stretch, s
        x = np.clip((inside + half) / (2.0 * half), 0.0, 1.0)
        activity[a:b] = np.maximum(activity[a:b], 0.5 - 0.5 * np.cos(np.pi * x))
    return activity.astype(np.float32)


def speech_activity(wave: np.ndarray, num_frames: int, fps: float,
                    settings: VadSettings = VadSettings()) -> np.ndarray:
    """Per-frame speech activity of a waveform at the motion frame rate.

    Silero VAD (:func:`speech_probability`) → speech stretches (:func:`speech_segments`) →
    padded, ramped activity (:func:`activity_from_segments`).

    Args:
        wave: ``[N]`` float32 waveform, 16 kHz mono.
        num_frames: T, frames of the motion.
        fps: motion frame rate (frames per second).
        settings: thresholds, padding and ramps (:class:`VadSettings`).
    Returns:
        ``[T]`` float32 in [0, 1]: 1 in speech, 0 where nobody speaks.
    Raises:
        ValueError: ``wave`` is not one-dimensional.
    """
    return activity_from_segments(speech_segments(speech_probability(wave), settings), num_frames, fps, settings)


def detect_speech(wave: np.ndarray, num_frames: int, fps: float, name: object = None,
                  settings: VadSettings = VadSettings()) -> np.ndarray:
    """:func:`speech_activity` of a recording, with a warning when it holds no speech.

    Args:
        wave: ``[N]`` float32 waveform, 16 kHz mono.
        num_frames: T, frames of the motion.
        fps: motion frame rate (frames per second).
        name: the file it was read from (named in the warning), or None for a waveform given
            directly.
        settings: see :class:`VadSettings`.
    Returns:
        ``[T]`` float32 activity in [0, 1].
    Raises:
        ValueError: ``wave`` is not one-dimensional.
    Warns:
        AudioWarning: no speech detected (``"NAME: no speech detected; the mouth stays at
            rest"``), unless the file is digitally silent, which
            :func:`facemotion.audio.io.load_audio` has already reported.
    """
    import warnings

    from facemotion.audio.io import SILENCE_LEVEL
    from facemotion.errors import AudioWarning

    activity = speech_activity(wave, num_frames, fps, settings)
    silent = len(wave) == 0 or float(np.max(np.abs(wave))) < SILENCE_LEVEL
    if not activity.any() and not (silent and name is not None):
        warnings.warn(f"{name if name is not None else '<waveform>'}: no speech detected; the mouth stays at rest",
                      AudioWarning, stacklevel=2)
    return activity
