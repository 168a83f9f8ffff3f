"""What every recipe shares: config handling, normalisation buffers, audio features and the
one-file checkpoint (weights + config + normalisation statistics + audio encoder settings)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facemotion.atomic import atomic_path
from facemotion.audio.encoders import AudioEncoder, build_audio_encoder
from facemotion.audio.io import SAMPLE_RATE
from facemotion.errors import DataError
from facemotion.models.normalizer import Normalizer

CHECKPOINT_FORMAT = "facemotion-checkpoint-1"


@dataclasses.dataclass
class TrainConfig:
    """Settings of the generic trainer (``recipes.training``), inherited by every recipe config.

    lr: learning rate; optimizer: ``"adam"`` or ``"adamw"`` (decoupled ``weight_decay``);
    warmup: linear warm-up steps (restarted at each training phase);
    batch_size, max_steps: defaults for ``train``; ema_decay: EMA of the weights (exported);
    val_every: validation interval (steps); val_clips: validation windows; ckpt_every:
    ``last.ckpt`` interval (steps); num_workers: dataloader workers; feature_workers: audio
    feature caching processes; seed.
    """

    lr: float = 4e-4
    optimizer: str = "adam"
    weight_decay: float = 0.0
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


# Phone-loop phones, log-mel, then the phones of recognised words (appended last, so that a model
# trained on the first two can be extended: ``Recipe.init_from``).
DEFAULT_AUDIO = {"name": "concat", "encoders": [{"name": "phonetic"}, {"name": "mel"},
                                                {"name": "phonetic", "search": "words"}]}


@dataclasses.dataclass
class DiffusionConfig(TrainConfig):
    """Settings every diffusion recipe has (each recipe's config derives from it and may change
    the defaults).

    space: face space name or ``{"name", **settings}``; fps: motion frames per second;
    audio_encoder: audio encoder settings (``facemotion.audio.encoders``); denoiser: a name of
    ``facemotion.models.DENOISERS``, sized by ``d_model``, ``n_layers``, ``n_heads``,
    ``ff_mult``, ``dropout``; window: frames per generated window; num_train_timesteps N,
    prediction_type (``"sample"`` = x0 or ``"epsilon"``), beta_schedule (cosine); sampling
    defaults ``scheduler``, ``steps``, ``w_audio`` (audio guidance scale); std_floor: smallest
    standard deviation of the normaliser.
    """

    space: str | dict = "blendshape"
    fps: float = 25.0
    audio_encoder: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_AUDIO))
    denoiser: str = "transformer_decoder"
    window: int = 100
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    ff_mult: int = 4
    dropout: float = 0.0
    num_train_timesteps: int = 500
    prediction_type: str = "sample"
    beta_schedule: str = "squaredcos_cap_v2"
    std_floor: float = 1e-2
    scheduler: str = "dpmsolver"
    steps: int = 20
    w_audio: float = 1.0


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


def build_space(spec, settings: dict | None = None):
    """Face space from its name and settings (:func:`facemotion.face.space.build_space`).

    Args:
        spec: ``"blendshape"``, ``"vertex"``, ``"module:Class"``, or a dict
            ``{"name": ..., **settings}`` (a recipe config's ``space``).
        settings: the space's settings (``space.settings()`` as stored in a checkpoint).
    Raises:
        DataError: unknown name or bad settings.
    """
    from facemotion.face.space import build_space as _build

    return _build(spec, settings)


def space_description(space) -> dict:
    """``{"name", "settings"}`` of a space, as a checkpoint stores it (``settings()`` and
    ``name`` are optional for stand-in spaces: ``{}`` and the ``"module:Class"`` path)."""
    name = getattr(space, "name", "") or f"{type(space).__module__}:{type(space).__qualname__}"
    settings = space.settings() if hasattr(space, "settings") else {}
    return {"name": name, "settings": settings}


_OLD_STATISTICS = ("motion_mean", "motion_std", "audio_mean", "audio_std")


def _rename_old_statistics(module, state_dict, prefix, *args) -> None:
    """Load-state-dict pre-hook: the four buffers of checkpoints older than the normaliser
    (``<prefix>motion_mean``, ...) become ``<prefix>normalizer.motion_mean``, ..."""
    for name in _OLD_STATISTICS:
        if prefix + name in state_dict:
            state_dict[prefix + "normalizer." + name] = state_dict.pop(prefix + name)


class Recipe(nn.Module):
    """Base of recipes: a face space, an audio encoder, config and normalisation buffers.

    Subclasses set ``name`` and ``Config`` and implement ``sample``, ``training_loss``,
    ``validation_metrics``, ``set_phase`` and ``train_frames``.

    ``normalizer`` (:class:`facemotion.models.normalizer.Normalizer`, keys ``motion`` ``[D]`` and
    ``audio`` ``[C]``) standardises the face-space motion and the audio features; it is fitted on
    the training data (``set_statistics``) and saved with the weights. Checkpoints written before
    it existed (buffers ``motion_mean``, ``motion_std``, ``audio_mean``, ``audio_std``) load into it.
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
        self.normalizer = Normalizer({"motion": self.space.dim, "audio": self.audio_encoder.dim},
                                     std_floor=getattr(config, "std_floor", 1e-2))
        self.register_load_state_dict_pre_hook(_rename_old_statistics)

    def set_statistics(self, stats: dict, std_floor: float | None = None) -> None:
        """Store normalisation statistics in :attr:`normalizer`.

        Args:
            stats: ``{key: RunningStats}`` (``data.windows.dataset_statistics`` output, keys
                ``motion`` and ``audio``), or the old flat form ``{"motion_mean": [D], ...}``.
            std_floor: stds are floored at this (default the normaliser's, ``config.std_floor``).
        Raises:
            KeyError: an unknown key.
        """
        if std_floor is not None:
            self.normalizer.std_floor = float(std_floor)
        if any(k.endswith(("_mean", "_std")) for k in stats):
            for key in {k.rsplit("_", 1)[0] for k in stats}:
                self.normalizer.set(key, stats.get(f"{key}_mean", self.normalizer.mean(key)),
                                    stats.get(f"{key}_std", self.normalizer.std(key)))
            return
        self.normalizer.fit(stats)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Face-space motion ``[..., D]`` → zero mean, unit std per dim (``normalizer``, key ``motion``)."""
        return self.normalizer.normalize("motion", x)

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of ``normalise``: ``[..., D]`` normalised → face-space motion."""
        return self.normalizer.unnormalize("motion", x)

    def normalise_audio(self, a: torch.Tensor) -> torch.Tensor:
        """Audio features ``[..., C]`` → zero mean, unit std per channel (key ``audio``)."""
        return self.normalizer.normalize("audio", a)

    # Read-only views of the normaliser's buffers under the names of the old fixed buffers.
    motion_mean = property(lambda self: self.normalizer.mean("motion"), doc="``[D]`` motion mean.")
    motion_std = property(lambda self: self.normalizer.std("motion"), doc="``[D]`` motion std.")
    audio_mean = property(lambda self: self.normalizer.mean("audio"), doc="``[C]`` audio feature mean.")
    audio_std = property(lambda self: self.normalizer.std("audio"), doc="``[C]`` audio feature std.")

    def audio_features(self, wave: np.ndarray) -> torch.Tensor:
        """Audio features of a waveform ``[N]`` (16 kHz) at the model's fps.

        Returns:
            ``[T, C]`` float32 (not normalised), T = round(N / 16000 · fps).
        """
        frames = max(1, int(round(len(wave) / SAMPLE_RATE * self.fps)))
        return torch.from_numpy(self.audio_encoder.encode_numpy(np.asarray(wave, np.float32), frames, self.fps))

    def _own_state(self) -> dict[str, torch.Tensor]:
        """The state dict on the CPU: weights, buffers and the face space's persistent state
        (e.g. a PCA basis; a space's non-persistent buffers, such as the rig, are not in it)."""
        return {k: v.detach().cpu() for k, v in self.state_dict().items()}

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write the one-file checkpoint (atomically): weights, config, normalisation statistics
        (buffers), the audio encoder's settings and the face space (``space``: its name and
        settings; its persistent state is in ``state_dict`` under ``space.``). Returns the path."""
        blob = {"format": CHECKPOINT_FORMAT, "recipe": self.name, "config": dataclasses.asdict(self.config),
                "audio_encoder": self.audio_encoder.config(), "space": space_description(self.space),
                "state_dict": self._own_state()}
        with atomic_path(path) as tmp:
            torch.save(blob, tmp)
        return Path(path)

    def _scheduler(self, name: str):
        """A ``diffusers`` scheduler ``name`` (``facemotion.diffusion.schedulers.make_scheduler``)
        on the schedule of the training noiser ``self.scheduler`` (or of the config, while that
        is being built)."""
        from facemotion.diffusion.schedulers import make_scheduler

        ref = getattr(self, "scheduler", None)
        ref = ref.config if ref is not None else self.config
        return make_scheduler(name, ref.num_train_timesteps, ref.prediction_type, ref.beta_schedule)

    def window_boundaries(self, num_frames: int) -> tuple[list[int], int]:
        """Where the sampler's windows hand over in ``num_frames`` frames and how many frames each
        hand-over spans (for the seam metric of ``facemotion eval``). None here: one window."""
        return [], 2

    def untrained_parts(self) -> list[str]:
        """Parts of the model that this config never trains, so they must come from ``init_from``
        (e.g. a fine-tuning config that skips a pre-training phase). Empty here."""
        return []

    def bilabial_track(self, features: torch.Tensor) -> np.ndarray | None:
        """``[T]`` evidence of /p b m/ per frame, read from audio features ``[T, C]`` (not
        normalised): the bilabial viseme channel of the encoder's ``phonetic`` block with
        ``search="asr"`` (Whisper's transcript force-aligned; the phone searches that need no
        transcript find many false /p b m/). None when the encoder has no such block."""
        from facemotion.audio.phones import PHONES, VISEMES

        offset = 0
        for encoder in list(getattr(self.audio_encoder, "encoders", None) or [self.audio_encoder]):
            cfg = encoder.config()
            if cfg.get("name") == "phonetic" and cfg.get("search") == "asr" and cfg.get("visemes"):
                channel = offset + len(PHONES) + VISEMES.index("bilabial")
                return features[:, channel].float().cpu().numpy()
            offset += encoder.dim
        return None

    @torch.no_grad()
    def init_from(self, other: "Recipe") -> list[str]:
        """Copy ``other``'s trained parameters into this recipe before fine-tuning it.

        A parameter of the same shape is copied; one that is larger along some dimensions
        (e.g. ``denoiser.audio_in.weight`` ``[d, C]`` after audio channels were appended to the
        encoder, ``[d, C + C']``) gets ``other``'s values in its leading slice and zeros in the
        rest, so the new inputs start out ignored and the model computes what ``other`` did.
        The audio channels of parameters over the audio features (their name holds ``audio``,
        their last dimension is the encoder's width) are matched block by block
        (:meth:`audio_channel_map`): a block this config drops is left out, one it adds starts at
        zero, whatever the order (the audio encoder's own weights are matched by name). Buffers
        (normalisation statistics) are not copied: training sets them from its data. Fine-tuning
        support of this project; DiffPoseTalk itself trains from scratch.

        Returns:
            names of the parameters that were only partly copied.
        Raises:
            DataError: another recipe, or a parameter missing, smaller or of another rank.
        """
        if other.name != self.name:
            raise DataError(f"cannot initialise {self.name!r} from a {other.name!r} checkpoint")
        theirs = dict(other.named_parameters())
        channels = self.audio_channel_map(other)
        partial = []
        for name, mine in self.named_parameters():
            if name.startswith("space."):
                continue
            src = theirs.get(name)
            if (src is not None and "audio" in name and not name.startswith("audio_encoder.")
                    and src.dim() == mine.dim() and src.shape[-1] == other.audio_encoder.dim
                    and mine.shape[-1] == self.audio_encoder.dim):
                mapped = src.new_zeros(*src.shape[:-1], len(channels))
                kept = torch.tensor([j for j, c in enumerate(channels) if c >= 0], dtype=torch.long)
                mapped[..., kept] = src[..., [c for c in channels if c >= 0]]
                src = mapped
                if min(channels, default=0) < 0:
                    partial.append(name)
            if src is None or src.dim() != mine.dim() or any(a < b for a, b in zip(mine.shape, src.shape)):
                raise DataError(f"initial checkpoint: parameter {name} "
                                f"{'missing' if src is None else tuple(src.shape)} does not fit {tuple(mine.shape)}")
            if src.shape == mine.shape:
                mine.copy_(src)
            else:
                mine.zero_()
                mine[tuple(slice(0, n) for n in src.shape)] = src
                if name not in partial:
                    partial.append(name)
        return partial

    def audio_channel_map(self, other: "Recipe") -> list[int]:
        """For each channel of this recipe's audio features ``[.., C]``, the channel of ``other``'s
        holding the same feature, or -1 for a new one. The encoders' blocks (the joined encoders of
        a ``concat``, else the one encoder) are matched by their settings (``config()``)."""
        def blocks(encoder: AudioEncoder) -> list[tuple[str, int]]:
            joined = list(getattr(encoder, "encoders", None) or [encoder])
            return [(json.dumps(e.config(), sort_keys=True), e.dim) for e in joined]

        starts: dict[str, int] = {}
        offset = 0
        for key, dim in blocks(other.audio_encoder):
            starts.setdefault(key, offset)
            offset += dim
        channels: list[int] = []
        for key, dim in blocks(self.audio_encoder):
            start = starts.get(key)
            channels.extend(range(start, start + dim) if start is not None else [-1] * dim)
        return channels

    @classmethod
    def from_checkpoint_dict(cls, blob: dict, audio_model_dir=None, source: str = "checkpoint",
                             asr_model_dir=None) -> "Recipe":
        """Rebuild a recipe from a loaded checkpoint dict (see ``recipes.load_checkpoint``).

        The face space is built from the checkpoint's ``space`` (name and settings; a
        checkpoint without one, written before spaces had settings, gets the config's space,
        i.e. ``BlendshapeSpace``), then every tensor, the space's persistent state included,
        loads from ``state_dict``.

        Raises:
            DataError: the space cannot be built, or the weights do not fit the model.
        """
        cfg = dict(blob["config"])
        cfg["audio_encoder"] = blob["audio_encoder"]
        described = blob.get("space")
        space = None
        if isinstance(described, dict) and described.get("name"):
            space = build_space(described["name"], described.get("settings") or {})
            cfg["space"] = described["name"]
        recipe = cls(config_from(cls.Config, cfg, source), space=space, audio_model_dir=audio_model_dir,
                     asr_model_dir=asr_model_dir)
        missing, unexpected = recipe.load_state_dict(blob["state_dict"], strict=False)
        if missing or unexpected:
            raise DataError(f"{source}: weights do not match the model (missing {missing[:5]}, "
                            f"unexpected {unexpected[:5]})")
        return recipe.eval()


def describe(recipe: Recipe) -> str:
    """One line: recipe name, parameter count and config (for logs)."""
    n = sum(p.numel() for p in recipe.parameters())
    return f"{recipe.name}: {n / 1e6:.2f} M parameters, config {json.dumps(dataclasses.asdict(recipe.config))}"
