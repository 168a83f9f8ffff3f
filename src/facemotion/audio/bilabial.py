"""Bilabial detector: a small classifier on Whisper encoder states that hears /p b m/ in the
audio itself, where Whisper's transcript has none (fillers it drops or mishears: "um but",
"hm", "um" before a word).

The ``asr`` phone search (:func:`facemotion.audio.phones.asr_phones`) force-aligns Whisper's
words, so a /p b m/ that is not in the transcript is not in its phones and the lips do not
close. The detector scores each 20 ms frame of Whisper's encoder states
(:func:`facemotion.audio.whisper.encoder_states`, tiny.en: 384 values at 50 Hz) with
one-hidden-layer MLPs over ±:data:`CONTEXT` frames (an ensemble: their probabilities are
averaged); :func:`add_bilabials` puts an ``"M"`` where the probability stays above a threshold
for long enough and the transcript's phones hold no /p b m/ nearby.

It learns from synthetic corpora (``facemotion synth``), whose phones are known, never from
the real recordings it is scored on (``benchmarks/lipsync_realval.py --detection``). The shipped
weights (``facemotion/pretrained/bilabial.npz``: two networks, one trained on read speech, one
on read and spontaneous speech) are made by ``facemotion train-bilabial``
(:mod:`facemotion.data.bilabial`; see the README).

A component of this project, not of the four papers: an acoustic check on the phone source of
the audio features (DiffPoseTalk Sec. 3.2 conditions on audio features; the ``phonetic``
encoder makes them from these phones).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from facemotion.errors import DataError

CONTEXT = 3
"""Encoder frames on each side of the scored frame the classifier sees (±60 ms)."""
RATE = 50.0
"""Frames per second of the encoder states and of the probabilities."""
THRESHOLD = 0.5
"""Probability above which a frame is taken as a /p b m/ by :func:`add_bilabials`."""
MIN_DURATION_S = 0.06
"""Shortest run of frames above the threshold that :func:`add_bilabials` takes as a /p b m/,
seconds: shorter runs fire mostly in laughter and breaths."""
TOLERANCE_S = 0.04
"""A detection within this many seconds of a transcript /p b m/ is that /p b m/ (not added)."""
BILABIALS = frozenset(("P", "B", "M"))
"""The phones it hears: ``VISEME_CLASSES["bilabial"]`` of :mod:`facemotion.audio.phones` (which
imports this module, so it is not imported here)."""

BUNDLED_PATH = Path(__file__).resolve().parent.parent / "pretrained" / "bilabial.npz"
"""The shipped detector (two networks on tiny.en's states: one trained on the default synthetic
corpus, one on it and a spontaneously spoken corpus)."""


def stack_context(states: np.ndarray, context: int = CONTEXT) -> np.ndarray:
    """Each frame with its ``context`` neighbours on either side, ``[F, d]`` → ``[F, (2c+1)·d]``
    (the first and last frames repeat past the edges)."""
    padded = np.pad(states, ((context, context), (0, 0)), mode="edge")
    count = len(states)
    return np.concatenate([padded[k : k + count] for k in range(2 * context + 1)], axis=1)


@dataclasses.dataclass(frozen=True)
class BilabialDetector:
    """Weights of the detector: K networks (an ensemble; K = 1 for one) whose probabilities are
    averaged, each an input standardisation and a ReLU MLP ``(2c+1)·d → h → 1``.

    Attributes:
        mean, std: ``[K, d]`` statistics of the encoder states each was trained on.
        w1: ``[K, (2c+1)·d, h]``; b1: ``[K, h]``; w2: ``[K, h]``; b2: ``[K]``.
        context: frames on each side (:data:`CONTEXT`).
    """

    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    context: int = CONTEXT

    @property
    def width(self) -> int:
        """d, the width of the encoder states it reads (384 for tiny.en)."""
        return int(self.mean.shape[-1])

    def probability(self, states: np.ndarray) -> np.ndarray:
        """Probability that each frame is inside a /p b m/, ``[F]`` float32, from encoder states
        ``[F, d]`` at :data:`RATE` Hz: the mean of the K networks' logistic outputs.

        Raises:
            ValueError: ``states`` is not ``[F, d]`` with the detector's ``d``.
        """
        states = np.asarray(states, np.float32)
        if states.ndim != 2 or states.shape[1] != self.width:
            raise ValueError(f"encoder states of shape {states.shape}: expected [F, {self.width}]")
        total = np.zeros(len(states), np.float64)
        for k in range(len(self.mean)):
            x = stack_context((states - self.mean[k]) / self.std[k], self.context)
            hidden = np.maximum(x @ self.w1[k] + self.b1[k], 0.0)
            total += 0.5 + 0.5 * np.tanh(0.5 * (hidden @ self.w2[k] + self.b2[k]))  # the logistic
        return (total / len(self.mean)).astype(np.float32)

    def joined(self, other: "BilabialDetector") -> "BilabialDetector":
        """The ensemble of this detector's networks and ``other``'s (same d, h and context).

        Raises:
            ValueError: the shapes or contexts differ.
        """
        if self.w1.shape[1:] != other.w1.shape[1:] or self.context != other.context:
            raise ValueError(f"cannot join detectors of shapes {self.w1.shape[1:]} and {other.w1.shape[1:]} "
                             f"(context {self.context} and {other.context})")
        return BilabialDetector(*(np.concatenate([getattr(self, f), getattr(other, f)])
                                  for f in ("mean", "std", "w1", "b1", "w2", "b2")), context=self.context)

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights as ``.npz`` (float16 matrices), atomically."""
        from facemotion.atomic import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, mean=self.mean, std=self.std, w1=self.w1.astype(np.float16), b1=self.b1,
                         w2=self.w2, b2=self.b2, context=np.int64(self.context))


