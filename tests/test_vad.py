"""Speech activity (issue 12, item 3): silence and noise leave the mouth at rest, speech still
moves it, and a recording without speech says so in one line."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from facemotion.audio.io import SAMPLE_RATE, load_audio
from facemotion.audio.vad import VadSettings, activity_from_segments, detect_speech, speech_activity
from facemotion.errors import AudioWarning
from facemotion.face.gate import gate_motion
from facemotion.face.space import BlendshapeSpace
from facemotion.metrics.lipsync import aperture_from_blendshapes

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cmu_arctic_slt_a0009.wav"
DEFAULT_MODEL = ROOT / "src" / "facemotion" / "pretrained" / "default.pt"
FPS = 25.0


def silence() -> np.ndarray:
    return np.zeros(5 * SAMPLE_RATE, np.float32)


def white_noise(level: float = 0.1) -> np.ndarray:
    return (level * np.random.default_rng(0).standard_normal(5 * SAMPLE_RATE)).astype(np.float32)


def test_activity_is_zero_on_silence_and_noise_and_one_in_speech():
    for wave in (silence(), white_noise(0.01), white_noise(0.1), white_noise(0.5)):
        assert not speech_activity(wave, 125, FPS).any()
    wave = load_audio(EXAMPLE)
    frames = int(round(len(wave) / SAMPLE_RATE * FPS))
    activity = speech_activity(wave, frames, FPS)
    assert activity.shape == (frames,) and activity.dtype == np.float32
    assert activity.min() >= 0 and activity.max() <= 1
    speech = slice(int(0.3 * FPS), int(2.9 * FPS))  # "He turned sharply, ... across the table."
    assert np.all(activity[speech] == 1.0)


def test_activity_ramps_outside_padded_speech():
    activity = activity_from_segments([(1.0, 2.0)], 100, FPS, VadSettings(pad_s=0.2, ramp_s=0.2))
    t = (np.arange(100) + 0.5) / FPS
    assert np.all(activity[(t > 0.9) & (t < 2.1)] == 1.0)     # speech, and half its 0.2 s padding
    assert np.all(activity[(t < 0.7) | (t > 2.3)] == 0.0)     # beyond the ramp centred on each padded edge
    ramp = activity[(t > 0.7) & (t < 0.9)]
    assert ramp.size and np.all((ramp > 0) & (ramp < 1)) and np.all(np.diff(ramp) > 0)


def test_gate_rests_mouth_and_keeps_eyes():
    names = BlendshapeSpace.names
    rng = np.random.default_rng(1)
    motion = rng.uniform(0, 1, (50, len(names))).astype(np.float32)
    activity = np.r_[np.zeros(25), np.ones(25)]
    out = gate_motion(motion, activity, names, fps=FPS)
    assert out.shape == motion.shape and out.dtype == motion.dtype
    mouth = [i for i, n in enumerate(names) if n.startswith(("jaw", "mouth")) or n in ("cheekPuff", "tongueOut")]
    other = [i for i, n in enumerate(names) if i not in mouth and not n.startswith("head")]
    assert len(mouth) == 29 and names.index("eyeBlinkLeft") in other
    assert np.all(out[:25, mouth] == 0) and np.allclose(out[25:, mouth], motion[25:, mouth])
    assert np.array_equal(out[:, other], motion[:, other])
    head = [names.index(n) for n in ("headPitch", "headYaw", "headRoll")]
    assert np.allclose(out[25:, head], motion[25:, head], atol=0.5)
    assert out[:25, head].std() < motion[:25, head].std()   # calmer where nobody speaks
    with pytest.raises(ValueError):
        gate_motion(motion, activity[:10], names)
    with pytest.raises(ValueError):
        gate_motion(motion[:, :10], activity, names)


def test_idle_blinks_outside_speech_only():
    names = BlendshapeSpace.names
    still = np.zeros((int(60 * FPS), len(names)), np.float32)  # a minute of a model that never blinks
    activity = np.r_[np.zeros(750), np.ones(750)]  # silence, then speech
    out = gate_motion(still, activity, names, fps=FPS, rng=np.random.default_rng(0))
    blink = out[:, names.index("eyeBlinkLeft")]
    assert np.array_equal(blink, out[:, names.index("eyeBlinkRight")])
    closed = (blink[1:] > 0.9) & (blink[:-1] <= 0.9)  # blink onsets
    assert 3 <= closed[:750].sum() <= 20  # ~16 a minute in 30 s of silence
    assert not blink[750:].any()  # the model's own eyes during speech
    again = gate_motion(still, activity, names, fps=FPS, rng=np.random.default_rng(0))
    assert np.array_equal(out, again)
    assert not gate_motion(still, activity, names, fps=FPS).any()  # no rng: no blinks added


def test_no_speech_warns_once_and_silent_file_is_not_warned_twice():
    with pytest.warns(AudioWarning, match="noise.wav: no speech detected; the mouth stays at rest"):
        detect_speech(white_noise(), 125, FPS, Path("noise.wav"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detect_speech(silence(), 125, FPS, Path("silent.wav"))  # load_audio has said "silent"
        detect_speech(load_audio(EXAMPLE), 78, FPS, EXAMPLE)


@pytest.fixture(scope="module")
def animator():
    from facemotion import Animator

    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"no shipped model at {DEFAULT_MODEL}")
    return Animator.from_pretrained("default")


def generate(animator, audio):
    """The one Animation of ``animator.generate(audio, seed=0)`` (an Animation or a list of one)."""
    result = animator.generate(audio, seed=0)
    return result[0] if isinstance(result, list) else result


def mean_aperture_mm(animation) -> float:
    return 1e3 * float(aperture_from_blendshapes(animation.blendshapes).mean())


NEUTRAL_MM = 1e3 * float(aperture_from_blendshapes(np.zeros((1, 52)))[0])


@pytest.mark.parametrize("make", [silence, white_noise])
def test_silence_and_noise_rest_within_1mm_of_neutral(animator, make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AudioWarning)
        result = generate(animator, make())
    assert abs(mean_aperture_mm(result) - NEUTRAL_MM) < 1.0, (mean_aperture_mm(result), NEUTRAL_MM)
    assert result.blendshapes[:, BlendshapeSpace.names.index("eyeBlinkLeft")].max() > 0.9  # still blinks


def test_speech_still_moves_the_mouth(animator):
    aperture = mean_aperture_mm(generate(animator, EXAMPLE))
    assert aperture > NEUTRAL_MM + 5.0, aperture


def test_generate_on_noise_warns_in_one_line(tmp_path):
    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"no shipped model at {DEFAULT_MODEL}")
    noise = tmp_path / "noise.wav"
    sf.write(noise, white_noise(), SAMPLE_RATE)
    proc = subprocess.run([sys.executable, "-m", "facemotion.cli", "generate", str(noise), "-o", str(tmp_path / "out"),
                           "--formats", "npz", "--seed", "0"], capture_output=True, text=True, timeout=600,
                          env={**os.environ})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"facemotion: warning: {noise}: no speech detected; "
                                                "the mouth stays at rest"], proc.stderr
    with np.load(tmp_path / "out" / "noise.npz") as z:
        aperture = 1e3 * float(aperture_from_blendshapes(z["blendshapes"]).mean())
    assert abs(aperture - NEUTRAL_MM) < 1.0
