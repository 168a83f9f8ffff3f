"""Audio encoders: waveform ``[B, N]`` at 16 kHz → features ``[B, T, C]`` at the motion frame rate.

Every encoder is an ``AudioEncoder`` (an ``nn.Module``) with ``dim`` (C), ``config()`` (a
dict that ``build_audio_encoder`` turns back into an identical encoder) and
``forward(wave, num_frames, fps)``. Frame ``t`` of the output describes the audio around
time ``(t + 0.5) / fps`` seconds; audio shorter than ``num_frames / fps`` is edge-padded.

- ``mel``: per-utterance normalised log-mel spectrogram (no parameters).
- ``phonetic``: phone segments (pocketsphinx phone loop, recognised words' phones, or
  Whisper's transcript force-aligned): smoothed one-hot phones, viseme classes and a
  confidence channel (no parameters).
- ``whisper``: Whisper encoder states (CTranslate2; the bundled tiny.en or a local directory).
- ``wav2vec2`` / ``hubert``: ``transformers`` models loaded from a local directory; the
  convolutional feature encoder is always frozen and the transformer is fine-tuned when
  ``trainable`` (DiffPoseTalk §3.2.1).
- ``concat``: several encoders, features concatenated along C.
"""

from __future__ import annotations

import functools
import json
import os
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import convolve1d
from torch import nn

from facemotion.audio.io import SAMPLE_RATE
from facemotion.audio.phones import (PHONE_INDEX, PHONES, SEARCHES, VISEMES, VOCABULARY_SIZE, PhoneSegment,
                                     decode_phones, phone_loop, phone_to_viseme)
from facemotion.errors import AudioError, FacemotionError, require
from facemotion.processes import helper_pool


def frame_average(features: np.ndarray, rate: float, num_frames: int, fps: float, first_frame: int = 0,
                  source_offset: int = 0) -> np.ndarray:
    """Resample features by averaging over each output frame's time span.

    Source frame ``j`` covers ``[j, j+1) / rate`` seconds, output frame ``t`` covers
    ``[t, t+1) / fps``; the features are treated as piecewise constant and integrated, so
    downsampling is anti-aliased and upsampling repeats values. Spans past the end reuse
    the last frame.

    Args:
        features: ``[F, C]`` at ``rate`` frames per second: source frames ``source_offset ..
            source_offset + F − 1`` (a stream keeps only the frames it still needs).
        rate: source frame rate (Hz).
        num_frames: T.
        fps: output frame rate (Hz).
        first_frame: index of the first output frame (output frames ``first_frame ..
            first_frame + T − 1``); it must not begin before ``source_offset``.

    Returns:
        ``[T, C]`` float32.
    """
    features = np.asarray(features, dtype=np.float64)
    count = len(features)
    cumulative = np.concatenate([np.zeros((1, features.shape[1])), np.cumsum(features, axis=0)])
    edges = (first_frame + np.arange(num_frames + 1)) * (rate / fps) - source_offset

    def integral(x: np.ndarray) -> np.ndarray:
        beyond = np.clip(x - count, 0.0, None)[:, None]
        x = np.clip(x, 0.0, count)
        k = np.minimum(np.floor(x).astype(int), count - 1)
        return cumulative[k] + (x - k)[:, None] * features[k] + beyond * features[-1]

    spans = (edges[1:] - edges[:-1])[:, None]
    return ((integral(edges[1:]) - integral(edges[:-1])) / spans).astype(np.float32)


def interpolate_frames(features: torch.Tensor, rate: float, num_frames: int, fps: float) -> torch.Tensor:
    """Linear interpolation of ``[B, F, C]`` features at ``rate`` Hz to ``[B, T, C]`` at ``fps``.

    Samples at frame centres ``(t + 0.5) / fps`` seconds (source frame ``j`` centred at
    ``(j + 0.5) / rate``), clamped to the first/last frame; differentiable.
    """
    count = features.shape[1]
    pos = (torch.arange(num_frames, device=features.device, dtype=torch.float32) + 0.5) * (rate / fps) - 0.5
    pos = pos.clamp(0, count - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=count - 1)
    frac = (pos - lo).to(features.dtype)[None, :, None]
    return features[:, lo] * (1 - frac) + features[:, hi] * frac


