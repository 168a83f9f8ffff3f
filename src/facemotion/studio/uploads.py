"""What the studio accepts from a request: bare display names, size-capped bodies, audio by content.

Nothing here trusts the client: a file name is only ever shown back (never a path), a body is
written to a server-made path in chunks and dropped as soon as it passes the size limit, and a
speech upload is accepted when its first bytes are those of an audio container *and* the
project's reader (:func:`facemotion.audio.io.load_audio`) decodes it.
"""

from __future__ import annotations

import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from facemotion.errors import AudioError, FacemotionError


class RejectedUpload(FacemotionError):
    """A request the studio refuses; ``status`` is the HTTP status (4xx) it answers with, the
    message one line for the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


MAX_NAME_LENGTH = 200
"""Longest display name accepted for an upload (characters)."""

#: leading bytes of the audio containers accepted (offset, bytes, container)
AUDIO_SIGNATURES = ((0, b"RIFF", "wav"), (0, b"fLaC", "flac"), (0, b"OggS", "ogg"), (0, b"ID3", "mp3"),
                    (0, b"\x1a\x45\xdf\xa3", "webm"), (4, b"ftyp", "mp4"), (0, b"FORM", "aiff"))


def check_name(name: str | None) -> str:
    """A client's file name, accepted only as a bare name to show back (never used as a path).

    Args:
        name: the name the client sent, or None.
    Returns:
        the name, or ``"recording"`` when none was sent.
    Raises:
        RejectedUpload: 400 when the name holds a path (a separator, ``..``, a drive), control
            characters, or is longer than :data:`MAX_NAME_LENGTH`.
    """
    if not name:
        return "recording"
    bare = PurePosixPath(name).name == name and PureWindowsPath(name).name == name
    if not bare or name in (".", "..") or any(ord(c) < 32 for c in name):
        raise RejectedUpload(400, f"file name {name!r} is not a bare file name (no folders, no '..')")
    if len(name) > MAX_NAME_LENGTH:
        raise RejectedUpload(400, f"file name longer than {MAX_NAME_LENGTH} characters")
    return name


async def save_body(chunks, path: Path, max_bytes: int) -> int:
    """Write a request body to ``path`` chunk by chunk, refusing more than ``max_bytes``.

    Args:
        chunks: async iterator of ``bytes`` (Starlette's ``request.stream()``).
        path: server-made destination (its folder exists).
        max_bytes: size limit in bytes.
    Returns:
        the number of bytes written.
    Raises:
        RejectedUpload: 413 past the limit (the partial file is removed), 400 for an empty body.
    """
    size = 0
    try:
        with open(path, "wb") as f:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise RejectedUpload(413, f"upload larger than the limit of {max_bytes / 1e6:g} MB")
                f.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise RejectedUpload(400, "empty upload")
    return size


def require_magic(path: Path, magic: bytes, message: str) -> None:
    """Refuse a file whose first bytes are not ``magic``.

    Raises:
        RejectedUpload: 415 with ``message``.
    """
    with open(path, "rb") as f:
        if f.read(len(magic)) != magic:
            raise RejectedUpload(415, message)


def sniff_audio(path: Path) -> str:
    """The audio container of a file by its first bytes (:data:`AUDIO_SIGNATURES`; MPEG audio
    frames are recognised by their sync word).

    Returns:
        ``"wav"``, ``"flac"``, ``"ogg"``, ``"mp3"``, ``"webm"``, ``"mp4"`` or ``"aiff"``.
    Raises:
        RejectedUpload: 415 when the bytes are not those of an accepted audio container.
    """
    with open(path, "rb") as f:
        head = f.read(12)
    for offset, magic, kind in AUDIO_SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return kind
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "mp3"
    raise RejectedUpload(415, "not an audio file (accepted: WAV, FLAC, OGG, MP3, WebM/Opus, M4A, AIFF)")


def decode_speech(path: Path, max_seconds: float) -> np.ndarray:
    """Decode an uploaded speech file after :func:`sniff_audio`, within a duration limit.

    Args:
        path: the server-made upload path.
        max_seconds: longest accepted speech, seconds.
    Returns:
        ``[N]`` float32 waveform at 16 kHz.
    Raises:
        RejectedUpload: 415 not audio (by content) or undecodable, 422 empty or too short,
            413 longer than ``max_seconds``; messages do not show the server's paths.
    """
    from facemotion.audio.io import SAMPLE_RATE, load_audio

    sniff_audio(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # level warnings are for the command line
            wave = load_audio(path)
    except AudioError as exc:
        message = str(exc).replace(f"{path}: ", "").replace(str(path), "upload")
        raise RejectedUpload(415 if "not an audio file" in message else 422, message) from None
    seconds = len(wave) / SAMPLE_RATE
    if seconds > max_seconds:
        raise RejectedUpload(413, f"speech of {seconds:.1f} s is longer than the limit of {max_seconds:g} s")
    return wave


def wave_to_wav(wave: np.ndarray, path: Path) -> Path:
    """Write a 16 kHz mono waveform ``[N]`` (float32 in [-1, 1]) as 16-bit PCM WAV (what the page
    plays and the video muxes); returns ``path``."""
    import soundfile as sf

    from facemotion.audio.io import SAMPLE_RATE

    sf.write(str(path), np.asarray(wave, np.float32), SAMPLE_RATE, subtype="PCM_16")
    return path
