"""The training loop shared by all recipes, on Lightning (CPU, one GPU or many).

``train`` caches audio features (or, for a trainable audio encoder, streams waveform windows
that the encoder turns into features inside the training step), fits the normaliser on the
training clips (streamed), streams 2·T_w windows, keeps an EMA of the weights (``diffusers``),
validates, writes ``out/last.ckpt`` (resumable) and exports the EMA model as the one-file
facemotion checkpoint ``out/model.pt``.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader, default_collate

from facemotion.data.features import cache_features
from facemotion.data.native import read_manifest
from facemotion.data.windows import MotionWindows, dataset_statistics, fixed_windows
from facemotion.errors import DataError, require
from facemotion.recipes.base import Recipe, config_from, describe

L = require("lightning", "facemotion train")  # the train extra


class RecipeModule(L.LightningModule):
    """Lightning wrapper of any recipe: phases, Adam with per-phase warm-up, EMA, validation.

    The EMA copy (``ema``, a recipe) follows the trained parameters through ``diffusers``'
    ``EMAModel`` with decay ``min(ema_decay, (1 + k) / (10 + k))`` at update ``k`` ≥ 1 (0 at the
    first update: a plain copy); parameters frozen in the current phase are copied instead,
    so a frozen module (e.g. the style encoder) is exactly the one the rest was trained with,
    and buffers (normalisation statistics) are copied. Validation runs on the EMA model, which
    is what ``train`` exports.

    A trainable audio encoder (``AudioEncoder.is_trainable``) gets batches of waveform windows
    (``wave``) and encodes them here, inside the training graph (:func:`with_audio_features`).
    """

    def __init__(self, recipe: Recipe):
        super().__init__()
        from diffusers.training_utils import EMAModel

        self.recipe = recipe
        self.ema = copy.deepcopy(recipe).requires_grad_(False)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self.ema_model = EMAModel(self.ema.parameters(), decay=recipe.config.ema_decay)
        # its shadow parameters are the EMA recipe's own, updated in place (saved in last.ckpt with it)
        self.ema_model.shadow_params = list(self.ema.parameters())

    def training_step(self, batch, batch_idx):
        """One optimiser step's loss: the recipe's ``training_loss`` in its current phase
        (batch of 2·T_w windows, see ``data.windows``); logs every weighted term."""
        phase = self.recipe.set_phase(self.global_step)
        loss, terms = self.recipe.training_loss(with_audio_features(self.recipe, batch))
        self.log("loss", loss, prog_bar=True, batch_size=len(batch["length"]))
        self.log_dict({f"train/{phase}/{k}": v for k, v in terms.items()}, batch_size=len(batch["length"]))
        return loss

    @torch.no_grad()
    def on_train_batch_end(self, outputs, batch, batch_idx):
        """Update the EMA copy after each optimiser step (decay as in the class docstring)."""
        self.ema_model.optimization_step = int(self.ema_updates)  # resumed runs continue the schedule
        self.ema_model.step(self.recipe.parameters())
        for b_ema, b in zip(self.ema.buffers(), self.recipe.buffers()):
            b_ema.copy_(b)
        self.ema_updates += 1

    def validation_step(self, batch, batch_idx):
        """Sampling metrics of the EMA model, and its loss at fixed noise (fixed RNG seed)."""
        self.ema.eval()
        self.ema.phase = self.recipe.phase
        gen = torch.Generator(device="cpu").manual_seed(batch_idx)
        batch = with_audio_features(self.ema, batch)
        metrics = self.ema.validation_metrics(batch, gen)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(batch_idx)
            metrics["loss"] = float(self.ema.training_loss(batch)[0])
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, batch_size=len(batch["length"]))

    def configure_optimizers(self):
        """``config.optimizer`` (Adam, or AdamW with ``config.weight_decay``) at ``config.lr`` with
        a linear warm-up of ``config.warmup`` steps per phase.

        Raises:
            DataError: an unknown optimizer name.
        """
        cfg = self.recipe.config
        name = getattr(cfg, "optimizer", "adam")
        if name not in ("adam", "adamw"):
            raise DataError(f"optimizer {name!r}: unknown (choose adam or adamw)")
        opt = (torch.optim.AdamW(self.recipe.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
               if name == "adamw" else torch.optim.Adam(self.recipe.parameters(), lr=cfg.lr))

        def factor(step: int) -> float:
            return min(1.0, (step - self.recipe.phase_start(step) + 1) / max(1, cfg.warmup))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def with_audio_features(recipe: Recipe, batch: dict) -> dict:
    """The batch with ``audio [B, T, C]`` features: as given when cached, else computed from
    the waveform windows ``wave [B, N]`` (16 kHz) by the recipe's audio encoder, with autograd
    (T = ``motion``'s frames, at the recipe's fps). Returns a new dict when it adds ``audio``."""
    if "audio" in batch or "wave" not in batch:
        return batch
    frames = batch["motion"].shape[1]
    return {**batch, "audio": recipe.audio_encoder(batch["wave"], frames, recipe.fps)}


def _read_config(config) -> dict:
    if config is None:
        return {}
    if isinstance(config, dict):
        return dict(config)
    try:
        return json.loads(Path(config).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{config}: not a readable JSON config ({e})") from None


def train(recipe: str = "diffposetalk", data: str | os.PathLike = ".", out: str | os.PathLike = "runs/train",
          max_steps: int | None = None, batch_size: int | None = None, resume: bool = True,
          config: str | os.PathLike | dict | None = None, audio_model_dir: str | os.PathLike | None = None,
          accelerator: str = "auto", devices: str | int = "auto", space=None, progress: bool = True,
          init: str | os.PathLike | None = None, asr_model_dir: str | os.PathLike | None = None,
          space_name: str | None = None, flame_model: str | os.PathLike | None = None) -> Path:
    """Train ``recipe`` on the native dataset ``data``; return the exported ``out/model.pt``.

    Args:
        recipe: a name in ``facemotion.recipes.RECIPES``.
        data: native dataset directory (``train`` split trains, ``val`` validates if present).
        out: run directory: ``last.ckpt`` (Lightning, resumable), ``logs/`` (CSV metrics),
            ``config.json``, ``model.pt`` (EMA weights, facemotion checkpoint).
        max_steps, batch_size: override the config's.
        resume: continue from ``out/last.ckpt`` if it exists (the step count continues); False
            starts afresh and the new run's checkpoints replace it.
        config: JSON file (or dict) overriding fields of the recipe's config dataclass.
        audio_model_dir: local wav2vec2/HuBERT directory for encoders that need one.
        asr_model_dir: CTranslate2 Whisper directory for encoders that use Whisper (default:
            the bundled model).
        accelerator, devices: Lightning's (``"cpu"``, ``"gpu"``, ``"auto"``; count or ``"auto"``).
        space: a face space object instead of the config's (tests).
        init: a facemotion checkpoint whose weights start a new run (fine-tuning, see
            ``Recipe.init_from``; e.g. after adding audio channels); ignored when resuming.
        space_name: the face space (``--space``; its settings from the config when it names the
            same space), instead of the config's.
        flame_model: the FLAME model file of the ``flame`` space (``--flame-model``; read at run
            time, the checkpoint keeps only its path: :func:`facemotion.face.flame.with_flame_model`).
    Raises:
        DataError: no training clips, unreadable config or data files, or a config that leaves
            part of the model untrained (``Recipe.untrained_parts``) without ``init``.
    """
    from facemotion.recipes import recipe_class

    cls = recipe_class(recipe)
    overrides = _read_config(config)
    if max_steps is not None:
        overrides["max_steps"] = max_steps
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    cfg = config_from(cls.Config, overrides, str(config or "config"))
    if space_name is not None or flame_model is not None:
        spec = cfg.space if isinstance(cfg.space, dict) else {"name": cfg.space}
        if space_name is not None and space_name != spec.get("name"):
            spec = {"name": space_name}
        if spec["name"] == "flame" or flame_model is not None:
            from facemotion.face.flame import with_flame_model

            spec = with_flame_model(spec, flame_model)
        overrides["space"] = spec
        cfg = config_from(cls.Config, overrides, str(config or "config"))
    out = Path(out)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = cls(cfg, space=space, audio_model_dir=audio_model_dir, asr_model_dir=asr_model_dir)
    last = out / "last.ckpt"
    fresh = not (resume and last.exists())
    if init is None and fresh and model.untrained_parts():
        raise DataError(f"{config or 'config'}: never trains the {', '.join(model.untrained_parts())}; "
                        "use it only to fine-tune a trained model (--init CKPT)")
    out.mkdir(parents=True, exist_ok=True)
    if init is not None and fresh:
        from facemotion.recipes import load_checkpoint

        partial = model.init_from(load_checkpoint(init, audio_model_dir, asr_model_dir))
        print(f"initialised from {init}" + (f" (extended: {', '.join(partial)})" if partial else ""))
    run = {"recipe": recipe, **overrides}
    if init is not None:
        run["init"] = str(init)
    (out / "config.json").write_text(json.dumps(run, indent=2))

    train_recs, val_recs = read_manifest(data, "train"), read_manifest(data, "val")
    if not train_recs:
        raise DataError(f"{data}: no clips in the 'train' split")
    if model.audio_encoder.is_trainable():  # fine-tuned in the training step on waveform windows
        feats = None
    else:
        feats = cache_features(data, train_recs + val_recs[:cfg.val_clips], model.audio_encoder, model.fps,
                               cfg.feature_workers, audio_model_dir, progress, asr_model_dir)
    if getattr(model.space, "needs_fit", False):  # e.g. a PCA vertex space: basis from the training clips
        from facemotion.data.native import load_motion

        model.space.fit(load_motion(data, r) for r in train_recs)
    model.set_statistics(dataset_statistics(data, train_recs, feats, model.space,
                                            derived=getattr(model, "derived_statistics", None)), cfg.std_floor)
    if hasattr(model, "prepare_training"):  # per-clip labels the recipe conditions on (Media2Face: prompts)
        model.prepare_training(data, train_recs + val_recs[:cfg.val_clips])
    module = RecipeModule(model)
    loader = DataLoader(MotionWindows(data, train_recs, feats, model.space, model.train_frames, cfg.seed,
                                      pad=getattr(model, "train_padding", (0, 0))),
                        batch_size=cfg.batch_size, num_workers=cfg.num_workers, collate_fn=default_collate,
                        persistent_workers=cfg.num_workers > 0)
    val = fixed_windows(data, val_recs, feats, model.space, model.train_frames, cfg.val_clips)
    val_loader = DataLoader(val, batch_size=len(val) or 1, collate_fn=default_collate) if val else None
    if fresh and last.exists():  # --no-resume: the new run's checkpoint replaces it (not last-v1.ckpt beside it)
        last.unlink()
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=out, save_last=True, save_top_k=0, every_n_train_steps=cfg.ckpt_every)
    multi = devices not in ("auto", 1, "1") and str(devices) != "1"
    trainer = L.Trainer(max_steps=cfg.max_steps, accelerator=accelerator, devices=devices,
                        strategy="ddp_find_unused_parameters_true" if multi else "auto",
                        default_root_dir=out, logger=L.pytorch.loggers.CSVLogger(out, name="logs"), callbacks=[ckpt],
                        val_check_interval=cfg.val_every if val else None, check_val_every_n_epoch=None,
                        limit_val_batches=1 if val else 0, num_sanity_val_steps=0, log_every_n_steps=10,
                        enable_progress_bar=progress, enable_model_summary=False, gradient_clip_val=1.0)
    trainer.fit(module, loader, val_loader, ckpt_path=None if fresh else last)
    if trainer.is_global_zero:
        module.ema.save_checkpoint(out / "model.pt")
        print(describe(module.ema))
    return out / "model.pt"
