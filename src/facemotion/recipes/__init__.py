"""facemotion.recipes: one module per method, a shared trainer and the checkpoint loader.

- ``RECIPES``: name → ``"module:Class"``.
- ``load_checkpoint(path)``: a recipe in eval mode from a one-file checkpoint.
- ``train(...)``: see ``facemotion.recipes.training.train``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import torch

from facemotion.errors import DataError

RECIPES = {"diffposetalk": "facemotion.recipes.diffposetalk:DiffPoseTalk"}


def recipe_class(name: str):
    """The recipe class registered as ``name``.

    Raises:
        DataError: unknown recipe.
    """
    if name not in RECIPES:
        raise DataError(f"recipe {name!r}: unknown (choose from {', '.join(RECIPES)})")
    module, attr = RECIPES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def load_checkpoint(path: str | os.PathLike, audio_model_dir: str | os.PathLike | None = None,
                    asr_model_dir: str | os.PathLike | None = None, map_location: str | torch.device = "cpu"):
    """Load a one-file facemotion checkpoint (``Recipe.save_checkpoint``) → recipe in eval mode.

    Args:
        path: the ``.pt`` file.
        audio_model_dir: local wav2vec2/HuBERT directory, for models whose encoder needs one.
        asr_model_dir: CTranslate2 Whisper directory, for models whose encoder uses Whisper
            (overrides the checkpoint's; default the bundled model).
    Raises:
        DataError: the file is missing, not a facemotion checkpoint, or its weights do not fit.
    """
    from facemotion.recipes.base import CHECKPOINT_FORMAT

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file missing")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt file
        raise DataError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{path}: not a facemotion checkpoint")
    return recipe_class(blob["recipe"]).from_checkpoint_dict(blob, audio_model_dir, str(path), asr_model_dir)


def train(recipe="diffposetalk", data=".", out="runs/train", max_steps=None, batch_size=None, resume=True,
          config=None, audio_model_dir=None, accelerator="auto", devices="auto", asr_model_dir=None, **kwargs):
    """Train a recipe on a native dataset (see ``facemotion.recipes.training.train``)."""
    from facemotion.recipes.training import train as _train

    return _train(recipe, data, out, max_steps, batch_size, resume, config, audio_model_dir, accelerator,
                  devices, asr_model_dir=asr_model_dir, **kwargs)


__all__ = ["RECIPES", "recipe_class", "load_checkpoint", "train"]
