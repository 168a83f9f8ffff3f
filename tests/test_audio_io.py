import subprocess
import warnings

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from facemotion.audio.io import SAMPLE_RATE, audio_duration, load_audio
from facemotion.errors import AudioError


def _sine(rate, seconds=1.0, freq=440.0, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def _peak_frequency(wave):
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return np.argmax(spectrum) * SAMPLE_RATE / len(wave)


@pytest.mark.parametrize("name,rate,channels,fmt", [
    ("a.wav", 44100, 2, {"subtype": "PCM_16"}),
    ("a.flac", 22050, 1, {}),
    ("a.ogg", 48000, 1, {"format": "OGG", "subtype": "VORBIS"}),
])
def test_formats_resampled_to_16k(tmp_path, name, rate, channels, fmt):
    path = tmp_path / name
    sf.write(path, _sine(rate, 1.5, 440.0, channels), rate, **fmt)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 1.5 * SAMPLE_RATE) <= 2
    assert abs(_peak_frequency(wave) - 440.0) < 2.0
    assert 0.4 < np.abs(wave).max() < 0.6
    assert audio_duration(path) == pytest.approx(1.5, abs=1e-3)


@pytest.mark.parametrize("name", ["a.mp3", "a.m4a"])  # m4a: soundfile cannot read it, ffmpeg path
def test_compressed_formats(tmp_path, name):
    src, path = tmp_path / "src.wav", tmp_path / name
    sf.write(src, _sine(32000, 2.0, 1000.0), 32000)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(src), str(path)], check=True)
    wave = load_audio(path)
    assert abs(len(wave) / SAMPLE_RATE - 2.0) < 0.1  # encoder padding
    assert abs(_peak_frequency(wave) - 1000.0) < 3.0


def test_block_reading_matches_one_shot(tmp_path, monkeypatch):
    import soxr

    import facemotion.audio.io as io

    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.5, 0.5, (44100 * 3, 2)).astype(np.float32)
    path = tmp_path / "noise.wav"
    sf.write(path, stereo, 44100, subtype="FLOAT")
    monkeypatch.setattr(io, "_BLOCK_SECONDS", 0.37)
    blocked = load_audio(path)
    whole = soxr.resample(stereo.mean(axis=1), 44100, SAMPLE_RATE)
    assert len(blocked) == len(whole)
    np.testing.assert_allclose(blocked, whole, atol=1e-4)


def test_errors_name_the_path(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioError, match=r"^.*missing\.wav: file not found"):
        load_audio(missing)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioError, match=r"notes\.wav: not an audio file"):
        load_audio(text)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 16000)
    with pytest.raises(AudioError, match=r"empty\.wav: empty"):
        load_audio(empty)
    short = tmp_path / "short.wav"
    sf.write(short, _sine(16000, 0.1), 16000)
    with pytest.raises(AudioError, match=r"short\.wav: too short"):
        load_audio(short)
    for path in (missing, text, empty, short):
        with pytest.raises(AudioError) as info:
            load_audio(path)
        assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_silence_warns(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(16000), 16000)
    with pytest.warns(UserWarning, match="silent"):
        wave = load_audio(path)
    assert len(wave) == 16000
    sf.write(path, _sine(16000), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(path)
