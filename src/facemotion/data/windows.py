"""Training windows streamed from a native dataset.

``MotionWindows`` is an endless ``IterableDataset`` of random fixed-length windows (audio
features from the feature cache, or the waveform for an audio encoder trained inside the
training step; face-space motion); each worker reads clips lazily and keeps the most recently
read ones up to a memory bound (``ClipStore``; a 2-hour corpus of features is ~100–200 MB).
``fixed_windows`` gives a deterministic list for validation; ``dataset_statistics`` streams
normalisation statistics clip by clip. Items of clips that have a per-sequence shape input
(``space.identity_from_arrays``: a vertex clip's own neutral face as an offset from the space's
template, a FLAME clip's ``shape``) carry it as ``shape``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from facemotion.audio.io import SAMPLE_RATE, load_audio
from facemotion.data.features import load_features
from facemotion.data.native import load_motion
from facemotion.errors import DataError
from facemotion.models.normalizer import RunningStats


def motion_vectors(space, data: dict[str, np.ndarray], source: str = "motion") -> np.ndarray:
    """A native clip's motion arrays (``load_motion`` output, the ``.npz`` layout of ``space``)
    as face-space vectors ``[T, D]`` float32 (``space.from_arrays``).

    Raises:
        DataError: the arrays do not fit the space's layout (the message starts with ``source``).
    """
    try:
        return np.asarray(space.from_arrays(data), dtype=np.float32)
    except (ValueError, KeyError) as exc:
        raise DataError(f"{source}: {exc}") from None


def edge_padded(a: np.ndarray, start: int, frames: int) -> np.ndarray:
    """Rows ``start .. start + frames - 1`` of ``a [T, ...]`` (T ≥ 1), rows outside ``[0, T)``
    repeating the first or last row (diffusion policy's ``SequenceSampler`` padding)."""
    return a[np.clip(np.arange(start, start + frames), 0, len(a) - 1)]


def _labels(rec: dict, shape: np.ndarray | None) -> dict:
    """An item's ``speaker`` and ``id`` (and ``shape``, the clip's shape input, when it has one)."""
    out = {"speaker": str(rec.get("speaker", "")), "id": str(rec["id"])}
    if shape is not None:
        out["shape"] = torch.from_numpy(shape)
    return out


def _padded_window(features: np.ndarray, motion: np.ndarray, shape, start: int, frames: int, rec: dict) -> dict:
    t = min(len(motion), len(features))
    return {"audio": torch.from_numpy(np.ascontiguousarray(edge_padded(features[:t], start, frames))),
            "motion": torch.from_numpy(np.ascontiguousarray(edge_padded(motion[:t], start, frames))),
            "length": frames, **_labels(rec, shape)}


def _window(features: np.ndarray, motion: np.ndarray, shape, start: int, frames: int, rec: dict) -> dict:
    t = min(len(motion), len(features))
    length = max(0, min(frames, t - start))
    audio = np.zeros((frames, features.shape[1]), np.float32)
    mot = np.zeros((frames, motion.shape[1]), np.float32)
    audio[:length] = features[start:start + length]
    mot[:length] = motion[start:start + length]
    return {"audio": torch.from_numpy(audio), "motion": torch.from_numpy(mot), "length": length, **_labels(rec, shape)}


def wave_window(wave: np.ndarray, start: int, frames: int, fps: float) -> np.ndarray:
    """The waveform under motion frames ``start .. start + frames - 1``.

    Args:
        wave: ``[N]`` float32 at 16 kHz; start, frames: motion frames; fps: motion frame rate.
    Returns:
        ``[round(frames · 16000 / fps)]`` float32 from sample ``round(start · 16000 / fps)``,
        zero-padded past the end of ``wave``.
    """
    per_frame = SAMPLE_RATE / float(fps)
    first, count = int(round(start * per_frame)), int(round(frames * per_frame))
    out = np.zeros(count, np.float32)
    piece = wave[first:first + count]
    out[:len(piece)] = piece
    return out


def _wave_item(wave: np.ndarray, motion: np.ndarray, shape, start: int, frames: int, rec: dict) -> dict:
    length = max(0, min(frames, len(motion) - start))
    mot = np.zeros((frames, motion.shape[1]), np.float32)
    mot[:length] = motion[start:start + length]
    return {"wave": torch.from_numpy(wave_window(wave, start, frames, float(rec["fps"]))),
            "motion": torch.from_numpy(mot), "length": length, **_labels(rec, shape)}


class ClipStore:
    """Per-process least-recently-used cache of clips: (audio, motion ``[T, D]``, shape) per clip id.

    Audio is the cached features ``[T, C]`` (``feature_dirs`` given) or, for an audio encoder
    that runs inside the training step (``feature_dirs=None``), the waveform ``[N]`` float32 at
    16 kHz. Shape is the clip's per-sequence shape input (``space.identity_from_arrays``, e.g. a
    vertex clip's neutral-face offset ``[V, 3]`` metres), or None. At most ``max_bytes`` of clips
    are kept (0: none, each ``get`` reads the files), so memory stays bounded whatever the corpus
    size; the default 512 MiB holds a two-hour corpus's features (and, for the 8085-vertex face,
    ~100 KB of shape per clip).
    """

    def __init__(self, root: str | os.PathLike, feature_dirs: list[str | os.PathLike] | None, space,
                 max_bytes: int = 512 * 2**20):
        self.root, self.space, self.max_bytes = Path(root), space, int(max_bytes)
        self.feature_dirs = None if feature_dirs is None else [Path(d) for d in feature_dirs]
        self._clips: OrderedDict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = OrderedDict()
        self._bytes = 0

    def get(self, rec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Audio (features ``[T, C]`` or waveform ``[N]``), motion ``[T, D]`` and shape input (or
        None) of a manifest record.

        Raises:
            DataError: the clip's feature and motion lengths differ by more than 1 frame; a
                file is missing or unreadable; malformed motion or shape arrays.
            AudioError: the audio file is unreadable (waveform mode).
        """
        key = str(rec["id"])
        clip = self._clips.get(key)
        if clip is not None:
            self._clips.move_to_end(key)
            return clip
        arrays = load_motion(self.root, rec)
        motion = motion_vectors(self.space, arrays, str(self.root / rec["motion"]))
        shape = clip_shape(self.space, arrays, str(self.root / rec["motion"]))
        if self.feature_dirs is None:
            audio = load_audio(self.root / rec["audio"], level_warnings=False)
        else:
            audio = load_features(self.feature_dirs, rec)
            if abs(len(audio) - len(motion)) > 1:
                raise DataError(f"{self.root / rec['motion']}: {len(motion)} motion frames but "
                                f"{len(audio)} audio feature frames")
        clip = (audio, motion, shape)
        size = _nbytes(clip)
        if size <= self.max_bytes:
            self._clips[key] = clip
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._bytes -= _nbytes(self._clips.popitem(last=False)[1])
        return clip

    def __len__(self) -> int:
        """Clips held now."""
        return len(self._clips)


def _nbytes(clip: tuple) -> int:
    return sum(a.nbytes for a in clip if a is not None)


def clip_shape(space, data: dict[str, np.ndarray], source: str = "motion") -> np.ndarray | None:
    """A native clip's per-sequence shape input (``space.identity_from_arrays``) as float32, or
    None when it has none (or the space, e.g. a user's own ``module:Class`` space, does not take one).

    Raises:
        DataError: malformed shape arrays (the message starts with ``source``).
    """
    reader = getattr(space, "identity_from_arrays", None)
    if reader is None:
        return None
    try:
        shape = reader(data)
    except (ValueError, KeyError) as exc:
        raise DataError(f"{source}: {exc}") from None
    return None if shape is None else np.ascontiguousarray(shape, np.float32)


class MotionWindows(IterableDataset):
    """Endless random windows of ``frames`` frames (DiffPoseTalk samples 2·T_w).

    Clips are drawn with probability proportional to their length and a start frame uniformly;
    clips shorter than ``frames`` come zero-padded with ``length`` < ``frames``.

    Yields dicts: ``audio [frames, C]`` (cached features; or ``wave [frames · 16000 / fps]``
    float32 at 16 kHz when ``feature_dirs`` is None, for an encoder run inside the training
    step), ``motion [frames, D]`` (face-space, not normalised), ``length`` (real frames),
    ``speaker``, ``id``, and ``shape`` (the clip's shape input, :func:`clip_shape`) for clips
    that have one (items are collated into batches, so either every clip of a corpus has one or
    none). ``cache_bytes`` bounds each worker's :class:`ClipStore`. Each dataloader worker (and
    distributed rank) draws from its own random stream derived from ``seed``.

    ``pad = (before, after)`` frames (cached features only) draws the start from ``[-before,
    T - frames + after]`` instead and fills frames outside the clip by repeating its first or last
    frame (audio and motion; ``length`` is then ``frames``), as diffusion policy's sequence sampler
    pads episodes (3DFacePolicy §3.2.1: ``n_obs_steps - 1`` before, ``n_action_steps - 1`` after).
    """

    def __init__(self, root, records: list[dict], feature_dirs, space, frames: int, seed: int = 0,
                 cache_bytes: int = 512 * 2**20, pad: tuple[int, int] = (0, 0)):
        if not records:
            raise DataError(f"{root}: no clips to train on")
        self.records, self.frames, self.seed = records, frames, seed
        self.pad = (int(pad[0]), int(pad[1]))
        self.store = ClipStore(root, feature_dirs, space, cache_bytes)
        lengths = np.array([max(float(r["duration"]) * float(r["fps"]), 1.0) for r in records])
        self.weights = lengths / lengths.sum()

    def __iter__(self):
        info = get_worker_info()
        rank = torch.distributed.get_rank() if torch.distributed.is_available() and \
            torch.distributed.is_initialized() else 0
        rng = np.random.default_rng([self.seed, rank, info.id if info else 0, torch.initial_seed() % 2**31])
        while True:
            rec = self.records[rng.choice(len(self.records), p=self.weights)]
            audio, motion, shape = self.store.get(rec)
            if self.store.feature_dirs is None:
                t = len(motion)
                start = int(rng.integers(0, t - self.frames + 1)) if t > self.frames else 0
                yield _wave_item(audio, motion, shape, start, self.frames, rec)
                continue
            t = min(len(audio), len(motion))
            if any(self.pad):
                before, after = self.pad
                start = int(rng.integers(-before, max(-before, t - self.frames + after) + 1))
                yield _padded_window(audio, motion, shape, start, self.frames, rec)
                continue
            start = int(rng.integers(0, t - self.frames + 1)) if t > self.frames else 0
            yield _window(audio, motion, shape, start, self.frames, rec)


def fixed_windows(root, records: list[dict], feature_dirs, space, frames: int, count: int) -> list[dict]:
    """The first ``frames`` frames of up to ``count`` clips (deterministic validation windows),
    as :class:`MotionWindows` yields them (``wave`` instead of ``audio`` when ``feature_dirs`` is None)."""
    store = ClipStore(root, feature_dirs, space, max_bytes=0)
    item = _window if feature_dirs is not None else _wave_item
    return [item(*store.get(rec), 0, frames, rec) for rec in records[:count]]


def dataset_statistics(root, records: list[dict], feature_dirs, space, max_clips: int | None = 2000,
                       seed: int = 0, derived=None) -> dict[str, RunningStats]:
    """Per-dimension mean and std of motion and audio features over (a sample of) clips,
    streamed clip by clip (memory independent of the number of clips).

    Args:
        root: native dataset directory; records: its manifest records.
        feature_dirs: the feature cache directories (``data.features.cache_features``), or None
            for an audio encoder that runs inside the training step (no audio statistics).
        space: the face space (``motion_vectors``).
        max_clips: clips drawn at random (``seed``) without replacement; None: all.
        derived: optional ``derived(motion [T, D]) -> {key: array [T', D']}``: statistics of
            quantities a recipe derives from each clip's motion (e.g. 3DFacePolicy's per-frame
            actions), accumulated under their keys.
    Returns:
        ``{"motion": RunningStats [D], "audio": RunningStats [C], **derived keys}`` (no ``audio``
        when ``feature_dirs`` is None); feed to ``Normalizer.fit`` / ``Recipe.set_statistics``.
    Raises:
        DataError: a clip file is missing or unreadable, or its lengths disagree.
    """
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(records))[:max_clips]
    store = ClipStore(root, feature_dirs, space, max_bytes=0)
    stats = {"motion": None, "audio": None}
    for i in pick:
        if feature_dirs is None:
            source = str(Path(root) / records[i]["motion"])
            audio, motion = None, motion_vectors(space, load_motion(root, records[i]), source)
        else:
            audio, motion, _ = store.get(records[i])
        stats["motion"] = stats["motion"] or RunningStats(motion.shape[-1])
        stats["motion"].update(motion)
        for key, value in (derived(motion) if derived is not None else {}).items():
            if len(value):
                stats[key] = stats.get(key) or RunningStats(value.shape[-1])
                stats[key].update(value)
        if feature_dirs is not None:
            stats["audio"] = stats["audio"] or RunningStats(audio.shape[-1])
            stats["audio"].update(audio)
    return {k: v for k, v in stats.items() if v is not None}