@functools.lru_cache(maxsize=4)
def load_detector(path: str | os.PathLike | None = None) -> BilabialDetector:
    """The detector saved at ``path`` (default :data:`BUNDLED_PATH`), loaded once per process.

    Raises:
        DataError: the file is missing or not a detector's weights (the message names it).
    """
    path = Path(path) if path is not None else BUNDLED_PATH
    try:
        with np.load(path) as z:
            arrays = {name: z[name].astype(np.float32) for name in ("mean", "std", "w1", "b1", "w2", "b2")}
            context = int(z["context"])
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"{path}: cannot read the bilabial detector ({error}); reinstall facemotion "
                        "or retrain it with facemotion train-bilabial") from error
    if arrays["w1"].ndim == 2:  # one network saved without the ensemble axis
        arrays = {name: a[None] for name, a in arrays.items()}
    return BilabialDetector(**arrays, context=context)


CHUNK_S = 300.0
"""Audio encoded at once by :func:`audio_probability`, seconds (memory stays bounded for an hour)."""


def audio_probability(detector: BilabialDetector, model, wave: np.ndarray, chunk_s: float = CHUNK_S,
                      margin_s: float = 10.0) -> np.ndarray:
    """The detector's probability of /p b m/ for each 20 ms frame of a 16 kHz waveform ``[N]``,
    ``[ceil(N / 320)]`` float32.

    The waveform is encoded (:func:`~facemotion.audio.whisper.encoder_states`) in pieces of
    ``chunk_s`` seconds, each with ``margin_s`` seconds of audio on either side whose frames are
    dropped, so memory does not grow with the length of the audio.

    Args:
        detector: :func:`load_detector`'s; model: a loaded Whisper (:func:`~facemotion.audio.whisper.load_whisper`).
    Raises:
        ValueError: the model's states are not as wide as the detector's.
    """
    from facemotion.audio.whisper import encoder_states

    per_frame = int(16000 / RATE)
    count = max(1, int(np.ceil(len(wave) / per_frame)))
    step, margin = int(chunk_s * RATE), int(margin_s * RATE)
    out = np.zeros(count, np.float32)
    for start in range(0, count, step):
        lo, hi = max(0, start - margin), min(count, start + step + margin)
        p = detector.probability(encoder_states(model, wave[lo * per_frame : hi * per_frame]))
        stop = min(count, start + step)
        out[start:stop] = p[start - lo : stop - lo]
    return out


@functools.lru_cache(maxsize=4)
def detector_digest(path: str | os.PathLike | None = None) -> str:
    """SHA-256 of the detector's file (default :data:`BUNDLED_PATH`), e.g. to key caches of phones.

    Raises:
        DataError: the file is missing (the message names it).
    """
    import hashlib

    path = Path(path) if path is not None else BUNDLED_PATH
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise DataError(f"{path}: cannot read the bilabial detector ({error})") from error


def detections(probability: np.ndarray, threshold: float = THRESHOLD) -> list[tuple[float, float]]:
    """Runs of frames whose probability exceeds ``threshold``, as ``(start, end)`` seconds
    (frame ``i`` spans ``[i, i+1) / RATE``)."""
    above = np.concatenate([[False], np.asarray(probability) > threshold, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    return [(a / RATE, b / RATE) for a, b in zip(edges[::2], edges[1::2])]


def add_bilabials(segments: Sequence, probability: np.ndarray, threshold: float = THRESHOLD,
                  tolerance: float = TOLERANCE_S, min_duration: float = MIN_DURATION_S) -> list:
    """Phone segments with an ``"M"`` wherever the detector hears a /p b m/ they lack.

    Each run of :func:`detections` at least ``min_duration`` seconds long that overlaps no
    /p b m/ of ``segments`` widened by ``tolerance`` seconds replaces what ``segments`` hold
    over its span with one ``"M"`` (``word`` None); the segments it cuts keep their parts
    outside it.

    Args:
        segments: contiguous :class:`~facemotion.audio.phones.PhoneSegment` list, seconds.
        probability: ``[F]`` per-frame probabilities at :data:`RATE` Hz (:meth:`BilabialDetector.probability`).
    Returns:
        Contiguous segments covering the same time.
    """
    out = list(segments)
    near = [(s.start - tolerance, s.end + tolerance) for s in out if s.phone in BILABIALS]
    end = out[-1].end if out else 0.0
    for start, stop in detections(probability, threshold):
        stop = min(stop, end)
        if stop - start < min_duration - 1e-9 or any(start < b and a < stop for a, b in near):
            continue
        kept = []
        for seg in out:
            if seg.end <= start or seg.start >= stop:
                kept.append(seg)
                continue
            if seg.start < start:
                kept.append(dataclasses.replace(seg, end=start))
            if seg.end > stop:
                kept.append(dataclasses.replace(seg, start=stop))
        out = sorted(kept + [type(out[0])("M", start, stop)], key=lambda s: s.start)
    return out
