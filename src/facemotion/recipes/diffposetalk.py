"""DiffPoseTalk (Sun et al. 2024): speech + style → face motion and head pose by diffusion.

Wires a face space, an audio encoder, ``TransformerDenoiser`` (x0 prediction, alignment
mask, autoregressive windows of T_w frames with T_p previous frames), ``StyleEncoder``
(NT-Xent pre-training, then frozen), a ``diffusers`` cosine schedule with N = 500 steps,
incremental classifier-free guidance over audio and style (eq. 10), and the losses of
eq. 6 and Appendix A.1 plus a lip-closure term.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from facemotion import losses
from facemotion.diffusion.guidance import guided_output
from facemotion.diffusion.schedulers import add_noise, predicted_x0, sample_loop
from facemotion.diffusion.windows import autoregressive_windows, window_boundaries, window_slice
from facemotion.errors import FacemotionError
from facemotion.face.lips import close_lips, closure_from_track, lip_aperture, lip_vertex_error
from facemotion.models import StyleEncoder, build_denoiser
from facemotion.recipes.base import DiffusionConfig, Recipe

# Guidance branches of eq. 10: D(∅, ∅), D(A, ∅), D(A, s).
BRANCHES = ({"audio", "style"}, {"style"}, set())


@dataclass
class DiffPoseTalkConfig(DiffusionConfig):
    """DiffPoseTalk settings (paper values in brackets where the default differs).

    Model: ``denoiser`` (a name of ``facemotion.models.DENOISERS``), ``shape_dim`` (size of the
    per-sequence shape β the denoiser is conditioned on, 0 = none; a training batch then carries
    ``shape [B, shape_dim]`` and ``sample`` takes ``shape``), ``window`` T_w = 100 frames, ``n_prev_motions`` T_p = 10, denoiser ``d_model``
    128 [512], ``n_layers`` 4 [8], ``n_heads`` 4 [8], ``dropout`` 0 (short CPU runs do not
    overfit); style encoder d_s = 128, 4 layers, 4 heads.
    Diffusion: N = 500, cosine schedule, x0 prediction.
    Training: condition dropout p(style → ∅) = 0.45, p(audio, style → ∅) = 0.1; random
    truncation with probability ``p_truncate``; ``style_steps`` NT-Xent steps first (τ = 0.1),
    then the denoiser with the style encoder frozen. ``p_drop_blocks`` (an addition): for a
    ``concat`` audio encoder, the probability, per joined encoder, that a training sample's
    features of that encoder are zeroed (after normalisation: their mean), so the model learns
    to animate from each block alone (e.g. from Whisper's phones where pocketsphinx's searches
    miss a /p b m/ that Whisper hears); empty = none.
    Loss weights: ``w_vert``, ``w_vel``, ``w_smooth`` as the paper's 2e6, 1e7, 1e5 (the rig,
    like FLAME, is in metres, so the paper's magnitudes carry over); head losses 0.05, 5,
    0.5, 0.5 (radians, Appendix A.1); ``w_lip`` (lip-vertex MSE) and ``w_closure``
    (``losses.closure_loss``) are additions for bilabial closure. Vertex losses use a fixed
    random subset of ``loss_vertices`` mesh vertices plus ``loss_lip_vertices`` lip vertices
    (a lip-weighted estimate of the whole-mesh MSE at a fraction of the cost: the rig has
    14k vertices and decoding all of them costs more than the denoiser).
    Sampling defaults: ``scheduler``, ``steps``, ``w_audio`` 1.15, ``w_style`` 2.5 (Appendix A.2);
    long audio: each window after the first starts ``overlap`` 5 frames before the previous
    one ends and, with ``crossfade``, is cross-faded into it over those frames [the paper hands
    over at the window edge: on real speech the shipped model then jumps there, seam ratio
    1.93 (expression) and 2.00 (head) against 1.04 and 1.13 cross-faded over 5 frames (0.96
    and 0.98 over 10, at a slightly lower open-vowel/bilabial ratio); holding 10 shared frames
    fixed by inpainting instead gave 1.53 and 2.17; ``benchmarks/seams.py``].
    """

    shape_dim: int = 0
    n_prev_motions: int = 10
    causal: bool = False
    align_mask: bool = True
    style_dim: int = 128
    style_layers: int = 4
    style_heads: int = 4
    p_drop_style: float = 0.45
    p_drop_all: float = 0.1
    p_truncate: float = 0.1
    p_drop_blocks: list = field(default_factory=list)
    style_steps: int = 300
    nt_xent_tau: float = 0.1
    loss_vertices: int = 256
    loss_lip_vertices: int = 128
    w_simple: float = 1.0
    w_vert: float = 2e6
    w_vel: float = 1e7
    w_smooth: float = 1e5
    w_lip: float = 5e5
    w_closure: float = 1e5
    closure_sigma: float = 0.003
    w_head_ang: float = 0.05
    w_head_vel: float = 5.0
    w_head_smooth: float = 0.5
    w_head_trans: float = 0.5
    w_audio: float = 1.15
    w_style: float = 2.5
    overlap: int = 5
    crossfade: bool = True
    lip_closure: float = 0.0


class DiffPoseTalk(Recipe):
    """The DiffPoseTalk recipe (see module doc).

    ``DiffPoseTalk(config, space=None, denoiser=None, scheduler=None)``: the face space, the
    denoiser (an ``nn.Module`` with the :class:`~facemotion.models.TransformerDenoiser` call
    ``denoiser(x, t, cond, drop)``) and the training noise scheduler (``diffusers``) can be
    passed in built; each one not given is built from ``config`` (``space``, ``denoiser`` and
    the transformer sizes, ``num_train_timesteps`` / ``prediction_type`` / ``beta_schedule``), as
    a checkpoint is loaded. Sampling schedulers are built by name (``config.scheduler``).

    Attributes: ``space`` (FaceSpace), ``fps``, ``audio_encoder``, ``denoiser``,
    ``style_encoder``, ``scheduler`` (training noiser, DDPM), ``default_sampling``.
    """

    name = "diffposetalk"
    Config = DiffPoseTalkConfig

    def __init__(self, config: DiffPoseTalkConfig | None = None, space=None, audio_model_dir=None,
                 asr_model_dir=None, denoiser: torch.nn.Module | None = None, scheduler=None):
        super().__init__(config or DiffPoseTalkConfig(), space, audio_model_dir, asr_model_dir)
        c = self.config
        d = self.space.dim
        self.denoiser = denoiser if denoiser is not None else build_denoiser(
            c.denoiser, motion_dim=d, audio_dim=self.audio_encoder.dim, style_dim=c.style_dim, d_model=c.d_model,
            n_layers=c.n_layers, n_heads=c.n_heads, ff_mult=c.ff_mult, dropout=c.dropout, n_prev=c.n_prev_motions,
            causal=c.causal, align=c.align_mask)
        self.style_encoder = StyleEncoder(d, c.style_dim, c.style_layers, c.style_heads, dropout=c.dropout)
        if c.p_drop_blocks and len(c.p_drop_blocks) != len(self._block_dims()):
            raise FacemotionError(f"p_drop_blocks has {len(c.p_drop_blocks)} probabilities for "
                                  f"{len(self._block_dims())} audio encoder blocks")
        self.scheduler = scheduler if scheduler is not None else self._scheduler("ddpm")
        self.phase = "denoiser"
        num_vertices = int(self.space.expression_vertices(torch.zeros(1, d)).shape[-2])
        pick = torch.randperm(num_vertices, generator=torch.Generator().manual_seed(0))[:c.loss_vertices]
        up, lo = self.space.lip_landmarks
        lips = torch.as_tensor(self.space.lip_indices).cpu()
        lips = lips[torch.randperm(len(lips), generator=torch.Generator().manual_seed(1))[:c.loss_lip_vertices]]
        index = torch.unique(torch.cat([pick, lips, torch.tensor([up, lo])]))
        self.register_buffer("loss_index", index, persistent=False)
        self.register_buffer("loss_lips", torch.searchsorted(index, lips), persistent=False)
        self.register_buffer("loss_aperture", torch.searchsorted(index, torch.tensor([up, lo])), persistent=False)

    def loss_vertices(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-head-pose vertices ``[..., S, 3]`` (metres) of motion ``x [..., D]`` at the
        loss vertex subset ``loss_index`` (decoded only there when the space supports it)."""
        return self.space.expression_vertices(x, indices=self.loss_index)

    def _aperture(self, v: torch.Tensor) -> torch.Tensor:
        return lip_aperture(v, *self.loss_aperture)

    @property
    def default_sampling(self) -> dict:
        """``{"steps", "w_audio", "w_style", "scheduler"}`` used when ``sample`` gets None."""
        c = self.config
        return {"steps": c.steps, "w_audio": c.w_audio, "w_style": c.w_style, "scheduler": c.scheduler,
                "overlap": c.overlap, "crossfade": c.crossfade, "lip_closure": c.lip_closure}

    @property
    def train_frames(self) -> int:
        """Frames per training sample: 2·T_w (two-window strategy, §3.3.2)."""
        return 2 * self.config.window

    def window_boundaries(self, num_frames: int, overlap: int | None = None,
                          crossfade: bool | None = None) -> tuple[list[int], int]:
        """Where :meth:`sample`'s windows hand over, for the seam metric
        (:func:`facemotion.metrics.motion.seam_ratio`).

        Returns:
            (the first frame of ``num_frames`` to which each window after the first contributes,
            the number of frames from there that the hand-over spans: 2, plus the ``overlap``
            when the windows are cross-faded).
        """
        ds = self.default_sampling
        overlap = ds["overlap"] if overlap is None else overlap
        crossfade = ds["crossfade"] if crossfade is None else crossfade
        starts = window_boundaries(num_frames, self.config.window, overlap)
        if crossfade:
            return starts, overlap + 2
        return [b + overlap for b in starts], 2

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def encode_style(self, motion: torch.Tensor) -> torch.Tensor:
        """Style vector s (eq. 8) of a reference motion clip.

        The clip is cut into T_w-frame chunks (the training length); their embeddings are
        averaged, weighted by chunk length.

        Args:
            motion: ``[T, D]`` face-space motion (not normalised), T ≥ 1.
        Returns:
            ``[d_s]``.
        """
        w = self.config.window
        x = self.normalise(motion.to(self.motion_mean))
        chunks = list(torch.split(x, w))
        valid = torch.zeros(len(chunks), w, dtype=torch.bool, device=x.device)
        for i, ch in enumerate(chunks):
            valid[i, :len(ch)] = True
        batch = torch.nn.utils.rnn.pad_sequence(chunks, batch_first=True)
        batch = torch.nn.functional.pad(batch, (0, 0, 0, w - batch.shape[1]))
        s = self.style_encoder(batch, valid)
        weights = valid.sum(1, keepdim=True).to(s.dtype)
        return (s * weights).sum(0) / weights.sum()

    @torch.no_grad()
    def sample(self, features: torch.Tensor, num_samples: int = 1, style: torch.Tensor | None = None,
               steps: int | None = None, w_audio: float | None = None, w_style: float | None = None,
               generator: torch.Generator | list[torch.Generator] | None = None, scheduler: str | None = None,
               overlap: int | None = None, crossfade: bool | None = None,
               shape: torch.Tensor | None = None, lip_closure: float | None = None) -> torch.Tensor:
        """Generate motion for a whole utterance (autoregressive windows, eq. 10 guidance).

        All ``num_samples`` and the guidance branches of each step run in one batched forward.

        Args:
            features: audio features ``[T, C]`` from ``audio_features`` (not normalised).
            num_samples: S independent samples.
            style: s ``[d_s]`` from ``encode_style``, or None (∅: the style term of eq. 10 vanishes).
            steps, w_audio, w_style, scheduler: override ``default_sampling``
                (scheduler: "ddpm", "ddim" or "dpmsolver").
            generator: torch RNG (same seed → same result), or a list of S generators, one per
                sample (sample i then depends only on ``generator[i]``, not on the batch).
            overlap, crossfade: how windows hand over (:func:`facemotion.diffusion.windows.
                autoregressive_windows`; default ``default_sampling``).
            shape: β ``[shape_dim]`` of the sequence (models with ``shape_dim`` > 0), or None.
            lip_closure: threshold on the /p b m/ evidence of the features
                (:meth:`~facemotion.recipes.base.Recipe.bilabial_track`) above which the lips are
                shut; 0 for none (default ``default_sampling``). At every step the predicted
                x_0 gets the data engine's closure (:func:`facemotion.face.lips.close_lips`)
                there, eased over ~50 ms around, so the network shapes the frames around each
                closure and the result holds it; ARKit blendshape spaces only. An addition to
                the paper (reference control by overwriting components during sampling, as
                DF-3DFace §3.6 holds its references).
        Returns:
            ``[S, T, D]`` face-space motion (de-normalised).
        Raises:
            FacemotionError: ``overlap`` leaves no room for the previous frames; ``lip_closure``
                for a space without ARKit mouth channels or features without Whisper's phones.
        """
        c, ds = self.config, self.default_sampling
        steps = steps or ds["steps"]
        overlap = ds["overlap"] if overlap is None else overlap
        crossfade = ds["crossfade"] if crossfade is None else crossfade
        if not 0 <= overlap <= c.window - c.n_prev_motions:
            raise FacemotionError(f"overlap must be in [0, {c.window - c.n_prev_motions}] (window - "
                                  f"n_prev_motions), got {overlap}")
        w_audio = ds["w_audio"] if w_audio is None else w_audio
        w_style = (ds["w_style"] if w_style is None else w_style) if style is not None else 0.0
        sched = self._scheduler(scheduler or ds["scheduler"])
        dev = self.motion_mean.device
        first_gen = generator[0] if isinstance(generator, (list, tuple)) else generator  # one per sample, or one
        gen_dev = first_gen.device if first_gen is not None else dev
        feats = self.normalise_audio(features.to(dev))[None].expand(num_samples, -1, -1)
        tp, tw, d = c.n_prev_motions, c.window, self.space.dim
        cond_style = None if style is None else style.to(dev)[None].expand(num_samples, -1)
        close = self._lip_closure(features, ds["lip_closure"] if lip_closure is None else lip_closure)

        def sample_window(start, valid_frames, prev, known):
            valid = torch.ones(num_samples, tp + tw, dtype=torch.bool, device=dev)
            valid[:, tp + valid_frames:] = False
            cond = {"audio": window_slice(feats, start, tw, tp), "valid": valid}
            if cond_style is not None:
                cond["style"] = cond_style
            if prev is not None:
                cond["prev"] = prev
            if shape is not None:
                cond["shape"] = shape.to(dev)[None].expand(num_samples, -1)

            def denoise(x, t):
                out = guided_output(self.denoiser, x.to(dev), t.to(dev), cond, BRANCHES, [w_audio, w_style])[:, tp:]
                return (out if close is None else close(out, start)).to(gen_dev)
            data = mask = None
            if known is not None:
                data = torch.zeros(num_samples, tw, d, device=gen_dev)
                data[:, :known.shape[1]] = known.to(gen_dev)
                mask = torch.zeros(1, tw, 1, dtype=torch.bool, device=gen_dev)
                mask[:, :known.shape[1]] = True
            return sample_loop(sched, denoise, (num_samples, tw, d), steps, generator, gen_dev,
                               condition_data=data, condition_mask=mask).to(dev)

        x = autoregressive_windows(sample_window, features.shape[0], tw, tp, overlap, crossfade)
        return self.denormalise(x)

    def _lip_closure(self, features: torch.Tensor, threshold: float):
        """``close(x0 [S, T_w, D] normalised, start frame) -> x0`` with the lips shut where the
        features' /p b m/ evidence reaches ``threshold`` (see ``sample``), or None for 0."""
        if not threshold:
            return None
        names = list(self.space.names)
        track = self.bilabial_track(features)
        if "jawOpen" not in names or "mouthClose" not in names:
            raise FacemotionError("lip_closure needs ARKit mouth channels (jawOpen, mouthClose); "
                                  f"the {type(self.space).__name__} has none")
        if track is None:
            raise FacemotionError("lip_closure needs Whisper's phones among the audio features "
                                  "(a 'phonetic' encoder with search 'asr')")
        closure, hold = closure_from_track(track, self.fps, threshold)

        def close(x0: torch.Tensor, start: int) -> torch.Tensor:
            n = min(x0.shape[1], len(closure) - start)
            if n <= 0 or not closure[start:start + n].any():
                return x0
            motion = self.denormalise(x0).float().cpu().numpy()
            for m in motion:
                m[:n] = close_lips(m[:n], names, closure[start:start + n], hold[start:start + n])
            return self.normalise(torch.from_numpy(motion).to(x0))

        return close

    # ------------------------------------------------------------------ training
    def set_phase(self, step: int) -> str:
        """Training phase at optimizer step ``step``: ``"style"`` (NT-Xent pre-training of the
        style encoder, first ``style_steps`` steps) or ``"denoiser"`` (style encoder frozen).
        Sets ``requires_grad`` accordingly; returns the phase."""
        self.phase = "style" if step < self.config.style_steps else "denoiser"
        self.style_encoder.requires_grad_(self.phase == "style")
        self.denoiser.requires_grad_(self.phase == "denoiser")
        return self.phase

    def untrained_parts(self) -> list[str]:
        """``["style encoder (style_steps 0)"]`` when the config skips the NT-Xent phase."""
        return ["style encoder (style_steps 0)"] if self.config.style_steps <= 0 else []

    def phase_start(self, step: int) -> int:
        """Step at which the phase containing ``step`` began (for warm-up)."""
        return 0 if step < self.config.style_steps else self.config.style_steps

    def _prepare(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        audio = self.normalise_audio(batch["audio"])
        x = self.normalise(batch["motion"])
        length = torch.as_tensor(batch["length"], device=x.device)
        valid = torch.arange(x.shape[1], device=x.device)[None] < length[:, None]
        return audio, x, valid

    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one batch of 2·T_w windows in the current phase (see ``set_phase``).

        Args:
            batch: ``audio [B, 2T_w, C]``, ``motion [B, 2T_w, D]`` (face space), ``length [B]``,
                and ``shape [B, shape_dim]`` for a model with ``shape_dim`` > 0.
        Returns:
            (scalar loss, dict of named loss terms for logging).
        """
        audio, x, valid = self._prepare(batch)
        if self.phase == "style":
            return self._style_loss(x, valid)
        return self._denoiser_loss(self._drop_blocks(audio), x, valid, batch.get("shape"))

    def _drop_blocks(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio [B, T, C]`` (normalised) with each joined encoder's block zeroed for a sample with
        probability ``config.p_drop_blocks[i]`` (independently per sample and block)."""
        p = self.config.p_drop_blocks
        if not p:
            return audio
        keep = [(torch.rand(audio.shape[0], 1, 1, device=audio.device) >= pi).to(audio.dtype).expand(-1, -1, dim)
                for pi, dim in zip(p, self._block_dims())]
        return audio * torch.cat(keep, -1)

    def _block_dims(self) -> list[int]:
        """Feature sizes of the joined encoders (one block for an encoder that joins none)."""
        return [e.dim for e in getattr(self.audio_encoder, "encoders", [self.audio_encoder])]

    def _style_loss(self, x, valid):
        """NT-Xent (eq. 9) between the two adjacent T_w halves of each sample."""
        tw = self.config.window
        self.style_encoder.train(self.training)
        keep = valid[:, tw:].any(1)
        s_a = self.style_encoder(x[keep, :tw], valid[keep, :tw])
        s_b = self.style_encoder(x[keep, tw:], valid[keep, tw:])
        loss = losses.nt_xent(s_a, s_b, self.config.nt_xent_tau)
        return loss, {"nt_xent": loss.detach()}

    def _denoiser_loss(self, audio, x, valid, shape=None):
        """Two-window strategy (§3.3.2) with random truncation and condition dropout."""
        c = self.config
        tp, tw, b, dev = c.n_prev_motions, c.window, x.shape[0], x.device
        if c.p_truncate > 0:
            cut = torch.randint(1, 2 * tw + 1, (b,), device=dev)
            cut = torch.where(torch.rand(b, device=dev) < c.p_truncate, cut, torch.full_like(cut, 2 * tw))
            valid = valid & (torch.arange(2 * tw, device=dev)[None] < cut[:, None])
        has_b = valid[:, tw:].any(1)
        self.style_encoder.eval()
        with torch.no_grad():
            s_a = self.style_encoder(x[:, :tw], valid[:, :tw])
            s_b = self.style_encoder(x[:, tw:], valid[:, tw:] | ~has_b[:, None])
        ones = torch.ones(b, tp, dtype=torch.bool, device=dev)
        # window 1: start features, style of window b; window 2: previous frames, style of window a.
        x0 = torch.cat([x[:, :tw], x[:, tw:]])
        prev = torch.cat([torch.zeros_like(x[:, :tp]), x[:, tw - tp:tw]])
        aud = torch.cat([torch.cat([torch.zeros_like(audio[:, :tp]), audio[:, :tw]], 1), audio[:, tw - tp:]])
        style = torch.cat([s_b, s_a])
        first = torch.cat([torch.ones(b, dtype=torch.bool, device=dev), torch.zeros(b, dtype=torch.bool, device=dev)])
        tok_valid = torch.cat([torch.cat([ones, valid[:, :tw]], 1), valid[:, tw - tp:]])
        loss_mask = torch.cat([torch.cat([~ones, valid[:, :tw]], 1), valid[:, tw - tp:]]).float()
        n = 2 * b
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (n,), device=dev)
        noise = torch.randn_like(x0)
        x_t = add_noise(self.scheduler, x0, noise, t)
        u = torch.rand(n, device=dev)
        drop_audio = u < c.p_drop_all
        drop_style = (u < c.p_drop_all + c.p_drop_style) | ~torch.cat([has_b, torch.ones_like(has_b)])
        cond = {"prev": prev, "audio": aud, "style": style, "first": first, "valid": tok_valid}
        if shape is not None:
            cond["shape"] = torch.cat([shape, shape]).to(x.dtype)
        out = self.denoiser(x_t, t, cond, {"audio": drop_audio, "style": drop_style})
        target = torch.cat([prev, x0], 1)
        pred = torch.cat([out[:, :tp], predicted_x0(self.scheduler, out[:, tp:], x_t, t)], 1)
        simple_target = torch.cat([prev, noise], 1) if self.scheduler.config.prediction_type == "epsilon" \
            else target
        terms = {"simple": losses.simple_loss(out, simple_target, loss_mask)}
        terms.update(self.geometry_losses(self.denormalise(pred), self.denormalise(target), loss_mask,
                                          ~first & valid[:, tw:tw + 3].all(1).repeat(2)))
        weights = {k: getattr(c, "w_" + k) for k in terms}
        loss = sum(weights[k] * v for k, v in terms.items())
        return loss, {k: v.detach() for k, v in terms.items()}

    def geometry_losses(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                        seam: torch.Tensor) -> dict[str, torch.Tensor]:
        """Vertex, velocity, smooth, lip and closure losses (eqs. 3–5) on zero-head-pose
        vertices and head losses (eqs. 11–14) on head angles.

        Args:
            pred, target: face-space motion ``[B, T_p + T_w, D]`` (de-normalised).
            mask: ``[B, T_p + T_w]`` float frame mask.
            seam: ``[B]`` bool, samples with a real previous window (for L_head_trans).
        Returns:
            dict of unweighted terms: vert, vel, smooth, lip, closure, head_ang, head_vel,
            head_smooth, head_trans.
        """
        space, tp, lips = self.space, self.config.n_prev_motions, self.loss_lips
        v_hat, v = self.loss_vertices(pred), self.loss_vertices(target)
        p_hat, p = space.head_pose(pred), space.head_pose(target)
        return {
            "vert": losses.vertex_loss(v_hat, v, mask),
            "vel": losses.velocity_loss(v_hat, v, mask),
            "smooth": losses.smooth_loss(v_hat, mask),
            "lip": losses.vertex_loss(v_hat[:, :, lips], v[:, :, lips], mask),
            "closure": losses.closure_loss(self._aperture(v_hat), self._aperture(v), mask,
                                           self.config.closure_sigma),
            "head_ang": losses.simple_loss(p_hat, p, mask),
            "head_vel": losses.velocity_loss(p_hat, p, mask),
            "head_smooth": losses.smooth_loss(p_hat, mask),
            "head_trans": losses.transition_loss(p_hat, p, tp, seam.float()),
        }

    @torch.no_grad()
    def validation_metrics(self, batch: dict, generator: torch.Generator) -> dict[str, float]:
        """Sample the first window of each validation clip (style from the clip itself) and
        compare with the ground truth on zero-head-pose vertices.

        Returns:
            ``lve_mm`` (lip vertex error, max over lip vertices, mean over frames, mm),
            ``mod_mm`` (mean |aperture − GT aperture|, mm), ``closure`` (fraction of GT frames
            with aperture < 2 mm where the sample's aperture is also < 2 mm; NaN if none),
            ``head_deg`` (mean absolute head angle error, degrees).
        """
        tw = self.config.window
        out = {"lve_mm": [], "mod_mm": [], "closure": [], "head_deg": []}
        for audio, motion, length in zip(batch["audio"], batch["motion"], batch["length"]):
            n = int(min(int(length), tw))
            gt = motion[:n][None]
            style = self.encode_style(motion[:n])
            pred = self.sample(audio[:n], style=style, steps=10, scheduler="ddim", generator=generator)
            v_hat, v = self.loss_vertices(pred), self.loss_vertices(gt)
            lips = self.loss_lips
            out["lve_mm"].append(1e3 * lip_vertex_error(v_hat, v, lips).mean())
            a_hat, a = self._aperture(v_hat), self._aperture(v)
            out["mod_mm"].append(1e3 * (a_hat - a).abs().mean())
            closed = a < 0.002
            if closed.any():
                out["closure"].append((a_hat[closed] < 0.002).float().mean())
            out["head_deg"].append((self.space.head_pose(pred) - self.space.head_pose(gt)).abs().mean().rad2deg())
        return {k: float(torch.stack(v).mean()) if v else float("nan") for k, v in out.items()}


__all__ = ["DiffPoseTalk", "DiffPoseTalkConfig"]
