"""What every recipe shares: config handling, normalisation buffers, audio features and the
one-file checkpoint (weights + config + normalisation statistics + audio encoder settings)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facemotion.audio.encoders import AudioEncoder, build_audio_encoder
from facemotion.audio.io import SAMPLE_RATE
from facemotion.errors import DataError, FacemotionError
from facemotion.export.atomic import atomic_path

CHECKPOINT_FORMAT = "facemotion-checkpoint-1"


@dataclasses.dataclass
class TrainConfig:
    """Settings of the generic trainer (``recipes.training``), inherited by every recipe config.

    lr: Adam learning rate; warmup: linear warm-up steps (restarted at each training phase);
    batch_size, max_steps: defaults for ``train``; ema_decay: EMA of the weights (exported);
    val_every: validation interval (steps); val_clips: validation windows; ckpt_every:
    ``last.ckpt`` interval (steps); num_workers: dataloader workers; feature_workers: audio
    feature caching processes; seed.
    """

    lr: float = 4e-4
    warmup: int = 100
    batch_size: int = 32
    max_steps: int = 2000
    ema_decay: float = 0.995
    val_every: int = 250
    val_clips: int = 8
    ckpt_every: int = 200
    num_workers: int = 0
    feature_workers: int = 2
    seed: int = 0


def config_from(cls, overrides: dict[str, Any] | None, source: str = "config") -> Any:
    """Instantiate dataclass ``cls`` with JSON ``overrides``.

    Raises:
        DataError: an override names no field of ``cls`` (message names ``source``).
    """
    overrides = dict(overrides or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise DataError(f"{source}: unknown setting(s) {unknown} for {cls.__name__}")
    return cls(**overrides)


def build_space(spec: str):
    """Face space from its name: ``"blendshape"`` (``BlendshapeSpace``) or ``"module:Class"``.

    Raises:
        FacemotionError: unknown name.
    """
    if spec == "blendshape":
        from facemotion.face.space import BlendshapeSpace

        return BlendshapeSpace()
    if ":" in spec:
        module, attr = spec.split(":", 1)
        return getattr(importlib.import_module(module), attr)()
    raise FacemotionError(f"face space {spec!r}: unknown (use 'blendshape' or 'module:Class')")


class Recipe(nn.Module):
    """Base of recipes: a face space, an audio encoder, config and normalisation buffers.

    Subclasses set ``name`` and ``Config`` and implement ``sample``, ``training_loss``,
    ``validation_metrics``, ``set_phase`` and ``train_frames``.

    Buffers ``motion_mean``/``motion_std`` ``[D]`` and ``audio_mean``/``audio_std`` ``[C]``
    normalise the face-space motion and the audio features (set from the training data by
    ``set_statistics``); they are saved with the weights.
    """

    name: str = ""
    Config: type = TrainConfig

    def __init__(self, config, space=None, audio_model_dir: str | os.PathLike | None = None,
                 asr_model_dir: str | os.PathLike | None = None):
        super().__init__()
        self.config = config
        self.space = space if space is not None else build_space(config.space)
        self.audio_encoder: AudioEncoder = build_audio_encoder(config.audio_encoder, audio_model_dir, asr_model_dir)
        self.fps = float(config.fps)
        d, c = self.space.dim, self.audio_encoder.dim
        self.register_buffer("motion_mean", torch.zeros(d))
        self.register_buffer("motion_std", torch.ones(d))
        self.register_buffer("audio_mean", torch.zeros(c))
        self.register_buffer("audio_std", torch.ones(c))

    def set_statistics(self, stats: dict[str, torch.Tensor], std_floor: float = 1e-2) -> None:
        """Store normalisation statistics (``data.windows.dataset_statistics`` output); stds are
        floored at ``std_floor`` so constant dimensions do not blow up."""
        for k, v in stats.items():
            v = v.to(getattr(self, k))
            getattr(self, k).copy_(v.clamp_min(std_floor) if k.endswith("std") else v)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Face-space motion ``[..., D]`` → zero mean, unit std per dim."""
        return (x - self.motion_mean) / self.motion_std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of ``normalise``."""
        return x * self.motion_std + self.motion_mean

    def normalise_audio(self, a: torch.Tensor) -> torch.Tensor:
        """Audio features ``[..., C]`` → zero mean, unit std per channel."""
        return (a - self.audio_mean) / self.audio_std

    def audio_features(self, wave: np.ndarray) -> torch.Tensor:
        """Audio features of a waveform ``[N]`` (16 kHz) at the model's fps.

        Returns:
            ``[T, C]`` float32 (not normalised), T = round(N / 16000 · fps).
        """
        frames = max(1, int(round(len(wave) / SAMPLE_RATE * self.fps)))
        return torch.from_numpy(self.audio_encoder.encode_numpy(np.asarray(wave, np.float32), frames, self.fps))

    def _own_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.state_dict().items() if not k.startswith("space.")}

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write the one-file checkpoint (atomically): weights, config, normalisation statistics
        (buffers) and the audio encoder's settings. Returns the path."""
        blob = {"format": CHECKPOINT_FORMAT, "recipe": self.name, "config": dataclasses.asdict(self.config),
                "audio_encoder": self.audio_encoder.config(), "state_dict": self._own_state()}
        with atomic_path(path) as tmp:
            torch.save(blob, tmp)
        return Path(path)

    def untrained_parts(self) -> list[str]:
        """Parts of the model that this config never trains, so they must come from ``init_from``
        (e.g. a fine-tuning config that skips a pre-training phase). Empty here."""
        return []

    @torch.no_grad()
    def init_from(self, other: "Recipe") -> list[str]:
        """Copy ``other``'s trained parameters into this recipe before fine-tuning it.

        A parameter of the same shape is copied; one that is larger along some dimensions
        (e.g. ``denoiser.audio_in.weight`` ``[d, C]`` after audio channels were appended to the
        encoder, ``[d, C + C']``) gets ``other``'s values in its leading slice and zeros in the
        rest, so the new inputs start out ignored and the model computes what ``other`` did.
        Buffers (normalisation statistics) are not copied: training sets them from its data.
        Fine-tuning support of this project; DiffPoseTalk itself trains from scratch.

        Returns:
            names of the parameters that were only partly copied.
        Raises:
            DataError: another recipe, or a parameter missing, smaller or of another rank.
        """
        if other.name != self.name:
            raise DataError(f"cannot initialise {self.name!r} from a {other.name!r} checkpoint")
        theirs = dict(other.named_parameters())
        partial = []
        for name, mine in self.named_parameters():
            if name.startswith("space."):
                continue
            src = theirs.get(name)
            if src is None or src.dim() != mine.dim() or any(a < b for a, b in zip(mine.shape, src.shape)):
                raise DataError(f"initial checkpoint: parameter {name} "
                                f"{'missing' if src is None else tuple(src.shape)} does not fit {tuple(mine.shape)}")
            if src.shape == mine.shape:
                mine.copy_(src)
            else:
                mine.zero_()
                mine[tuple(slice(0, n) for n in src.shape)] = src
                partial.append(name)
        return partial

    @classmethod
    def from_checkpoint_dict(cls, blob: dict, audio_model_dir=None, source: str = "checkpoint",
                             asr_model_dir=None) -> "Recipe":
        """Rebuild a recipe from a loaded checkpoint dict (see ``recipes.load_checkpoint``)."""
        cfg = dict(blob["config"])
        cfg["audio_encoder"] = blob["audio_encoder"]
        recipe = cls(config_from(cls.Config, cfg, source), audio_model_dir=audio_model_dir,
                     asr_model_dir=asr_model_dir)
        missing, unexpected = recipe.load_state_dict(blob["state_dict"], strict=False)
        missing = [k for k in missing if not k.startswith("space.")]
        if missing or unexpected:
            raise DataError(f"{source}: weights do not match the model (missing {missing[:5]}, "
                            f"unexpected {unexpected[:5]})")
        return recipe.eval()


def describe(recipe: Recipe) -> str:
    """One line: recipe name, parameter count and config (for logs)."""
    n = sum(p.numel() for p in recipe.parameters())
    return f"{recipe.name}: {n / 1e6:.2f} M parameters, config {json.dumps(dataclasses.asdict(recipe.config))}"
