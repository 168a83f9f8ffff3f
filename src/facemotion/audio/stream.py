"""Long audio in pieces: features of an hour of speech in linear time and bounded memory.

The phone searches (Whisper's transcript, word recognition) and the spectrograms work on a
whole waveform at once; on an hour of speech that holds gigabytes (Whisper's log-mel of the
whole file, its segments, the full STFT). :func:`encode_in_pieces` cuts a long waveform into
pieces of at most :data:`PIECE_S` seconds, each ending in a pause found by the voice-activity
detector (:mod:`facemotion.audio.vad`) and on a motion frame boundary, encodes the pieces one
after another and joins their features, so memory is that of one piece and time grows linearly.
A waveform no longer than one piece is encoded whole, exactly as before.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from facemotion.audio.io import SAMPLE_RATE

PIECE_S = 60.0
"""Longest piece encoded at once, seconds (the features of shorter audio are unchanged)."""

MIN_PIECE_S = 30.0
"""Shortest piece, seconds: each cut is looked for between this and :data:`PIECE_S` after the
previous one."""

PAUSE_BELOW = 0.2
"""Silero VAD probability below which a 32 ms window counts as a pause (its ``neg_threshold``)."""


def piece_frames(wave: np.ndarray, num_frames: int, fps: float, piece_s: float = PIECE_S,
                 min_piece_s: float = MIN_PIECE_S) -> list[int]:
    """Frame indices where a long waveform is cut: ``[0, f_1, ..., num_frames]``.

    Each cut lies between ``min_piece_s`` and ``piece_s`` seconds after the previous one (and,
    where possible, ``min_piece_s`` before the end), in the middle of the longest pause there (the
    latest of equally long ones; a pause is a run of 32 ms windows of Silero VAD probability below
    :data:`PAUSE_BELOW`), or at the least speech-like window when there is no pause.

    Args:
        wave: ``[N]`` float32 waveform, 16 kHz mono.
        num_frames: T, frames of the features (at ``fps``) covering the waveform.
        fps: frame rate of the features (frames per second).
        piece_s, min_piece_s: longest and shortest piece, seconds (``0 < min_piece_s <= piece_s``).
    Returns:
        Strictly increasing frame indices, first 0, last ``num_frames``; ``[0, num_frames]`` when
        the waveform is no longer than ``piece_s``.
    Raises:
        ValueError: ``wave`` is not one-dimensional, or the piece lengths are not as above.
    """
    if not 0 < min_piece_s <= piece_s:
        raise ValueError(f"need 0 < min_piece_s <= piece_s, got {min_piece_s}, {piece_s}")
    wave = np.asarray(wave, np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform [N], got shape {wave.shape}")
    per_frame = max(1, int(round(piece_s * fps)))
    if num_frames <= per_frame:
        return [0, int(num_frames)]
    from facemotion.audio.vad import WINDOW, speech_probability

    prob = speech_probability(wave)
    window_s = WINDOW / SAMPLE_RATE
    cuts = [0]
    while num_frames - cuts[-1] > per_frame:
        start_s = cuts[-1] / fps
        end_s = min(start_s + piece_s, num_frames / fps - min_piece_s)  # the last piece no shorter
        if end_s < start_s + min_piece_s:
            end_s = start_s + piece_s
        lo = int(np.ceil((start_s + min_piece_s) / window_s))
        hi = min(len(prob), int(end_s / window_s))
        segment = prob[lo:hi]
        if segment.size == 0:
            cut_s = start_s + piece_s
        else:
            quiet = np.r_[False, segment < PAUSE_BELOW, False]
            edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
            if edges.size:
                starts, ends = edges[0::2], edges[1::2]
                lengths = ends - starts
                k = len(lengths) - 1 - int(np.argmax(lengths[::-1]))  # the longest; the last of equals
                centre = lo + 0.5 * (starts[k] + ends[k])
            else:
                centre = lo + int(np.argmin(segment)) + 0.5
            cut_s = centre * window_s
        cut = int(round(cut_s * fps))
        cut = min(max(cut, cuts[-1] + 1), cuts[-1] + per_frame)
        cuts.append(cut)
    return cuts + [int(num_frames)]


def encode_in_pieces(encode: Callable[[np.ndarray], object], wave: np.ndarray, fps: float,
                     piece_s: float = PIECE_S, min_piece_s: float = MIN_PIECE_S):
    """Features of a waveform computed piece by piece (:func:`piece_frames`) and joined.

    Args:
        encode: features of a waveform, ``[N] float32 (16 kHz) -> [round(N / 16000 · fps), C]``
            (numpy or torch), e.g. a recipe's ``audio_features``.
        wave: ``[N]`` float32 waveform, 16 kHz mono.
        fps: frame rate of ``encode``'s features (frames per second).
        piece_s, min_piece_s: see :func:`piece_frames`.
    Returns:
        ``[T, C]``, ``T = max(1, round(N / 16000 · fps))``, of ``encode``'s type; exactly
        ``encode(wave)`` when the waveform is no longer than ``piece_s``. Each piece covers the
        samples of its frames (frame ``t`` spans ``[t, t + 1) / fps`` seconds); a piece whose
        features come out a frame longer or shorter (fps not dividing 16000) is cut or
        edge-padded to its frames.
    Raises:
        ValueError: ``wave`` is not one-dimensional.
    """
    wave = np.asarray(wave, np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform [N], got shape {wave.shape}")
    num_frames = max(1, int(round(len(wave) / SAMPLE_RATE * fps)))
    cuts = piece_frames(wave, num_frames, fps, piece_s, min_piece_s)
    if len(cuts) == 2:
        return encode(wave)
    parts = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        lo = int(round(a * SAMPLE_RATE / fps))
        hi = len(wave) if b == num_frames else int(round(b * SAMPLE_RATE / fps))
        part = encode(wave[lo:hi])
        if len(part) != b - a:
            index = np.minimum(np.arange(b - a), len(part) - 1)
            part = part[index]
        parts.append(part)
    if hasattr(parts[0], "detach"):  # torch
        import torch

        return torch.cat(parts, dim=0)
    return np.concatenate(parts, axis=0)
