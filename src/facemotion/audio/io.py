"""Decoding speech files (WAV, FLAC, OGG, MP3, and anything ffmpeg reads) to mono 16 kHz float32."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from facemotion.errors import AudioError

SAMPLE_RATE = 16000
"""Sample rate (Hz) of every waveform handed to the rest of the package."""

MIN_DURATION = 0.2
"""Shortest accepted speech file, seconds."""

SILENCE_LEVEL = 1e-4
"""Peak amplitude (full scale = 1) below which a file is reported as silent."""

_BLOCK_SECONDS = 30.0


def load_audio(path: str | Path) -> np.ndarray:
    """Read a speech file as mono 16 kHz float32 samples in [-1, 1].

    WAV, FLAC and OGG (and MP3 where libsndfile supports it) are read by soundfile in
    blocks of 30 s, each block downmixed (channel mean) and resampled with a streaming
    soxr resampler, so memory beyond the output array stays bounded for hour-long files.
    Other formats (MP3 without libsndfile support, M4A, ...) are decoded by the bundled
    ffmpeg (``imageio_ffmpeg``).

    Args:
        path: audio file.

    Returns:
        ``[N]`` float32 waveform at ``SAMPLE_RATE`` (16 kHz).

    Raises:
        AudioError: file missing, not an audio file, empty, or shorter than 0.2 s; the
            message starts with the path.

    Warns:
        UserWarning: when the file is silent (peak amplitude below ``SILENCE_LEVEL``).
    """
    path = Path(path)
    _check_exists(path)
    try:
        wave = _read_soundfile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_error:
        wave = _read_ffmpeg(path, sf_error)
    if wave.size == 0:
        raise AudioError(f"{path}: empty audio file (0 samples)")
    duration = wave.size / SAMPLE_RATE
    if duration < MIN_DURATION:
        raise AudioError(f"{path}: too short ({duration:.3f} s; at least {MIN_DURATION} s of speech needed)")
    if float(np.max(np.abs(wave))) < SILENCE_LEVEL:
        warnings.warn(f"{path}: audio is silent (peak below {SILENCE_LEVEL})", stacklevel=2)
    return wave


def audio_duration(path: str | Path) -> float:
    """Duration of an audio file in seconds, from its header where possible.

    Raises:
        AudioError: file missing or not an audio file (message starts with the path).
    """
    path = Path(path)
    _check_exists(path)
    try:
        return float(sf.info(str(path)).duration)
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_error:
        return _read_ffmpeg(path, sf_error).size / SAMPLE_RATE


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if not path.is_file():
        raise AudioError(f"{path}: not a file")


def _read_soundfile(path: Path) -> np.ndarray:
    """Block-wise soundfile read, downmix and streaming resample to 16 kHz."""
    with sf.SoundFile(str(path)) as f:
        rate = f.samplerate
        block = max(1, int(_BLOCK_SECONDS * rate))
        resampler = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
        expected = int(np.ceil(f.frames * SAMPLE_RATE / rate)) + 16 if f.frames > 0 else 0
        out = np.empty(expected, dtype=np.float32)
        filled = 0
        while True:
            chunk = f.read(block, dtype="float32", always_2d=True)
            last = len(chunk) < block
            mono = chunk.mean(axis=1, dtype=np.float32) if chunk.shape[1] > 1 else chunk[:, 0]
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            if filled + len(mono) > len(out):  # header frame count was too small (e.g. some MP3s)
                out = np.concatenate([out[:filled], np.empty(filled + len(mono), dtype=np.float32)])
            out[filled : filled + len(mono)] = mono
            filled += len(mono)
            if last:
                break
    return out[:filled]


def _read_ffmpeg(path: Path, sf_error: Exception) -> np.ndarray:
    """Decode with the bundled ffmpeg to 16 kHz mono s16le; AudioError when ffmpeg cannot read it."""
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path),
               "-map", "0:a:0", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-"]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        reason = str(sf_error).splitlines()[0] if str(sf_error) else type(sf_error).__name__
        raise AudioError(f"{path}: not an audio file ({reason})")
    return np.frombuffer(result.stdout, dtype="<i2").astype(np.float32) / 32768.0
