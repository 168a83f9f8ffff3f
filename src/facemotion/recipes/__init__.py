"""facemotion.recipes: one module per method, a shared trainer and the checkpoint loader.

- ``RECIPES``: name → ``"module:Class"``.
- ``load_checkpoint(path)``: a recipe in eval mode from a one-file checkpoint.
- ``train(...)``: checks the run folder, checkpoint and dataset, then runs
  ``facemotion.recipes.training.train``.

Importing this package does not import torch or Lightning, so that a run's checks answer
within seconds.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from facemotion.errors import DataError

RECIPES = {"diffposetalk": "facemotion.recipes.diffposetalk:DiffPoseTalk",
           "df3dface": "facemotion.recipes.df3dface:DF3DFace",
           "facepolicy": "facemotion.recipes.facepolicy:FacePolicy",
           "media2face": "facemotion.recipes.media2face:Media2Face",
           "media2face-vae": "facemotion.recipes.media2face:Media2FaceVAE"}


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
                    asr_model_dir: str | os.PathLike | None = None, map_location="cpu",
                    flame_model: str | os.PathLike | None = None):
    """Load a one-file facemotion checkpoint (``Recipe.save_checkpoint``) → recipe in eval mode.

    Args:
        path: the ``.pt`` file.
        audio_model_dir: local wav2vec2/HuBERT directory, for models whose encoder needs one.
        asr_model_dir: CTranslate2 Whisper directory, for models whose encoder uses Whisper
            (overrides the checkpoint's; default the bundled model).
        map_location: torch device (or name) to load the tensors onto.
        flame_model: the FLAME model file of a model in the ``flame`` face space (checkpoints keep
            only the path it was trained with; :func:`facemotion.face.flame.with_flame_model`).
    Raises:
        DataError: the file is missing, not a facemotion checkpoint, or its weights do not fit;
            a FLAME model that is missing (named, with ``--flame-model`` suggested), or
            ``flame_model`` for a model in another face space.
    """
    import torch

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
    space = blob.get("space") or {}
    if space.get("name") == "flame" or flame_model is not None:
        from facemotion.face.flame import with_flame_model

        spec = with_flame_model({"name": space.get("name"), **(space.get("settings") or {})}, flame_model,
                                str(path))
        blob["space"] = {"name": spec.pop("name"), "settings": spec}
    return recipe_class(blob["recipe"]).from_checkpoint_dict(blob, audio_model_dir, str(path), asr_model_dir)


def train(recipe="diffposetalk", data=".", out="runs/train", max_steps=None, batch_size=None, resume=True,
          config=None, audio_model_dir=None, accelerator="auto", devices="auto", asr_model_dir=None, **kwargs):
    """Train a recipe on a native dataset (arguments: ``facemotion.recipes.training.train``).

    Before anything is built or written (within seconds, without importing Lightning): the run
    folder ``out`` is taken for this run (:func:`facemotion.export.outputs.output_folder`: a file
    in the way, an unwritable folder or another run into it is refused), ``out/last.ckpt`` is
    checked when it will be resumed, and every clip of ``data`` is checked
    (:func:`facemotion.data.native.read_manifest` with ``check_files``). An interrupted run
    (:class:`facemotion.processes.Interrupted`) that has a checkpoint says how to resume.

    Returns:
        the exported ``out/model.pt``.
    Raises:
        OutputError: bad run folder, or another run in it. DataError: a corrupt ``last.ckpt``
            (named, with ``--no-resume`` suggested), a bad dataset line or clip (file and line
            named), or the errors of ``training.train``.
    """
    from contextlib import nullcontext

    from facemotion.data.native import read_manifest
    from facemotion.export.outputs import output_folder
    from facemotion.processes import Interrupted

    out = Path(out)
    last = out / "last.ckpt"
    with output_folder(out) if _rank_zero() else nullcontext():
        if resume and last.exists():
            _check_resumable(last)
        read_manifest(data, check_files=True)
        from facemotion.recipes.training import train as _train

        try:
            return _train(recipe, data, out, max_steps, batch_size, resume, config, audio_model_dir,
                          accelerator, devices, asr_model_dir=asr_model_dir, **kwargs)
        except Interrupted as exc:
            if last.is_file():
                exc.hint = f"rerun the same command (without --no-resume) to resume from {last}"
            raise


def _rank_zero() -> bool:
    """False in the processes that Lightning or torchrun start for ranks > 0 of a multi-device
    run: they share rank 0's run folder, which rank 0 holds."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def _check_resumable(last: Path) -> None:
    """Raise DataError (naming ``last``, suggesting ``--no-resume``) unless ``last`` is a Lightning
    checkpoint torch can read."""
    import torch

    try:
        ckpt = torch.load(last, map_location="cpu", weights_only=False, mmap=True)
        ok = isinstance(ckpt, dict) and "state_dict" in ckpt and "global_step" in ckpt
        why = "not a Lightning checkpoint"
    except Exception as exc:  # torch raises many types for a truncated or corrupt file
        ok, why = False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if not ok:
        raise DataError(f"{last}: cannot resume from this checkpoint ({why}); pass --no-resume to start "
                        "afresh (it is overwritten) or delete it")


__all__ = ["RECIPES", "recipe_class", "load_checkpoint", "train"]
