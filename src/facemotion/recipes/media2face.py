"""Media2Face (Zhao et al. 2024): latent diffusion in a learned expression space, guided by speech
and by text or image prompts, with keyframe editing and overlapped batching denoising.

Two recipes on the one trainer:

- ``media2face-vae`` (:class:`Media2FaceVAE`): the GNPFA stand-in of §3.1, the geometry VAE and
  the mapping networks M, M′ of :class:`facemotion.face.latent.LatentSpace`, trained on the
  corpus's frames and on random ARKit weight combinations (the blendshape augmentation), each on
  a random identity of the built-in head (eqs. 1, 2).
- ``media2face`` (:class:`Media2Face`): the denoiser G(X_t, t, A, P) (eq. 4,
  :class:`facemotion.models.CrossAttentionDenoiser`) over ``x = [z_e, θ]`` in that space: x0
  prediction, cosine schedule with N = 500, losses of eqs. 5-8 with the paper's λ, the two
  random masks (prompt, then the concatenated condition), multi-condition guidance (eq. 9) with
  all branches in one batched forward, DDIM; prompt schedules blended per frame (§4.3),
  keyframes held by temporal inpainting (§4.2), long audio by overlapped batching denoising
  (§4.1) or autoregressive windows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from facemotion import losses
from facemotion.diffusion.guidance import guided_output
from facemotion.diffusion.schedulers import add_noise, predicted_x0, sample_loop
from facemotion.diffusion.windows import (autoregressive_windows, fuse_windows, overlapped_windows, window_boundaries,
                                          window_slice)
from facemotion.errors import FacemotionError
from facemotion.face.latent import NUM_WEIGHTS, LatentSpace
from facemotion.face.lips import lip_vertex_error
from facemotion.models import build_denoiser
from facemotion.recipes.base import DiffusionConfig, Recipe, TrainConfig

# Guidance branches of eq. 9: G(X_t, t), G(X_t, t, A), G(X_t, t, A, P) ("audio" drops the whole condition).
BRANCHES = ({"audio", "prompt"}, {"prompt"}, set())
LONG_AUDIO = ("overlapped", "autoregressive")


class _OnePhase:
    """Recipe parts of a one-phase recipe that trains on windows of ``config.window`` frames."""

    @property
    def train_frames(self) -> int:
        """Frames per training window."""
        return self.config.window

    def set_phase(self, step: int) -> str:
        """The one phase (``self.phase``)."""
        return self.phase

    def phase_start(self, step: int) -> int:
        """0 (one phase)."""
        return 0


@dataclass
class Media2FaceVAEConfig(TrainConfig):
    """Settings of the VAE recipe.

    VAE: ``latent_dim`` L = 64, ``vae_vertices`` S = 512 subset vertices, ``vae_hidden`` 256
    (MLPs; the paper: a UNet on coordinate maps). Training: windows of ``window`` frames of the
    corpus (its blendshape space) give the real frames; as many random ARKit combinations (each
    shape active with probability ``p_active``, weight uniform in [0, 1]) augment them; every
    frame gets an identity β ~ N(0, I) of the rig. Loss: eq. 1 + ``w_kl`` KL + eq. 2 with its
    latent term weighted ``w_latent`` and its weight term ``w_weights`` (weights are in [0, 1],
    geometry in mm), the weight term also on the encoder's latents (M′ then reads what the
    diffusion model generates). ``space``, ``fps`` and ``audio_encoder`` only serve the shared
    trainer (the corpus's layout and its cached features): the VAE reads no audio, so the
    encoder is the cheapest to cache, ``mel``.
    """

    space: str | dict = "blendshape"
    fps: float = 25.0
    audio_encoder: dict = dataclasses.field(default_factory=lambda: {"name": "mel"})
    std_floor: float = 1e-2
    latent_dim: int = 64
    vae_vertices: int = 512
    vae_hidden: int = 256
    window: int = 25
    p_active: float = 0.2
    w_kl: float = 1e-4
    w_latent: float = 1.0
    w_weights: float = 100.0
    lr: float = 1e-3
    batch_size: int = 16
    max_steps: int = 20000
    val_every: int = 1000
    ckpt_every: int = 500


class Media2FaceVAE(_OnePhase, Recipe):
    """The geometry VAE and mapping networks (module doc); ``vae`` is the trained
    :class:`LatentSpace` (the ``media2face`` recipe's space loads it from this recipe's
    ``model.pt``)."""

    name = "media2face-vae"
    Config = Media2FaceVAEConfig

    def __init__(self, config: Media2FaceVAEConfig | None = None, space=None, audio_model_dir=None,
                 asr_model_dir=None):
        super().__init__(config or Media2FaceVAEConfig(), space, audio_model_dir, asr_model_dir)
        c = self.config
        self.vae = LatentSpace(c.latent_dim, c.vae_vertices, c.vae_hidden)
        self.phase = "vae"

    def _frames(self, batch: dict) -> torch.Tensor:
        """The real frames' ARKit weights ``[N, 52]`` of a batch of windows."""
        w = batch["motion"][..., :NUM_WEIGHTS]
        length = torch.as_tensor(batch["length"], device=w.device)
        return w[torch.arange(w.shape[1], device=w.device)[None] < length[:, None]]

    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eqs. 1 and 2 on the batch's frames and as many random ARKit combinations.

        Args:
            batch: ``motion [B, T, 55]`` (blendshape space), ``length [B]``.
        Returns:
            (scalar loss, unweighted terms: recon, kl (per frame, summed over L), map_geo,
            map_latent (mm², latent², weight² per value), weights).
        """
        c, vae = self.config, self.vae
        vae.trained.fill_(True)
        real = self._frames(batch)
        rand = torch.rand(len(real), NUM_WEIGHTS, device=real.device)
        combos = rand * (torch.rand_like(rand) < c.p_active)
        w = torch.cat([real, combos])
        beta = torch.randn(len(w), vae.identity_modes, device=w.device)
        terms = self.vae_terms(w, beta)
        weights = {"recon": 1.0, "kl": c.w_kl, "map_geo": 1.0, "map_latent": c.w_latent, "weights": c.w_weights}
        loss = sum(weights[k] * v for k, v in terms.items())
        return loss, {k: v.detach() for k, v in terms.items()}

    def vae_terms(self, w: torch.Tensor, beta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted VAE terms of ARKit weights ``w [N, 52]`` on identities ``beta [N, K]``
        (see :meth:`training_loss`)."""
        vae = self.vae
        geo = vae.subset_geometry(w)
        neutral = vae.neutral_offset(beta, (len(w),))
        mu, logvar = vae.encode(geo)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        z_map = vae.to_latent(w)
        return {"recon": (vae.decode_geometry(z, neutral) - geo).square().mean(),
                "kl": -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(-1).mean(),
                "map_geo": (vae.decode_geometry(z_map, neutral) - geo).square().mean(),
                "map_latent": (z_map - mu.detach()).square().mean(),
                "weights": ((vae.to_weights(z_map) - w).square().mean()
                            + (vae.to_weights(mu.detach()) - w).square().mean())}

    @torch.no_grad()
    def reconstruction_errors(self, w: torch.Tensor, beta: torch.Tensor | None = None) -> dict[str, float]:
        """Errors on frames of ARKit weights ``w [N, 52]`` (identities ``beta [N, K]`` or the
        mean face): ``recon_mm`` mean per-vertex distance of G_geo(Ḡ, μ) from the geometry at
        the subset, ``recon_max_mm`` its mean over frames of the largest vertex distance,
        ``map_mm`` the same through M, ``weights_rt`` mean |M′(M(w)) − w|."""
        vae = self.vae
        geo = vae.subset_geometry(w)
        neutral = vae.neutral_offset(beta, (len(w),))

        def dist(g):
            return (g - geo).unflatten(-1, (-1, 3)).norm(dim=-1)
        rec = dist(vae.decode_geometry(vae.encode(geo)[0], neutral))
        return {"recon_mm": float(rec.mean()), "recon_max_mm": float(rec.max(-1).values.mean()),
                "map_mm": float(dist(vae.decode_geometry(vae.to_latent(w), neutral)).mean()),
                "weights_rt": float((vae.to_weights(vae.to_latent(w)) - w).abs().mean())}

    def validation_metrics(self, batch: dict, generator: torch.Generator) -> dict[str, float]:
        """:meth:`reconstruction_errors` of the validation windows' frames (mean face)."""
        return self.reconstruction_errors(self._frames(batch))


@dataclass
class Media2FaceConfig(DiffusionConfig):
    """Media2Face settings (paper values in brackets where the default differs).

    Space: ``{"name": "latent", "vae": "<media2face-vae model.pt>"}`` for training (the
    checkpoint then holds the VAE). Denoiser: ``cross_attention``, ``d_model`` 128 [512],
    ``n_layers`` 4 [8], ``n_heads`` 4, scaled down for a CPU; ``align_mask``: alignment mask on
    cross-attention [the paper does not say]; ``window`` N = 100 frames at 25 fps [200 at 30 fps].
    Diffusion: N = 500 steps, cosine schedule, x0 prediction. Training: AdamW; first mask drops
    the prompt with ``p_drop_prompt``, the second the concatenated condition with
    ``p_drop_all`` [rates not given in the paper]; loss weights λ_simple 1, λ_velocity 1,
    λ_smooth 0.01 (§5.1). Prompts: ``prompt_encoder`` ``"minilm"`` (offline sentence embeddings;
    the paper: CLIP) or ``"clip"`` with ``prompt_model_dir``; schedules blended over
    ``prompt_blend`` seconds. Sampling: DDIM, ``w_audio`` s_A 2.5, ``w_prompt`` s_P 1.5 (eq. 9);
    ``long_audio`` ``"overlapped"`` (all windows in one batch, overlapping by ``overlap`` frames,
    cross-faded) or ``"autoregressive"`` (window after window, each holding the ``overlap``
    frames it shares with the one before by inpainting).
    """

    space: str | dict = dataclasses.field(default_factory=lambda: {"name": "latent"})
    denoiser: str = "cross_attention"
    align_mask: bool = True
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    prompt_encoder: str = "minilm"
    prompt_model_dir: str | None = None
    p_drop_prompt: float = 0.2
    p_drop_all: float = 0.1
    w_simple: float = 1.0
    w_velocity: float = 1.0
    w_smooth: float = 0.01
    scheduler: str = "ddim"
    steps: int = 20
    w_audio: float = 2.5
    w_prompt: float = 1.5
    long_audio: str = "overlapped"
    overlap: int = 20
    prompt_blend: float = 0.5


class Media2Face(_OnePhase, Recipe):
    """The Media2Face recipe (module doc).

    Attributes: ``space`` (:class:`LatentSpace`, frozen), ``denoiser``, ``scheduler`` (training
    noiser), ``train_prompts`` (clip id -> prompt embedding, filled by :meth:`prepare_training`).
    """

    name = "media2face"
    Config = Media2FaceConfig
    takes_prompts = True

    def __init__(self, config: Media2FaceConfig | None = None, space=None, audio_model_dir=None,
                 asr_model_dir=None, denoiser: torch.nn.Module | None = None):
        super().__init__(config or Media2FaceConfig(), space, audio_model_dir, asr_model_dir)
        c = self.config
        from facemotion.prompts import embedding_dim

        self.prompt_dim = embedding_dim(c.prompt_encoder, c.prompt_model_dir)
        self.denoiser = denoiser if denoiser is not None else build_denoiser(
            c.denoiser, motion_dim=self.space.dim, audio_dim=self.audio_encoder.dim, prompt_dim=self.prompt_dim,
            d_model=c.d_model, n_layers=c.n_layers, n_heads=c.n_heads, ff_mult=c.ff_mult, dropout=c.dropout,
            align=c.align_mask)
        self.space.requires_grad_(False)
        self.scheduler = self._scheduler("ddpm")
        self.phase = "denoiser"
        self.train_prompts: dict[str, torch.Tensor] = {}

    @property
    def default_sampling(self) -> dict:
        """``{"steps", "w_audio", "w_prompt", "scheduler", "long_audio", "overlap"}``."""
        c = self.config
        return {"steps": c.steps, "w_audio": c.w_audio, "w_prompt": c.w_prompt, "scheduler": c.scheduler,
                "long_audio": c.long_audio, "overlap": c.overlap}

    def window_boundaries(self, num_frames: int) -> tuple[list[int], int]:
        """Where the windows of :meth:`sample` hand over and over how many frames (the overlap,
        cross-faded or held, plus 2)."""
        c = self.config
        return window_boundaries(num_frames, c.window, c.overlap), c.overlap + 2

    # ------------------------------------------------------------------ prompts
    def embed_prompts(self, texts: list[str]) -> torch.Tensor:
        """Prompt embeddings ``[N, P]`` of ``texts`` by the config's encoder (offline)."""
        from facemotion.prompts import embed_texts

        return torch.from_numpy(embed_texts(texts, self.config.prompt_encoder, self.config.prompt_model_dir))

    def prepare_training(self, data, records: list[dict]) -> None:
        """Embed the ``prompt`` label of every clip of ``records`` (each distinct text once) into
        :attr:`train_prompts` (clips without one train with the prompt dropped)."""
        texts = sorted({str(r["prompt"]) for r in records if r.get("prompt")})
        table = dict(zip(texts, self.embed_prompts(texts))) if texts else {}
        self.train_prompts = {str(r["id"]): table[str(r["prompt"])] for r in records if r.get("prompt")}

    def _prompt_groups(self, prompt, num_frames: int):
        """(embeddings ``[K, P]``, has-prompt ``[K]`` bool, per-frame weights ``[K, T]``) of a
        prompt: None, a text, an embedding ``[P]`` (e.g. a CLIP image), or a schedule
        ``[(start_s, end_s, text)]``."""
        from facemotion.prompts import schedule_masks

        ones = torch.ones(1, num_frames)
        if prompt is None:
            return torch.zeros(1, self.prompt_dim), torch.zeros(1, dtype=torch.bool), ones
        if isinstance(prompt, str):
            return self.embed_prompts([prompt]), torch.ones(1, dtype=torch.bool), ones
        if isinstance(prompt, (np.ndarray, torch.Tensor)):
            emb = torch.as_tensor(np.asarray(prompt, np.float32)).reshape(1, -1)
            if emb.shape[1] != self.prompt_dim:
                raise FacemotionError(f"prompt embedding has {emb.shape[1]} values, the model takes {self.prompt_dim}")
            return emb, torch.ones(1, dtype=torch.bool), ones
        texts, masks = schedule_masks(list(prompt), num_frames, self.fps, self.config.prompt_blend)
        has = torch.tensor([t is not None for t in texts])
        emb = torch.zeros(len(texts), self.prompt_dim)
        if has.any():
            emb[has] = self.embed_prompts([t for t in texts if t is not None])
        return emb, has, torch.from_numpy(masks)

    # ------------------------------------------------------------------ keyframes
    def keyframe_condition(self, keyframes, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Face-space values and mask of keyframes (:class:`facemotion.face.keyframes.Keyframe`).

        The expression of a key is its latent (M(w) refined through M′, so the key's weights come
        back through M′ within 1e-4) or, in a blendshape space, the weights themselves.

        Returns:
            (``data [T, D]`` motion, ``mask [T, D]`` bool: the dimensions each key holds).
        Raises:
            FacemotionError: a key beyond the last frame.
        """
        space, d = self.space, self.space.dim
        data, mask = torch.zeros(num_frames, d), torch.zeros(num_frames, d, dtype=torch.bool)
        head = slice(d - 3, d)
        for key in keyframes:
            if key.frame >= num_frames:
                raise FacemotionError(f"keyframe at frame {key.frame} is past the speech's {num_frames} frames")
            if key.weights is not None:
                w = torch.from_numpy(key.weights)[None].to(self.motion_mean)
                if hasattr(space, "weights_to_latent"):
                    expr = space.weights_to_latent(w, refine=True)[0]
                else:
                    expr = w[0]
                data[key.frame, :d - 3], mask[key.frame, :d - 3] = expr.cpu(), True
            if key.head_rotation is not None:
                data[key.frame, head], mask[key.frame, head] = torch.from_numpy(key.head_rotation), True
        return data, mask

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def sample(self, features: torch.Tensor, num_samples: int = 1, style=None, steps: int | None = None,
               w_audio: float | None = None, w_style: float | None = None,
               generator: torch.Generator | list[torch.Generator] | None = None, scheduler: str | None = None,
               prompt=None, keyframes=None, w_prompt: float | None = None, long_audio: str | None = None,
               overlap: int | None = None, init: torch.Tensor | None = None, strength: float = 1.0) -> torch.Tensor:
        """Generate motion for a whole utterance (eq. 9 guidance, DDIM).

        Every window, sample, prompt of a schedule and guidance branch of a step runs in one
        batched forward (``overlapped``); ``autoregressive`` runs the windows one after another.

        Args:
            features: audio features ``[T, C]`` (not normalised).
            num_samples: S; generator: one torch RNG or one per sample.
            style: not taken (Media2Face is steered by prompts); must be None.
            steps, w_audio, scheduler, long_audio, overlap: override ``default_sampling``.
            w_prompt: s_P (``w_style`` is taken as s_P when ``w_prompt`` is None).
            prompt: None (s_P term vanishes), a text, an embedding ``[P]``, or a schedule
                ``[(start_s, end_s, text)]`` whose prompts are blended per frame.
            keyframes: :class:`facemotion.face.keyframes.Keyframe` s held by inpainting.
            init: a motion ``[T, D]`` to edit (with ``strength`` < 1: sampling starts from it
                noised part-way, SDEdit; keyframes are held on top).
        Returns:
            ``[S, T, D]`` face-space motion (de-normalised).
        Raises:
            FacemotionError: a style vector, an unknown ``long_audio``, a bad overlap, a bad
                prompt embedding or a keyframe past the end.
        """
        if style is not None:
            raise FacemotionError("the media2face model takes a prompt, not a style vector")
        c, ds = self.config, self.default_sampling
        long_audio = long_audio or ds["long_audio"]
        if long_audio not in LONG_AUDIO:
            raise FacemotionError(f"long_audio {long_audio!r}: choose from {', '.join(LONG_AUDIO)}")
        overlap = ds["overlap"] if overlap is None else int(overlap)
        if not 0 <= overlap < c.window:
            raise FacemotionError(f"overlap must be in [0, {c.window}), got {overlap}")
        w_audio = ds["w_audio"] if w_audio is None else w_audio
        w_prompt = w_prompt if w_prompt is not None else (w_style if w_style is not None else ds["w_prompt"])
        sched = self._scheduler(scheduler or ds["scheduler"])
        steps = steps or ds["steps"]
        dev, total, tw, d = self.motion_mean.device, features.shape[0], c.window, self.space.dim
        feats = self.normalise_audio(features.to(dev))[None]
        emb, has, masks = self._prompt_groups(prompt, total)
        k = len(emb)
        s_p = (w_prompt * has.float()).to(dev).repeat_interleave(num_samples)  # [K·S] per group and sample
        data = mask = None
        if keyframes or init is not None:
            data, mask = self.keyframe_condition(keyframes or [], total)
            data = data.to(dev)
            if init is not None:
                data = torch.where(mask.to(dev), data, init.to(dev))
            data, mask = self.normalise(data)[None], mask.to(dev)[None]
        gens = generator if isinstance(generator, (list, tuple)) else None

        def run(starts: list[int], known: torch.Tensor | None = None) -> torch.Tensor:
            n, b = len(starts), len(starts) * num_samples
            cat = torch.cat
            audio = cat([window_slice(feats, s, tw, 0) for s in starts]).repeat_interleave(num_samples, 0)
            blend = torch.stack([window_slice(masks[:, :, None].to(dev), s, tw, 0) for s in starts], 1)  # [K, n, tw, 1]
            blend = blend.repeat_interleave(num_samples, 1)
            cond = {"audio": audio.repeat(k, 1, 1), "prompt": emb.to(dev).repeat_interleave(b, 0)}
            scale = s_p.view(k, 1, num_samples).expand(k, n, num_samples).reshape(-1, 1, 1)

            def denoise(x, t):
                out = guided_output(self.denoiser, x.repeat(k, 1, 1), t.repeat(k), cond, BRANCHES,
                                    [w_audio, scale], incremental=False)
                x0 = (out.view(k, b, tw, d) * blend).sum(0)
                if n > 1 and long_audio == "overlapped":  # the windows' x0 agree on their overlaps
                    x0 = fuse_windows(x0.view(n, num_samples, tw, d), starts, overlap).reshape(b, tw, d)
                return x0
            cdata = cmask = None
            if data is not None or known is not None:
                cdata = torch.zeros(b, tw, d, device=dev) if data is None else \
                    cat([window_slice(data, s, tw, 0) for s in starts]).repeat_interleave(num_samples, 0)
                cmask = torch.zeros(b, tw, d, dtype=torch.bool, device=dev) if mask is None else \
                    cat([window_slice(mask.float(), s, tw, 0) for s in starts]).bool().repeat_interleave(num_samples, 0)
                if known is not None:
                    cdata[:, :known.shape[1]], cmask[:, :known.shape[1]] = known, True
            gen = [g for _ in starts for g in gens] if gens is not None else generator
            x = sample_loop(sched, denoise, (b, tw, d), steps, gen, dev, condition_data=cdata, condition_mask=cmask,
                            strength=strength if init is not None else 1.0)
            return x.view(n, num_samples, tw, d)

        if long_audio == "overlapped":
            x = overlapped_windows(lambda starts, window: run(starts), total, tw, overlap)
        else:
            x = autoregressive_windows(lambda start, valid, prev, known: run([start], known)[0], total, tw, 1,
                                       overlap)
        return self.denormalise(x)

    # ------------------------------------------------------------------ training
    def _batch_prompts(self, batch: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
        ids = batch.get("id") or []
        emb = torch.zeros(len(batch["length"]), self.prompt_dim, device=device)
        has = torch.zeros(len(emb), dtype=torch.bool, device=device)
        for i, clip in enumerate(ids):
            if clip in self.train_prompts:
                emb[i], has[i] = self.train_prompts[clip].to(device), True
        return emb, has

    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 8 on a batch of N-frame windows with the two random masks (§4.1).

        Args:
            batch: ``audio [B, N, C]``, ``motion [B, N, D]`` (latent space), ``length [B]``,
                ``id`` (clip ids, for their prompts).
        Returns:
            (scalar loss, unweighted terms ``simple``, ``velocity``, ``smooth``).
        """
        c = self.config
        audio, x0 = self.normalise_audio(batch["audio"]), self.normalise(batch["motion"])
        b, n, dev = x0.shape[0], x0.shape[1], x0.device
        valid = (torch.arange(n, device=dev)[None] < torch.as_tensor(batch["length"], device=dev)[:, None]).float()
        prompt, has = self._batch_prompts(batch, dev)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), device=dev)
        x_t = add_noise(self.scheduler, x0, torch.randn_like(x0), t)
        drop = {"prompt": (torch.rand(b, device=dev) < c.p_drop_prompt) | ~has,
                "audio": torch.rand(b, device=dev) < c.p_drop_all}
        pred = predicted_x0(self.scheduler, self.denoiser(x_t, t, {"audio": audio, "prompt": prompt}, drop), x_t, t)
        terms = {"simple": losses.simple_loss(pred, x0, valid), "velocity": losses.velocity_loss(pred, x0, valid),
                 "smooth": losses.smooth_loss(pred, valid)}
        loss = sum(getattr(c, "w_" + k) * v for k, v in terms.items())
        return loss, {k: v.detach() for k, v in terms.items()}

    @torch.no_grad()
    def validation_metrics(self, batch: dict, generator: torch.Generator) -> dict[str, float]:
        """Sample each validation window with its clip's prompt (10 DDIM steps) and compare with
        the ground truth: ``lve_mm`` (lip vertex error on the decoded head, max over lip vertices,
        mean over frames) and ``head_deg`` (mean absolute head angle error, degrees)."""
        lips = self.space.lip_indices
        out = {"lve_mm": [], "head_deg": []}
        emb, has = self._batch_prompts(batch, self.motion_mean.device)
        for i, (audio, motion, length) in enumerate(zip(batch["audio"], batch["motion"], batch["length"])):
            n = int(length)
            pred = self.sample(audio[:n], prompt=emb[i] if has[i] else None, steps=10, generator=generator)
            gt = motion[:n][None]
            v_hat, v = self.space.expression_vertices(pred, lips), self.space.expression_vertices(gt, lips)
            out["lve_mm"].append(1e3 * lip_vertex_error(v_hat, v, torch.arange(len(lips))).mean())
            out["head_deg"].append((self.space.head_pose(pred) - self.space.head_pose(gt)).abs().mean().rad2deg())
        return {k: float(torch.stack(v).mean()) for k, v in out.items()}


__all__ = ["Media2Face", "Media2FaceConfig", "Media2FaceVAE", "Media2FaceVAEConfig"]
