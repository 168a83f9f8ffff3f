"""Audio features precomputed once per clip and cached on disk.

Parameter-free and frozen encoders (the phonetic one runs pocketsphinx) are far too slow to
run at every training step, so each clip's features are computed once, by the encoder in eval
mode without autograd, and stored as
``root/features/<key>/<id>.npy`` (``[T, C]`` float32, T = the clip's motion frames), where
``key`` hashes the encoder's ``config()`` and the fps. A ``concat`` encoder is cached block by
block (one directory per encoder it joins), so a model that appends a block to another's
encoder computes only the new block. Caching is resumable (finished files are skipped; each
is written atomically) and runs in parallel worker processes that die with the run; one run at
a time fills a block's folder (others wait), removing what killed runs left half-written.
A trainable encoder (``AudioEncoder.is_trainable``) is never cached: it runs inside the
training step on waveform windows (``data.windows``).
"""

from __future__ import annotations

import hashlib
import json
import os
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facemotion.atomic import atomic_path
from facemotion.audio.encoders import AudioEncoder, build_audio_encoder
from facemotion.audio.io import load_audio
from facemotion.data.native import load_motion, motion_frames
from facemotion.errors import DataError, FacemotionError
from facemotion.export.outputs import output_folder
from facemotion.processes import process_pool


CACHE_VERSIONS: dict[tuple[str, str | None], int] = {("phonetic", "asr"): 3}
"""Feature blocks whose code changed what they compute, ``(name, search)`` → version, so that
caches written before are not reused: Whisper's phones since they are aligned stretch by
stretch (version 2) and since the bilabial detector adds /p b m/ to them (version 3). Blocks
not listed are version 1."""


def feature_dir(root: str | os.PathLike, encoder_config: dict, fps: float) -> Path:
    """``root/features/<12 hex digits of sha1(encoder config, fps[, version])>`` (the version of
    :data:`CACHE_VERSIONS` when above 1)."""
    key = {"encoder": encoder_config, "fps": float(fps)}
    version = CACHE_VERSIONS.get((encoder_config.get("name"), encoder_config.get("search")), 1)
    if version > 1:
        key["version"] = version
    blob = json.dumps(key, sort_keys=True)
    return Path(root) / "features" / hashlib.sha1(blob.encode()).hexdigest()[:12]


def _blocks(encoder_config: dict) -> list[dict]:
    """The configs of the encoders whose features are cached separately: a concat's parts."""
    if encoder_config.get("name") == "concat":
        return [b for part in encoder_config["encoders"] for b in _blocks(part)]
    return [encoder_config]


def feature_dirs(root: str | os.PathLike, encoder_config: dict, fps: float) -> list[Path]:
    """The cache directories of an encoder's feature blocks, in channel order
    (:func:`feature_dir` of each part of a ``concat``, else of the encoder itself)."""
    return [feature_dir(root, block, fps) for block in _blocks(encoder_config)]


def clip_frames(root: str | os.PathLike, record: dict) -> int:
    """Number of motion frames T of a manifest record (from its motion file)."""
    return motion_frames(load_motion(root, record))


_WORKER: dict = {}


def _init_worker(config: dict, model_dir, asr_model_dir) -> None:
    import torch

    torch.set_num_threads(1)
    # cached features come from the encoder in eval mode (no dropout), without autograd
    _WORKER["encoder"] = build_audio_encoder(config, model_dir, asr_model_dir).eval().requires_grad_(False)


def _encode(args) -> str:
    root, record, out_dir, fps = args
    encoder: AudioEncoder = _WORKER["encoder"]
    path = Path(out_dir) / f"{record['id']}.npy"
    if path.exists():
        return record["id"]
    wave = load_audio(Path(root) / record["audio"], level_warnings=False)  # corpora degrade clips on purpose
    feats = encoder.encode_numpy(wave, clip_frames(root, record), fps).astype(np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, feats)
    return record["id"]


def cache_features(root: str | os.PathLike, records: list[dict], encoder: AudioEncoder, fps: float,
                   workers: int = 1, model_dir: str | os.PathLike | None = None, progress: bool = True,
                   asr_model_dir: str | os.PathLike | None = None) -> list[Path]:
    """Compute and store the features of every record that has none yet, block by block
    (:func:`feature_dirs`); return the cache directories.

    Args:
        root: native dataset directory; records: its manifest records to cover.
        encoder: the audio encoder (each block rebuilt from its config in each worker).
        fps: motion frame rate (features get one row per motion frame).
        workers: worker processes (1 = in this process).
        model_dir: local model directory for wav2vec2/HuBERT encoders; asr_model_dir: the
            CTranslate2 Whisper directory for encoders that use Whisper.
    Raises:
        AudioError, DataError: a clip's audio or motion file is missing or unreadable.
        FacemotionError: ``encoder`` is trainable (``AudioEncoder.is_trainable``): its features
            change as it trains, so it runs inside the training step and is never cached.
    """
    if encoder.is_trainable():
        raise FacemotionError(f"audio encoder {encoder.name!r} is trainable: its features are computed in the "
                              "training step, never cached")
    dirs = feature_dirs(root, encoder.config(), fps)
    for config, out in zip(_blocks(encoder.config()), dirs):
        todo = [(str(root), r, str(out), fps) for r in records if not (out / f"{r['id']}.npy").exists()]
        if not todo:
            continue
        with output_folder(out, wait=True):  # one run fills a block; it removes killed runs' temporaries
            bar = tqdm(total=len(todo), desc=f"audio features {config['name']} → {out}", unit="clip",
                       disable=not progress)
            if workers <= 1:
                _init_worker(config, model_dir, asr_model_dir)
                for item in todo:
                    _encode(item)
                    bar.update()
            else:
                with process_pool(workers, get_context("spawn"), _init_worker,
                                  (config, model_dir, asr_model_dir)) as pool:
                    for _ in pool.map(_encode, todo, chunksize=4):
                        bar.update()
            bar.close()
    return dirs


def load_features(directories: list[str | os.PathLike], record: dict) -> np.ndarray:
    """Cached features ``[T, C]`` of one record: its blocks joined along the channels.

    Raises:
        DataError: a cache file is missing or unreadable (run ``cache_features`` first).
    """
    blocks = []
    for directory in directories:
        path = Path(directory) / f"{record['id']}.npy"
        try:
            blocks.append(np.load(path))
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cached audio features unreadable ({e})") from None
    return np.concatenate(blocks, axis=-1)
