"""Long audio in pieces (issue 12, item 7): cuts in pauses, on frame boundaries, pieces of bounded
length, the same frames as a whole-file encoder, and short audio encoded whole as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facemotion.audio.io import SAMPLE_RATE, load_audio
from facemotion.audio.stream import encode_in_pieces, piece_frames
from facemotion.audio.vad import speech_probability

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cmu_arctic_slt_a0009.wav"
FPS = 25.0
HOP = int(SAMPLE_RATE / FPS)


@pytest.fixture(scope="module")
def long_speech() -> np.ndarray:
    """150.3 s: the example recording and 1.2 s of silence, over and over."""
    speech = load_audio(EXAMPLE)
    unit = np.concatenate([speech, np.zeros(int(1.2 * SAMPLE_RATE), np.float32)])
    return np.resize(unit, int(150.3 * SAMPLE_RATE))


def frame_means(wave: np.ndarray) -> np.ndarray:
    """A toy encoder: ``[round(N / 640), 1]`` mean of each frame's samples."""
    frames = max(1, int(round(len(wave) / HOP)))
    padded = np.pad(wave, (0, max(0, frames * HOP - len(wave))), mode="edge")[: frames * HOP]
    return padded.reshape(frames, HOP).mean(axis=1, keepdims=True)


def test_short_audio_is_encoded_whole():
    wave = np.random.default_rng(0).standard_normal(int(59.9 * SAMPLE_RATE)).astype(np.float32)
    calls = []
    out = encode_in_pieces(lambda w: calls.append(len(w)) or frame_means(w), wave, FPS)
    assert calls == [len(wave)] and np.array_equal(out, frame_means(wave))


def test_long_audio_is_cut_in_pauses_into_bounded_pieces(long_speech):
    frames = int(round(len(long_speech) / HOP))
    cuts = piece_frames(long_speech, frames, FPS)
    assert cuts[0] == 0 and cuts[-1] == frames and len(cuts) == 4, cuts  # 3 pieces
    lengths = np.diff(cuts) / FPS
    assert np.all(lengths <= 60.0) and np.all(lengths >= 30.0), lengths
    prob = speech_probability(long_speech)
    for cut in cuts[1:-1]:  # each cut lies in a pause: no speech within 0.2 s of it
        window = int(cut / FPS * SAMPLE_RATE / 512)
        assert prob[window - 6 : window + 7].max() < 0.2, (cut, prob[window - 6 : window + 7])

    sizes = []
    out = encode_in_pieces(lambda w: sizes.append(len(w)) or frame_means(w), long_speech, FPS)
    assert sum(sizes) == len(long_speech) and all(s % HOP == 0 for s in sizes[:-1])
    assert np.array_equal(out, frame_means(long_speech))  # the same frames as encoded whole


def test_pieces_of_a_torch_encoder_are_joined_as_torch(long_speech):
    import torch

    out = encode_in_pieces(lambda w: torch.from_numpy(frame_means(w)), long_speech, FPS)
    assert isinstance(out, torch.Tensor) and out.shape == (int(round(len(long_speech) / HOP)), 1)


def test_bad_arguments():
    with pytest.raises(ValueError):
        piece_frames(np.zeros((2, 100), np.float32), 10, FPS)
    with pytest.raises(ValueError):
        piece_frames(np.zeros(100, np.float32), 10, FPS, piece_s=10, min_piece_s=20)
