"""Decoding speech files (WAV, FLAC, OGG, MP3, and anything ffmpeg reads) to mono 16 kHz float32."""

from __future__ import annotations

import struct
import subprocess
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from facemotion.errors import AudioError, AudioWarning

SAMPLE_RATE = 16000
"""Sample rate (Hz) of every waveform handed to the rest of the package."""

MIN_DURATION = 0.2
"""Shortest accepted speech file, seconds."""

SILENCE_LEVEL = 1e-4
"""Peak amplitude (full scale = 1) below which a file is reported as silent (-80 dBFS)."""

LOW_LEVEL = 0.01
"""Peak amplitude below which a file is reported as very quiet (-40 dBFS)."""

CLIP_LEVEL, CLIP_FRACTION = 0.99, 0.001
"""A file is reported as clipped when more than ``CLIP_FRACTION`` of its 16 kHz samples reach
``CLIP_LEVEL`` of full scale."""

TRUNCATION_TOLERANCE = 0.05
"""Seconds of audio a file may lack against its header before it is reported as truncated."""

_BLOCK_SECONDS = 30.0


def load_audio(path: str | Path, level_warnings: bool = True) -> np.ndarray:
    """Read a speech file as mono 16 kHz float32 samples in [-1, 1].

    WAV, FLAC and OGG (and MP3 where libsndfile supports it) are read by soundfile in
    blocks of 30 s, each block downmixed (channel mean) and resampled with a streaming
    soxr resampler, so memory beyond the output array stays bounded for hour-long files.
    Other formats (MP3 without libsndfile support, M4A, ...) are decoded by the bundled
    ffmpeg (``imageio_ffmpeg``).

    Args:
        path: audio file.
        level_warnings: warn of silent, very quiet and clipped files (datasets whose clips are
            degraded on purpose turn this off).

    Returns:
        ``[N]`` float32 waveform at ``SAMPLE_RATE`` (16 kHz).

    Raises:
        AudioError: file missing, not an audio file, empty, or shorter than 0.2 s; the
            message starts with the path.

    Warns:
        AudioWarning: the file holds less audio than its header says (truncated); and with
            ``level_warnings``: no signal (peak below :data:`SILENCE_LEVEL`), a very low level
            (peak below :data:`LOW_LEVEL`), clipping (:data:`CLIP_FRACTION`). The message starts
            with the path; the CLI prints it as one line.
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
    declared = _declared_duration(path)
    if declared is not None and duration < declared - TRUNCATION_TOLERANCE:
        warnings.warn(f"{path}: truncated: holds {duration:.2f} s of audio but its header says "
                      f"{declared:.2f} s", AudioWarning, stacklevel=2)
    if level_warnings:
        peak = float(np.max(np.abs(wave)))
        clipped = float(np.mean(np.abs(wave) >= CLIP_LEVEL))
        if peak < SILENCE_LEVEL:
            warnings.warn(f"{path}: silent (no signal: peak below {_dbfs(SILENCE_LEVEL)})",
                          AudioWarning, stacklevel=2)
        elif peak < LOW_LEVEL:
            warnings.warn(f"{path}: very low level (peak {_dbfs(peak)}); the animation may barely move",
                          AudioWarning, stacklevel=2)
        elif clipped > CLIP_FRACTION:
            warnings.warn(f"{path}: clipped ({100 * clipped:.1f}% of samples at full scale)",
                          AudioWarning, stacklevel=2)
    return wave


def _dbfs(amplitude: float) -> str:
    return f"{20 * np.log10(amplitude):.0f} dBFS"


def _declared_duration(path: Path) -> float | None:
    """Seconds of audio the file's header promises, or None when it does not say.

    A WAV's data chunk size is read directly, since libsndfile clamps a WAV's frame count to the
    bytes present; a FLAC's STREAMINFO sample count is exact; other formats do not say reliably.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) == 12 and head[:4] == b"RIFF" and head[8:] == b"WAVE":
            block_align = rate = None
            while chunk := f.read(8):
                if len(chunk) < 8:
                    return None
                name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"fmt ":
                    fmt = f.read(size + size % 2)
                    if len(fmt) < 14:
                        return None
                    rate, block_align = struct.unpack("<I", fmt[4:8])[0], struct.unpack("<H", fmt[12:14])[0]
                elif name == b"data":
                    streamed = size in (0, 0xFFFFFFFF)  # written without a final size
                    return None if streamed or not (rate and block_align) else size / block_align / rate
                else:
                    f.seek(size + size % 2, 1)
            return None
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None
    return info.duration if info.format == "FLAC" and info.frames > 0 else None


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
