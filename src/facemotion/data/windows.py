"""Training windows streamed from a native dataset.

``MotionWindows`` is an endless ``IterableDataset`` of random fixed-length windows (audio
features from the feature cache, face-space motion); each worker reads clips lazily and
keeps the ones it has read (a 2-hour corpus of features is ~100–200 MB). ``fixed_windows``
gives a deterministic list for validation.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from facemotion.data.features import load_features
from facemotion.data.native import load_motion
from facemotion.errors import DataError


def motion_vectors(space, data: dict[str, np.ndarray]) -> np.ndarray:
    """A native clip's motion arrays (``load_motion`` output: ``blendshapes [T, 52]``,
    ``head_rotation [T, 3]``) as face-space vectors ``[T, D]`` float32 (``space.join``)."""
    return np.asarray(space.join(data["blendshapes"], data["head_rotation"]), dtype=np.float32)


def _window(features: np.ndarray, motion: np.ndarray, start: int, frames: int, rec: dict) -> dict:
    t = min(len(motion), len(features))
    length = max(0, min(frames, t - start))
    audio = np.zeros((frames, features.shape[1]), np.float32)
    mot = np.zeros((frames, motion.shape[1]), np.float32)
    audio[:length] = features[start:start + length]
    mot[:length] = motion[start:start + length]
    return {"audio": torch.from_numpy(audio), "motion": torch.from_numpy(mot), "length": length,
            "speaker": str(rec.get("speaker", "")), "id": str(rec["id"])}


class ClipStore:
    """Lazy per-process cache of (features ``[T, C]``, motion ``[T, D]``) per clip id."""

    def __init__(self, root: str | os.PathLike, feature_dirs: list[str | os.PathLike], space):
        self.root, self.feature_dirs, self.space = Path(root), [Path(d) for d in feature_dirs], space
        self._clips: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, rec: dict) -> tuple[np.ndarray, np.ndarray]:
        """Features and motion of a manifest record.

        Raises:
            DataError: the clip's feature and motion lengths differ by more than 1 frame.
        """
        clip = self._clips.get(rec["id"])
        if clip is None:
            feats = load_features(self.feature_dirs, rec)
            motion = motion_vectors(self.space, load_motion(self.root, rec))
            if abs(len(feats) - len(motion)) > 1:
                raise DataError(f"{self.root / rec['motion']}: {len(motion)} motion frames but "
                                f"{len(feats)} audio feature frames")
            clip = self._clips[rec["id"]] = (feats, motion)
        return clip


class MotionWindows(IterableDataset):
    """Endless random windows of ``frames`` frames (DiffPoseTalk samples 2·T_w).

    Clips are drawn with probability proportional to their length and a start frame uniformly;
    clips shorter than ``frames`` come zero-padded with ``length`` < ``frames``.

    Yields dicts: ``audio [frames, C]``, ``motion [frames, D]`` (face-space, not normalised),
    ``length`` (real frames), ``speaker``, ``id``. Each dataloader worker (and distributed
    rank) draws from its own random stream derived from ``seed``.
    """

    def __init__(self, root, records: list[dict], feature_dirs, space, frames: int, seed: int = 0):
        if not records:
            raise DataError(f"{root}: no clips to train on")
        self.records, self.frames, self.seed = records, frames, seed
        self.store = ClipStore(root, feature_dirs, space)
        lengths = np.array([max(float(r["duration"]) * float(r["fps"]), 1.0) for r in records])
        self.weights = lengths / lengths.sum()

    def __iter__(self):
        info = get_worker_info()
        rank = torch.distributed.get_rank() if torch.distributed.is_available() and \
            torch.distributed.is_initialized() else 0
        rng = np.random.default_rng([self.seed, rank, info.id if info else 0, torch.initial_seed() % 2**31])
        while True:
            rec = self.records[rng.choice(len(self.records), p=self.weights)]
            feats, motion = self.store.get(rec)
            t = min(len(feats), len(motion))
            start = int(rng.integers(0, t - self.frames + 1)) if t > self.frames else 0
            yield _window(feats, motion, start, self.frames, rec)


def fixed_windows(root, records: list[dict], feature_dirs, space, frames: int, count: int) -> list[dict]:
    """The first ``frames`` frames of up to ``count`` clips (deterministic validation windows)."""
    store = ClipStore(root, feature_dirs, space)
    return [_window(*store.get(rec), 0, frames, rec) for rec in records[:count]]


def dataset_statistics(root, records: list[dict], feature_dirs, space, max_clips: int = 2000,
                       seed: int = 0) -> dict[str, torch.Tensor]:
    """Per-dimension mean and std of motion and audio features over (a sample of) clips.

    Returns:
        ``motion_mean``, ``motion_std`` ``[D]``; ``audio_mean``, ``audio_std`` ``[C]`` (float32).
    """
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(records))[:max_clips]
    store = ClipStore(root, feature_dirs, space)
    feats, motions = zip(*(store.get(records[i]) for i in pick))
    m, a = np.concatenate(motions).astype(np.float64), np.concatenate(feats).astype(np.float64)
    as_t = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    return {"motion_mean": as_t(m.mean(0)), "motion_std": as_t(m.std(0)),
            "audio_mean": as_t(a.mean(0)), "audio_std": as_t(a.std(0))}
