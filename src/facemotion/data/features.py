"""Audio features precomputed once per clip and cached on disk.

Parameter-free encoders (the phonetic one runs pocketsphinx) are far too slow to run at
every training step, so each clip's features are computed once and stored as
``root/features/<key>/<id>.npy`` (``[T, C]`` float32, T = the clip's motion frames), where
``key`` hashes the encoder's ``config()`` and the fps. Caching is resumable (finished files
are skipped; each is written atomically) and runs in parallel worker processes.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facemotion.audio.encoders import AudioEncoder, build_audio_encoder
from facemotion.audio.io import load_audio
from facemotion.data.native import load_motion
from facemotion.errors import DataError
from facemotion.export.atomic import atomic_path


def feature_dir(root: str | os.PathLike, encoder_config: dict, fps: float) -> Path:
    """``root/features/<12 hex digits of sha1(encoder config, fps)>``."""
    blob = json.dumps({"encoder": encoder_config, "fps": float(fps)}, sort_keys=True)
    return Path(root) / "features" / hashlib.sha1(blob.encode()).hexdigest()[:12]


def clip_frames(root: str | os.PathLike, record: dict) -> int:
    """Number of motion frames T of a manifest record (from its motion file)."""
    return int(len(load_motion(root, record)["blendshapes"]))


_WORKER: dict = {}


def _init_worker(config: dict, model_dir) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["encoder"] = build_audio_encoder(config, model_dir)


def _encode(args) -> str:
    root, record, out_dir, fps = args
    encoder: AudioEncoder = _WORKER["encoder"]
    path = Path(out_dir) / f"{record['id']}.npy"
    if path.exists():
        return record["id"]
    wave = load_audio(Path(root) / record["audio"])
    feats = encoder.encode_numpy(wave, clip_frames(root, record), fps).astype(np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, feats)
    return record["id"]


def cache_features(root: str | os.PathLike, records: list[dict], encoder: AudioEncoder, fps: float,
                   workers: int = 1, model_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Compute and store the features of every record that has none yet; return the cache dir.

    Args:
        root: native dataset directory; records: its manifest records to cover.
        encoder: the audio encoder (rebuilt from ``encoder.config()`` in each worker).
        fps: motion frame rate (features get one row per motion frame).
        workers: worker processes (1 = in this process).
        model_dir: local model directory for wav2vec2/HuBERT encoders.
    Raises:
        AudioError, DataError: a clip's audio or motion file is missing or unreadable.
    """
    out = feature_dir(root, encoder.config(), fps)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(str(root), r, str(out), fps) for r in records if not (out / f"{r['id']}.npy").exists()]
    if not todo:
        return out
    bar = tqdm(total=len(todo), desc=f"audio features → {out}", unit="clip", disable=not progress)
    if workers <= 1:
        _WORKER["encoder"] = encoder
        for item in todo:
            _encode(item)
            bar.update()
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                 initargs=(encoder.config(), model_dir)) as pool:
            for _ in pool.map(_encode, todo, chunksize=4):
                bar.update()
    bar.close()
    return out


def load_features(directory: str | os.PathLike, record: dict) -> np.ndarray:
    """Cached features ``[T, C]`` of one record.

    Raises:
        DataError: the cache file is missing or unreadable (run ``cache_features`` first).
    """
    path = Path(directory) / f"{record['id']}.npy"
    try:
        return np.load(path)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cached audio features unreadable ({e})") from None