class AudioEncoder(nn.Module):
    """Base class: ``forward(wave [B, N] float32 16 kHz, num_frames, fps) -> [B, num_frames, dim]``."""

    name: str = ""
    dim: int

    def config(self) -> dict[str, Any]:
        """Settings that ``build_audio_encoder`` turns back into the same encoder (JSON-serialisable)."""
        raise NotImplementedError

    def is_trainable(self) -> bool:
        """True when training fine-tunes this encoder, so it must run inside the training step on
        raw audio windows; False for frozen or parameter-free encoders, whose features are
        computed once and cached (``data.features``). From the settings, not ``requires_grad``."""
        return False

    def forward(self, wave: torch.Tensor, num_frames: int, fps: float) -> torch.Tensor:
        """Encode a batch of waveforms ``[B, N]`` (16 kHz) into ``[B, num_frames, dim]`` at ``fps``."""
        raise NotImplementedError

    @torch.no_grad()
    def encode_numpy(self, wave: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
        """One waveform ``[N]`` (16 kHz) → features ``[num_frames, dim]`` float32 (for caching)."""
        device = next(iter(self.parameters()), torch.empty(0)).device
        out = self(torch.as_tensor(np.asarray(wave, dtype=np.float32), device=device)[None], num_frames, fps)
        return out[0].float().cpu().numpy()


class NumpyEncoder(AudioEncoder):
    """Parameter-free encoder computed in numpy; ``forward`` runs ``encode_numpy`` per batch item."""

    def encode_numpy(self, wave: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
        raise NotImplementedError

    def forward(self, wave: torch.Tensor, num_frames: int, fps: float) -> torch.Tensor:
        waves = wave.detach().float().cpu().numpy()
        feats = np.stack([self.encode_numpy(w, num_frames, fps) for w in waves])
        return torch.from_numpy(feats).to(wave.device)


MEL_N_FFT, MEL_WIN, MEL_HOP = 512, 400, SAMPLE_RATE // 100
"""STFT of the mel features: FFT size, Hann window length and hop, samples at 16 kHz."""


@functools.lru_cache(maxsize=8)
def _mel_basis(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    import librosa.filters

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=MEL_N_FFT, n_mels=n_mels, fmin=fmin, fmax=fmax).T


def mel_power(wave: np.ndarray, n_mels: int, fmin: float, fmax: float, center: bool) -> np.ndarray:
    """Mel power spectrogram ``[F, n_mels]`` of a 16 kHz waveform ``[N]``: the frames of
    ``librosa.feature.melspectrogram(n_fft=512, win_length=400, hop_length=160, power=2)``
    (a periodic Hann window of 400 samples centred in 512, librosa's Slaney mel filterbank
    from ``librosa.filters.mel``; with ``center``, 256 zeros on each side, so frame ``j`` is
    centred on sample ``160 j``; without, frame ``j`` starts there), ``F = 1 + (N' − 512) //
    160`` for the (padded) length ``N'``, equal to librosa's to float32 rounding. The STFT is
    numpy's, so that generating does not import ``librosa.feature`` (2.5 s of start-up: numba).

    Raises:
        ValueError: ``wave`` is not one-dimensional.
    """
    wave = np.asarray(wave, np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform [N], got shape {wave.shape}")
    if center:
        wave = np.pad(wave, MEL_N_FFT // 2)
    if len(wave) < MEL_N_FFT:
        return np.zeros((0, n_mels), np.float32)
    window = np.zeros(MEL_N_FFT, np.float32)
    lo = (MEL_N_FFT - MEL_WIN) // 2
    window[lo:lo + MEL_WIN] = np.hanning(MEL_WIN + 1)[:-1]  # periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(wave, MEL_N_FFT)[::MEL_HOP]
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    return (power @ _mel_basis(int(n_mels), float(fmin), float(fmax))).astype(np.float32)


class MelEncoder(NumpyEncoder):
    """Log-mel spectrogram with per-utterance, per-band mean/variance normalisation.

    25 ms Hann windows every 10 ms (:func:`mel_power`), ``n_mels`` bands between ``fmin`` and
    ``fmax`` Hz, ``log(mel + 1e-6)``, then each band standardised over the utterance and
    averaged over each output frame (``frame_average``). Output ``[T, n_mels]``.
    """

    name = "mel"

    def __init__(self, n_mels: int = 80, fmin: float = 20.0, fmax: float = 7600.0, normalize: bool = True):
        super().__init__()
        self.n_mels, self.fmin, self.fmax, self.normalize = int(n_mels), float(fmin), float(fmax), bool(normalize)
        self.dim = self.n_mels

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "n_mels": self.n_mels, "fmin": self.fmin, "fmax": self.fmax,
                "normalize": self.normalize}

    def encode_numpy(self, wave: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
        logmel = np.log(mel_power(wave, self.n_mels, self.fmin, self.fmax, center=True) + 1e-6)  # [F, n_mels]
        if self.normalize:
            logmel = (logmel - logmel.mean(axis=0)) / (logmel.std(axis=0) + 1e-5)
        return frame_average(logmel, SAMPLE_RATE / MEL_HOP, num_frames, fps)

    def stream(self, fps: float) -> "MelStream":
        """Features of audio pushed chunk by chunk (:class:`MelStream`; ``normalize`` must be false)."""
        return MelStream(self, fps)


class PhoneticEncoder(NumpyEncoder):
    """Phone features: smoothed one-hot phones (40), viseme classes (10) and confidence (1).

    pocketsphinx segments the audio without a transcript, by all-phone decoding
    (``search="phone_loop"``, :func:`phone_loop`), by word recognition with its n-gram
    language model (``search="words"``, :func:`recognize`, ``vocabulary`` words, long audio
    decoded on every core), or by force-aligning Whisper's transcript (``search="asr"``,
    :func:`asr_phones`, the Whisper model in ``asr_model_dir``, by default the bundled one); each
    10 ms frame gets a one-hot over ``PHONES`` and over ``VISEMES`` (if ``visemes``), and
    the segment confidence (if ``confidence``; 1 for recognised words); the frames are
    smoothed with a Hann window of ``smooth`` seconds (soft boundaries, robust to
    segmentation jitter) and averaged over each output frame. Output ``[T, 40 (+10) (+1)]``.

    Raises:
        FacemotionError: unknown ``search``.
        DataError: ``search="asr"`` and the Whisper model is missing or altered (when encoding).
    """

    name = "phonetic"

    def __init__(self, smooth: float = 0.05, visemes: bool = True, confidence: bool = True,
                 search: str = "phone_loop", vocabulary: int = VOCABULARY_SIZE,
                 asr_model_dir: str | Path | None = None):
        super().__init__()
        if search not in SEARCHES:
            raise FacemotionError(f"audio encoder 'phonetic': unknown search {search!r} "
                                  f"(choose from {', '.join(SEARCHES)})")
        self.smooth, self.visemes, self.confidence = float(smooth), bool(visemes), bool(confidence)
        self.search, self.vocabulary = search, int(vocabulary)
        self.asr_model_dir = str(asr_model_dir) if asr_model_dir is not None else None
        self.dim = len(PHONES) + (len(VISEMES) if self.visemes else 0) + int(self.confidence)

    def config(self) -> dict[str, Any]:
        config = {"name": self.name, "smooth": self.smooth, "visemes": self.visemes,
                  "confidence": self.confidence, "search": self.search}
        if self.search in ("words", "asr"):
            config["vocabulary"] = self.vocabulary
        if self.search == "asr":
            config["asr_model_dir"] = self.asr_model_dir
        return config

    def segments(self, wave: np.ndarray) -> list[PhoneSegment]:
        """Phone segments (seconds) of a 16 kHz waveform ``[N]``; word recognition uses every core."""
        return decode_phones(wave, self.search, self.vocabulary, workers=min(4, os.cpu_count() or 1),
                             asr_model_dir=self.asr_model_dir)

    def encode_numpy(self, wave: np.ndarray, num_frames: int, fps: float,
                     segments: list[PhoneSegment] | None = None) -> np.ndarray:
        """Features ``[num_frames, dim]`` of a 16 kHz waveform ``[N]``, from ``segments`` when
        given (this encoder's :meth:`segments` of ``wave``, computed elsewhere), else searched here."""
        rate = 100.0
        count = max(1, int(np.ceil(len(wave) / SAMPLE_RATE * rate)))
        frames = np.zeros((count, self.dim), dtype=np.float32)
        frames[:, PHONE_INDEX["SIL"]] = 1.0
        if len(wave) >= SAMPLE_RATE // 10:
            for seg in self.segments(wave) if segments is None else segments:
                lo, hi = int(round(seg.start * rate)), min(count, int(round(seg.end * rate)))
                frames[lo:hi] = 0.0
                frames[lo:hi, PHONE_INDEX[seg.phone]] = 1.0
                if self.visemes:
                    frames[lo:hi, len(PHONES) + VISEMES.index(phone_to_viseme(seg.phone))] = 1.0
                if self.confidence:
                    frames[lo:hi, -1] = seg.confidence if seg.confidence is not None else 1.0
        width = int(round(self.smooth * rate))
        if width > 1:
            kernel = np.hanning(width + 2)[1:-1]
            kernel /= kernel.sum()
            # edge-padded 'same' convolution along time; an even kernel is centred one frame early
            frames = convolve1d(frames.astype(np.float64), kernel, axis=0, mode="nearest", origin=width % 2 - 1)
        return frame_average(frames, rate, num_frames, fps)


class TransformersEncoder(AudioEncoder):
    """Shared code of ``Wav2Vec2Encoder`` and ``HubertEncoder`` (``transformers`` models from a local dir).

    The waveform is standardised per utterance (the feature extractor's ``do_normalize``),
    encoded to ``[B, F, hidden]`` at 50 Hz, and linearly interpolated to ``num_frames``
    at ``fps`` (``interpolate_frames``). The CNN feature encoder is always frozen;
    ``trainable`` fine-tunes the transformer (DiffPoseTalk §3.2.1), otherwise the whole
    model is frozen and kept in eval mode.

    Raises:
        AudioError: ``model_dir`` missing, not a model directory, or of another model type.
    """

    model_type: str = ""

    def __init__(self, model_dir: str | Path, trainable: bool = False):
        super().__init__()
        self.model_dir, self.trainable = str(model_dir), bool(trainable)
        config = self._read_config(Path(model_dir))
        try:
            self.model = self._model_class().from_pretrained(self.model_dir, local_files_only=True)
        except (OSError, ValueError) as error:
            raise AudioError(f"{model_dir}: cannot load {self.model_type} model ({error})") from error
        preprocessor = Path(model_dir) / "preprocessor_config.json"
        self.do_normalize = bool(json.loads(preprocessor.read_text()).get("do_normalize", True)) \
            if preprocessor.is_file() else True
        self.dim = int(config["hidden_size"])
        self.rate = SAMPLE_RATE / float(np.prod(config.get("conv_stride", [320])))
        for p in self.model.parameters():
            p.requires_grad_(self.trainable)
        for p in self.model.feature_extractor.parameters():
            p.requires_grad_(False)
        self.train(self.training)

    def _read_config(self, model_dir: Path) -> dict[str, Any]:
        if not model_dir.is_dir():
            raise AudioError(f"{model_dir}: {self.model_type} model directory not found "
                             "(models are never downloaded; pass a local directory)")
        config_file = model_dir / "config.json"
        if not config_file.is_file():
            raise AudioError(f"{model_dir}: not a {self.model_type} model directory (config.json missing)")
        config = json.loads(config_file.read_text())
        if config.get("model_type") != self.model_type:
            raise AudioError(f"{model_dir}: model type {config.get('model_type')!r}, expected {self.model_type!r}")
        return config

    def _model_class(self):
        raise NotImplementedError

    def train(self, mode: bool = True) -> "TransformersEncoder":
        """Switch mode; a frozen model (``trainable=False``) always stays in eval mode (no dropout)."""
        super().train(mode)
        if not self.trainable:
            self.model.eval()
        return self

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "model_dir": self.model_dir, "trainable": self.trainable}

    def is_trainable(self) -> bool:
        """``trainable``: the transformer is fine-tuned (the CNN feature encoder stays frozen)."""
        return self.trainable

    def forward(self, wave: torch.Tensor, num_frames: int, fps: float) -> torch.Tensor:
        wave = wave.float()
        if self.do_normalize:
            wave = (wave - wave.mean(dim=1, keepdim=True)) / torch.sqrt(wave.var(dim=1, keepdim=True) + 1e-7)
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            hidden = self.model(wave).last_hidden_state
        return interpolate_frames(hidden, self.rate, num_frames, fps)


class Wav2Vec2Encoder(TransformersEncoder):
    """wav2vec 2.0 (``transformers.Wav2Vec2Model``) from a local directory; output ``[B, T, hidden]``."""

    name = "wav2vec2"
    model_type = "wav2vec2"

    def _model_class(self):
        return require("transformers", "the wav2vec2 audio encoder").Wav2Vec2Model


class HubertEncoder(TransformersEncoder):
    """HuBERT (``transformers.HubertModel``) from a local directory; output ``[B, T, hidden]``."""

    name = "hubert"
    model_type = "hubert"

    def _model_class(self):
        return require("transformers", "the hubert audio encoder").HubertModel


class WhisperEncoder(NumpyEncoder):
    """Whisper encoder states (CTranslate2, int8): ``[T, d]`` (d = 384 for tiny.en).

    States at 50 Hz (:func:`facemotion.audio.whisper.encoder_states`: 30 s windows overlapping
    by ``overlap_s`` seconds, cross-faded) are averaged over each output frame
    (``frame_average``). The model comes from ``model_dir`` (any CTranslate2 Whisper directory)
    or, when ``None``, the bundled tiny.en, verified before loading (no parameters of this
    module: the model is frozen and runs outside torch).

    Raises:
        DataError: the model is missing, incomplete or altered.
    """

    name = "whisper"

    def __init__(self, model_dir: str | Path | None = None, overlap_s: float = 10.0):
        super().__init__()
        from facemotion.audio.whisper import load_whisper, state_dim

        self.model_dir = str(model_dir) if model_dir is not None else None
        self.overlap_s = float(overlap_s)
        self._model = load_whisper(self.model_dir)
        self.dim = state_dim(self._model)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "model_dir": self.model_dir, "overlap_s": self.overlap_s}

    def encode_numpy(self, wave: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
        from facemotion.audio.whisper import STATE_RATE, encoder_states

        return frame_average(encoder_states(self._model, wave, self.overlap_s), STATE_RATE, num_frames, fps)


HELPER_MIN_S = 30.0
"""Audio length (seconds) from which :meth:`ConcatEncoder.encode_numpy` runs phone loops in the
helper process (below it, starting the helper costs more than it saves)."""


class ConcatEncoder(AudioEncoder):
    """Several encoders side by side: output ``[B, T, sum of dims]`` (the default model uses phonetic + mel)."""

    name = "concat"

    def __init__(self, encoders: list[AudioEncoder]):
        super().__init__()
        if not encoders:
            raise FacemotionError("audio encoder 'concat': needs at least one encoder")
        self.encoders = nn.ModuleList(encoders)
        self.dim = sum(e.dim for e in encoders)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "encoders": [e.config() for e in self.encoders]}

    def is_trainable(self) -> bool:
        """True when any joined encoder is trainable (then the whole concat runs in the training step)."""
        return any(e.is_trainable() for e in self.encoders)

    def forward(self, wave: torch.Tensor, num_frames: int, fps: float) -> torch.Tensor:
        return torch.cat([e(wave, num_frames, fps) for e in self.encoders], dim=-1)

    def encode_numpy(self, wave: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
        """The blocks' features of a 16 kHz waveform ``[N]``, joined: ``[num_frames, dim]``.

        From :data:`HELPER_MIN_S` seconds of audio on, the phone loop of each ``phonetic`` block
        with ``search="phone_loop"`` (pocketsphinx, which holds the GIL) runs in the helper
        process (:func:`facemotion.processes.helper_pool`) while the other blocks (Whisper,
        the alignment threads, the spectrogram) run here: the same features in less time (the
        default model on 60 s of speech, 2 cores: 2.2 s of phone loop hidden behind 4 s of
        Whisper's phones). Where the helper cannot run or breaks, everything runs here.
        """
        pool = helper_pool() if len(self.encoders) > 1 and len(wave) >= HELPER_MIN_S * SAMPLE_RATE else None
        pending = {}
        if pool is not None:
            try:
                pending = {i: pool.submit(phone_loop, np.asarray(wave, np.float32)) for i, e in enumerate(self.encoders)
                           if isinstance(e, PhoneticEncoder) and e.search == "phone_loop"}
            except BrokenProcessPool:  # the helper was killed: search here
                pending = {}
        parts = {i: e.encode_numpy(wave, num_frames, fps) for i, e in enumerate(self.encoders) if i not in pending}
        for i, future in pending.items():
            try:
                segments = future.result()
            except BrokenProcessPool:  # the helper was killed: search here
                segments = None
            parts[i] = self.encoders[i].encode_numpy(wave, num_frames, fps, segments=segments)
        return np.concatenate([parts[i] for i in range(len(self.encoders))], axis=-1)


_ENCODERS: dict[str, type[AudioEncoder]] = {
    cls.name: cls for cls in (MelEncoder, PhoneticEncoder, WhisperEncoder, Wav2Vec2Encoder, HubertEncoder,
                              ConcatEncoder)
}


class MelStream:
    """The log-mel features of :class:`MelEncoder` (without per-utterance normalisation) computed
    as the audio arrives: the same frames as ``encode_numpy`` on the whole waveform.

    STFT frame ``j`` (centre ``j · 10 ms``, 32 ms long; zeros before the start, as librosa's
    centred STFT) is computed once its last sample has arrived, and output frame ``t`` once the
    STFT frames its span ``[t, t+1) / fps`` covers are there, so the latency is about 26 ms plus
    the chunking. Memory holds one FFT window of samples and the STFT frames of one output frame.

    Args:
        encoder: a :class:`MelEncoder` with ``normalize`` false.
        fps: output frame rate (frames per second).
    Raises:
        FacemotionError: an encoder that normalises over the utterance (which needs all of it).
    """

    N_FFT = MEL_N_FFT

    def __init__(self, encoder: "MelEncoder", fps: float):
        if encoder.normalize:
            raise FacemotionError("the mel encoder normalises over the whole utterance and cannot stream "
                                  "(train with {\"name\": \"mel\", \"normalize\": false})")
        self.encoder, self.fps = encoder, float(fps)
        self.hop = MEL_HOP
        self.samples = 0                                    # samples pushed
        self.buffer = np.zeros(self.N_FFT // 2, np.float32)  # centre padding, then the waveform
        self.buffer_start = -(self.N_FFT // 2)              # sample index of buffer[0]
        self.stft_done = 0                                  # STFT frames computed
        self.source = np.zeros((0, encoder.dim), np.float64)
        self.source_offset = 0                              # STFT frame index of source[0]
        self.frames_done = 0                                # output frames emitted

    def _stft_frames(self, end: int) -> None:
        """Compute STFT frames ``stft_done .. end − 1`` from the buffer."""
        if end <= self.stft_done:
            return
        a = self.stft_done * self.hop - self.N_FFT // 2 - self.buffer_start
        b = (end - 1) * self.hop + self.N_FFT // 2 - self.buffer_start
        mel = mel_power(self.buffer[a:b], self.encoder.n_mels, self.encoder.fmin, self.encoder.fmax, center=False)
        self.source = np.concatenate([self.source, np.log(mel + 1e-6)])
        self.stft_done = end
        keep = self.stft_done * self.hop - self.N_FFT // 2 - self.buffer_start
        self.buffer, self.buffer_start = self.buffer[keep:], self.buffer_start + keep

    def _emit(self, end: int) -> np.ndarray:
        """Output frames ``frames_done .. end − 1`` from the STFT frames."""
        n = end - self.frames_done
        if n <= 0:
            return np.zeros((0, self.encoder.dim), np.float32)
        out = frame_average(self.source, 100.0, n, self.fps, self.frames_done, self.source_offset)
        self.frames_done = end
        drop = int(np.floor(self.frames_done * 100.0 / self.fps)) - self.source_offset
        if 0 < drop < len(self.source):
            self.source, self.source_offset = self.source[drop:], self.source_offset + drop
        return out

    def push(self, wave: np.ndarray) -> np.ndarray:
        """Add 16 kHz samples ``[N]``; return the output frames now complete ``[k, n_mels]`` (k ≥ 0)."""
        wave = np.asarray(wave, np.float32).reshape(-1)
        self.buffer = np.concatenate([self.buffer, wave])
        self.samples += len(wave)
        self._stft_frames(max(0, (self.samples - self.N_FFT // 2) // self.hop + 1))
        ready = int(np.floor((self.source_offset + len(self.source)) * self.fps / 100.0 + 1e-9))
        return self._emit(ready)

    def finish(self) -> np.ndarray:
        """End of the audio: the remaining frames up to T = round(N / 16000 · fps) (as offline)."""
        self.buffer = np.concatenate([self.buffer, np.zeros(self.N_FFT // 2, np.float32)])
        self._stft_frames(1 + self.samples // self.hop)
        return self._emit(max(1, int(round(self.samples / SAMPLE_RATE * self.fps))))


def build_audio_encoder(config: dict[str, Any] | str, model_dir: str | Path | None = None,
                        asr_model_dir: str | Path | None = None) -> AudioEncoder:
    """Build an encoder from ``AudioEncoder.config()`` output (or just a name such as ``"mel"``).

    Args:
        config: ``{"name": "mel" | "phonetic" | "whisper" | "wav2vec2" | "hubert" | "concat",
            ...settings}``; ``concat`` takes ``"encoders": [config, ...]``.
        model_dir: local model directory for ``wav2vec2`` / ``hubert``; overrides the one
            stored in ``config`` (checkpoints moved to another machine).
        asr_model_dir: CTranslate2 Whisper directory for ``whisper`` and the ``asr`` search of
            ``phonetic``; overrides the one stored in ``config`` (default: the bundled model).

    Raises:
        FacemotionError: unknown encoder name or missing ``model_dir``.
        AudioError: ``model_dir`` is not a usable model directory.
        DataError: the Whisper model is missing or altered.
    """
    config = {"name": config} if isinstance(config, str) else dict(config)
    name = config.pop("name", None)
    if name not in _ENCODERS:
        raise FacemotionError(f"audio encoder {name!r}: unknown (choose from {', '.join(_ENCODERS)})")
    if name == "concat":
        return ConcatEncoder([build_audio_encoder(c, model_dir, asr_model_dir) for c in config.get("encoders", [])])
    if asr_model_dir is not None and name == "whisper":
        config["model_dir"] = str(asr_model_dir)
    if asr_model_dir is not None and name == "phonetic" and config.get("search") == "asr":
        config["asr_model_dir"] = str(asr_model_dir)
    if name in ("wav2vec2", "hubert"):
        if model_dir is not None:
            config["model_dir"] = str(model_dir)
        if not config.get("model_dir"):
            raise FacemotionError(f"audio encoder {name!r}: needs a local model directory (model_dir)")
    return _ENCODERS[name](**config)
