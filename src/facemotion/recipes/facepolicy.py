"""3DFacePolicy (Sha et al. 2024): speech → 3D facial motion by a diffusion policy that acts frame
by frame, and streams.

Actions (§3.1, eq. 2): the per-frame displacement ``a^n = x^{n+1} − x^n`` of the face-space state
x (in a :class:`~facemotion.face.space.VertexSpace` the per-vertex offsets from the template, or
their PCA coefficients; the paper's x are FLAME vertices). **Head pose is part of the action**: a
space with head pose carries pitch, yaw, roll (radians) as its last 3 channels, so their per-frame
increments are the last 3 action channels and are integrated like the vertices
(``x^n = x^1 + Σ a``), one action vector per frame.

Observations (§3.2.2): the last ``n_obs_steps`` states through the light state encoder (linear +
conv + max-pool → 512) and the audio features from the first observed frame on, through the
audio encoder (→ 512), concatenated to the 1024-wide global condition of a conditional 1D U-Net
with FiLM (:class:`~facemotion.models.ConditionalUnet1D`, ``DENOISERS["unet1d"]``) that predicts
ε for ``horizon`` actions (eq. 3–4); DDIM samples them; ``n_action_steps`` of them are executed.

Frame alignment (diffusion policy's): at frame t the policy observes frames ``t − N_obs .. t − 1``
and predicts actions ``a^{t−N_obs} .. a^{t−N_obs+H−1}``; the ``N_act`` from ``a^{t−1}`` on are
executed, giving frames ``t .. t + N_act − 1``. The audio of frames ``t − N_obs .. t +
audio_lookahead − 1`` is observed: ``audio_lookahead`` = H + 1 − N_obs (default) covers every
frame the horizon's actions lead into, i.e. one frame beyond the last executed one with the paper's
H = 4, N_obs = N_act = 2 (the paper does not say how far its audio observation reaches; with
``audio_lookahead`` 0 it sees past audio only, and the mouth cannot lead the sound).

Sequence sampler (§3.2.1): training items are H + 1 frames (H actions, the first N_obs frames
observed), drawn by :class:`~facemotion.data.windows.MotionWindows` from the whole corpus with
diffusion policy's edge padding (``train_padding``: N_obs − 1 frames before a clip, N_act − 1
after it, repeating the edge frame, so the first actions of a clip start from rest and the last
ones end in it).

Drift control (issue 16, 4; the paper does not treat it): integrated actions drift. With
``drift_control = "observe"`` (default) the state observations are the absolute displacements from
the neutral face (the face-space state itself), so the policy sees how far the face is from rest
and steers back; ``"none"`` observes the states relative to the latest one (velocities only: the
drift is invisible to the policy), for comparison.

Streaming (:meth:`FacePolicy.stream`): feature chunks in, frames out; each step needs the audio
up to ``audio_lookahead − N_act`` frames past the frames it emits, so the latency is bounded by
that lookahead plus one chunk. Offline (:meth:`FacePolicy.sample`) runs the same steps through
:func:`~facemotion.diffusion.windows.receding_horizon`; both draw the same noise from the same
per-sample generators, so they agree to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from facemotion.diffusion.schedulers import add_noise, sample_loop
from facemotion.diffusion.windows import receding_horizon
from facemotion.errors import FacemotionError
from facemotion.face.lips import lip_vertex_error
from facemotion.models import build_denoiser
from facemotion.recipes.base import DiffusionConfig, Recipe

DRIFT_CONTROLS = ("observe", "none")


@dataclass
class FacePolicyConfig(DiffusionConfig):
    """3DFacePolicy settings (paper values unless marked *).

    Space: any face space (the paper's: vertices, e.g. ``{"name": "vertex", "template":
    "mesh.npz", "head_pose": true}``). Sequence sampler (§3.2.1): ``horizon`` H = 4,
    ``n_obs_steps`` N_obs = 2, ``n_action_steps`` N_act = 2 (frames), ``audio_lookahead``* frames
    of audio past the observations (-1: H + 1 − N_obs, see the module doc).
    Encoders (§3.2.2, §4.2): ``obs_dim`` 512 each (1024 together), ``state_hidden``*,
    ``audio_hidden``*. U-Net (diffusion policy's): ``down_dims``* (256, 512: H = 4 halves once),
    ``step_embed_dim``* 128, ``kernel_size``* 3, ``n_groups``* 8.
    Diffusion (§3.2.3): ``prediction_type`` ``"sample"`` — the paper's implementation details
    (§4.2: "sample prediction following [28]", DP3) over the ε of its eq. 3–4, which the trainer also
    offers (``"epsilon"``); ε prediction on the cosine schedule divides the network's error by
    √ᾱ ≈ 0 near t = N and, without diffusion policy's clipping to the [-1, 1] action range, its
    actions explode — ``num_train_timesteps``* 100 and the cosine schedule (diffusion policy's),
    DDIM with ``steps``* 10 (DP3's).
    Training (§4.2): AdamW at ``lr`` 1e-4 (``optimizer`` "adamw", ``weight_decay``* 1e-6 as diffusion
    policy); ``batch_size``* 256 items of H + 1 frames (the paper trains with batch 1 for 50 epochs).
    ``drift_control``*: ``"observe"`` or ``"none"`` (module doc); ``drift_leak``* λ ∈ [0, 1): at
    generation each integrated frame is pulled back towards the neutral face,
    ``x^{n+1} = x^n + a^n − λ (x^n − x_neutral)`` (0: eq. 2 exactly). ``std_floor`` 1e-5: per-frame
    actions in metres are small. ``window``, ``w_audio`` and the transformer sizes of
    :class:`~facemotion.recipes.base.DiffusionConfig` are not used.
    """

    denoiser: str = "unet1d"
    horizon: int = 4
    n_obs_steps: int = 2
    n_action_steps: int = 2
    audio_lookahead: int = -1
    obs_dim: int = 512
    state_hidden: int = 256
    audio_hidden: int = 128
    down_dims: list = field(default_factory=lambda: [256, 512])
    step_embed_dim: int = 128
    kernel_size: int = 3
    n_groups: int = 8
    num_train_timesteps: int = 100
    prediction_type: str = "sample"
    scheduler: str = "ddim"
    steps: int = 10
    lr: float = 1e-4
    optimizer: str = "adamw"
    weight_decay: float = 1e-6
    batch_size: int = 256
    drift_control: str = "observe"
    drift_leak: float = 0.0
    std_floor: float = 1e-5


class FacePolicy(Recipe):
    """The 3DFacePolicy recipe (see module doc).

    ``FacePolicy(config, space=None, denoiser=None, scheduler=None)``: the face space, the denoiser
    (``denoiser(a_k [B, H, D], k [B], {"state" [B, N_obs, D], "audio" [B, L, C]} or {"global"}, drop)``
    with an ``encode_obs(cond)`` method, :class:`~facemotion.models.ConditionalUnet1D`'s layout) and
    the training noise scheduler can be passed in built; otherwise built from ``config``.

    Attributes: ``space``, ``fps``, ``audio_encoder``, ``denoiser``, ``scheduler`` (training
    noiser, DDPM, ε), ``audio_frames`` L = N_obs + ``audio_lookahead``, ``normalizer`` keys
    ``motion`` (states), ``audio`` and ``action`` ``[D]``.

    Raises:
        FacemotionError: sizes that do not fit (``n_obs_steps − 1 + n_action_steps > horizon``, a
            lookahead outside ``[0, H + 1 − N_obs]``), an unknown ``drift_control``.
    """

    name = "facepolicy"
    Config = FacePolicyConfig

    def __init__(self, config: FacePolicyConfig | None = None, space=None, audio_model_dir=None,
                 asr_model_dir=None, denoiser: torch.nn.Module | None = None, scheduler=None):
        super().__init__(config or FacePolicyConfig(), space, audio_model_dir, asr_model_dir)
        c = self.config
        h, n_obs, n_act = c.horizon, c.n_obs_steps, c.n_action_steps
        if n_obs < 1 or n_act < 1 or n_obs - 1 + n_act > h:
            raise FacemotionError(f"facepolicy: horizon {h} cannot hold n_obs_steps {n_obs} - 1 + "
                                  f"n_action_steps {n_act}")
        self.audio_lookahead = h + 1 - n_obs if c.audio_lookahead < 0 else int(c.audio_lookahead)
        if not 0 <= self.audio_lookahead <= h + 1 - n_obs:
            raise FacemotionError(f"facepolicy: audio_lookahead must be in [0, {h + 1 - n_obs}], "
                                  f"got {c.audio_lookahead}")
        if c.drift_control not in DRIFT_CONTROLS:
            raise FacemotionError(f"facepolicy: drift_control {c.drift_control!r}: choose {', '.join(DRIFT_CONTROLS)}")
        self.audio_frames = n_obs + self.audio_lookahead
        d = self.space.dim
        self.normalizer.add("action", d)
        self.denoiser = denoiser if denoiser is not None else build_denoiser(
            c.denoiser, action_dim=d, audio_dim=self.audio_encoder.dim, audio_frames=self.audio_frames,
            obs_dim=c.obs_dim, down_dims=tuple(c.down_dims), step_embed_dim=c.step_embed_dim,
            kernel_size=c.kernel_size, n_groups=c.n_groups, state_hidden=c.state_hidden,
            audio_hidden=c.audio_hidden)
        self.scheduler = scheduler if scheduler is not None else self._scheduler("ddpm")
        self.phase = "denoiser"

    # ------------------------------------------------------------------ settings
    @property
    def default_sampling(self) -> dict:
        """``{"steps", "scheduler"}`` used when :meth:`sample` gets None."""
        return {"steps": self.config.steps, "scheduler": self.config.scheduler}

    @property
    def train_frames(self) -> int:
        """Frames per training item: H + 1 (H actions need H + 1 states)."""
        return self.config.horizon + 1

    @property
    def train_padding(self) -> tuple[int, int]:
        """Diffusion policy's sequence-sampler padding (frames before, after a clip):
        ``(n_obs_steps − 1, n_action_steps − 1)``, read by the shared trainer."""
        return self.config.n_obs_steps - 1, self.config.n_action_steps - 1

    def window_boundaries(self, num_frames: int) -> tuple[list[int], int]:
        """Where the receding horizon hands over (every ``n_action_steps`` frames) and the frames
        each hand-over spans (2), for the seam metric."""
        step = self.config.n_action_steps
        return list(range(step, num_frames, step)), 2

    def set_phase(self, step: int) -> str:
        """One phase: ``"denoiser"``."""
        return self.phase

    def phase_start(self, step: int) -> int:
        """Step at which the phase began (0: one phase)."""
        return 0

    def encode_style(self, motion: torch.Tensor):
        """3DFacePolicy has no speaking-style input. Raises FacemotionError."""
        raise FacemotionError("facepolicy has no speaking-style input (no --style / --style-clip)")

    @staticmethod
    def derived_statistics(motion: np.ndarray) -> dict[str, np.ndarray]:
        """``{"action": a [T − 1, D]}``, a^n = x^{n+1} − x^n (eq. 2) of a clip's motion ``[T, D]``:
        the shared trainer fits the ``action`` normaliser with it."""
        motion = np.asarray(motion, np.float32)
        return {"action": motion[1:] - motion[:-1]}

    def actions(self, motion: torch.Tensor) -> torch.Tensor:
        """a^n = x^{n+1} − x^n (eq. 2): face-space motion ``[..., T, D]`` → ``[..., T − 1, D]``."""
        return motion[..., 1:, :] - motion[..., :-1, :]

    def neutral_state(self) -> torch.Tensor:
        """The face-space state of the neutral face ``[D]`` (zero displacement, zero head pose): 0,
        or in a PCA vertex space the coefficients of zero displacement."""
        d = self.space.dim
        x = self.normalizer.mean("motion").new_zeros(d)
        if getattr(self.space, "pca_components", 0):
            k = self.space.pca_components
            x[:k] = -(self.space.pca_basis @ self.space.pca_mean)
        return x

    def observe(self, states: torch.Tensor) -> torch.Tensor:
        """The state observation: ``[B, N_obs, D]`` face space → normalised ``[B, N_obs, D]``.
        ``drift_control "observe"``: the states themselves (displacement from the neutral face);
        ``"none"``: relative to the latest state, in action units."""
        if self.config.drift_control == "observe":
            return self.normalise(states)
        return (states - states[:, -1:]) / self.normalizer.std("action")

    # ------------------------------------------------------------------ training
    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Denoising loss (eq. 4; with sample prediction the target is a_0 instead of ε) on
        sequence-sampler items.

        Args:
            batch: ``motion [B, H + 1, D]`` face-space states x^s .. x^{s+H}, ``audio [B, H + 1, C]``
                features of the same frames, ``length [B]`` real frames (all H + 1 with padding).
        Returns:
            (MSE(target, f_θ(ᾱ_k a_0 + β̄_k ε, k, x, s)) over the real actions, target a_0 or ε;
            ``{"eps": same}``).
        Raises:
            ValueError: fewer than H + 1 frames.
        """
        c = self.config
        motion = batch["motion"].float()
        if motion.shape[1] < c.horizon + 1:
            raise ValueError(f"facepolicy: training items need {c.horizon + 1} frames, got {motion.shape[1]}")
        motion = motion[:, :c.horizon + 1]
        audio = self.normalise_audio(batch["audio"][:, :self.audio_frames].to(motion))
        a0 = self.normalizer.normalize("action", self.actions(motion))
        cond = {"state": self.observe(motion[:, :c.n_obs_steps]), "audio": audio}
        bsz, dev = a0.shape[0], a0.device
        k = torch.randint(0, self.scheduler.config.num_train_timesteps, (bsz,), device=dev)
        noise = torch.randn_like(a0)
        out = self.denoiser(add_noise(self.scheduler, a0, noise, k), k, cond)
        target = noise if self.scheduler.config.prediction_type == "epsilon" else a0
        length = torch.as_tensor(batch.get("length", motion.shape[1]), device=dev).reshape(-1)
        valid = (torch.arange(c.horizon, device=dev)[None] + 1 < length[:, None]).float()
        err = ((out - target) ** 2).mean(-1)
        loss = (err * valid).sum() / valid.sum().clamp_min(1)
        return loss, {"eps": loss.detach()}

    @torch.no_grad()
    def validation_metrics(self, batch: dict, generator: torch.Generator) -> dict[str, float]:
        """One policy step per validation item from its true observations; the executed frames
        against the truth.

        Returns:
            ``lve_mm``: mean lip-vertex distance (mm) of the executed frames; ``action_mse``:
            squared error of the executed actions in normalised units.
        """
        c = self.config
        motion = batch["motion"].float()[:, :c.horizon + 1]
        audio = self.normalise_audio(batch["audio"][:, :self.audio_frames].float())
        n_obs, n_act = c.n_obs_steps, c.n_action_steps
        act = self._horizon(motion[:, :n_obs], audio, generator, c.steps, self._scheduler("ddim"))
        first = n_obs - 1
        pred = motion[:, n_obs - 1:n_obs] + act[:, first:first + n_act].cumsum(1)
        truth = motion[:, n_obs:n_obs + n_act]
        lips = torch.as_tensor(np.asarray(self.space.lip_indices), dtype=torch.long)
        v_hat = self.space.expression_vertices(pred, indices=lips)
        v = self.space.expression_vertices(truth, indices=lips)
        lve = 1e3 * lip_vertex_error(v_hat, v, torch.arange(v.shape[-2])).mean()
        mse = (self.normalizer.normalize("action", act[:, first:first + n_act])
               - self.normalizer.normalize("action", self.actions(motion)[:, first:first + n_act])).square().mean()
        return {"lve_mm": float(lve), "action_mse": float(mse)}

    # ------------------------------------------------------------------ inference
    def _horizon(self, states: torch.Tensor, audio: torch.Tensor, generator, steps: int, sched) -> torch.Tensor:
        """One policy decision (eq. 3, K = ``steps`` DDIM iterations).

        Args:
            states: ``[S, N_obs, D]`` face space; audio: ``[S, L, C]`` normalised features.
            generator: one generator or a list of S.
        Returns:
            actions ``[S, H, D]`` face space (de-normalised).
        """
        dev = states.device
        cond = {"global": self.denoiser.encode_obs({"state": self.observe(states), "audio": audio})}
        first = generator[0] if isinstance(generator, list) else generator
        gen_dev = first.device if first is not None else dev
        shape = (states.shape[0], self.config.horizon, self.space.dim)

        def denoise(x, k):
            return self.denoiser(x.to(dev), k.to(dev), cond).to(gen_dev)

        a = sample_loop(sched, denoise, shape, steps, generator, gen_dev).to(dev)
        return self.normalizer.unnormalize("action", a)

    def _policy(self, num_samples: int, steps, scheduler, generator, first) -> Callable:
        """The per-step function shared by :meth:`sample` and :meth:`stream`.

        Returns ``step(t, audio [L, C] normalised) -> [S, H, D]``: frame rows as
        :func:`~facemotion.diffusion.windows.receding_horizon` expects them (row N_obs − 1 + k is
        frame t + k, integrated from the last state by eq. 2); the function keeps the last N_obs
        executed states itself (starting from ``first`` repeated, diffusion policy's padding).
        """
        c = self.config
        steps = steps or c.steps
        sched = self._scheduler(scheduler or c.scheduler)
        gens = list(generator) if isinstance(generator, (list, tuple)) else generator
        if isinstance(gens, torch.Generator) and num_samples == 1:
            gens = [gens]
        if isinstance(gens, list) and len(gens) != num_samples:
            raise FacemotionError(f"{len(gens)} generators for {num_samples} samples")
        dev = self.normalizer.mean("motion").device
        start = self.neutral_state() if first is None else torch.as_tensor(np.asarray(first, np.float32), device=dev)
        if start.shape != (self.space.dim,):
            raise FacemotionError(f"first must be a face-space state [{self.space.dim}], got {tuple(start.shape)}")
        hist = {"x": start.to(dev)[None, None].expand(num_samples, c.n_obs_steps, -1)}
        n_obs, n_act = c.n_obs_steps, c.n_action_steps
        neutral = self.neutral_state().to(dev)

        def step(t: int, audio: torch.Tensor) -> torch.Tensor:
            states = hist["x"]
            act = self._horizon(states, audio.to(dev)[None].expand(num_samples, -1, -1), gens, steps, sched)
            if c.drift_leak > 0:  # x^{n+1} = x^n + a^n - λ (x^n - x_neutral), frame by frame
                x, rows = states[:, -1], []
                for a in act[:, n_obs - 1:].unbind(1):
                    x = x + a - c.drift_leak * (x - neutral)
                    rows.append(x)
                rows = torch.stack(rows, 1)
            else:
                rows = states[:, -1:] + act[:, n_obs - 1:].cumsum(1)         # frames t, t + 1, ... (eq. 2)
            out = torch.cat([states[:, 1:], rows], dim=1)[:, :c.horizon]
            hist["x"] = torch.cat([states, rows[:, :n_act]], dim=1)[:, -n_obs:]
            return out

        return step

    def _audio_window(self, feats: torch.Tensor, t: int, total: int) -> torch.Tensor:
        """Audio of frames ``t − N_obs .. t − N_obs + L − 1`` from normalised features ``[T', C]``
        (T' ≥ the last needed frame, or ``total`` = T' at the end of the audio), frames outside
        ``[0, total)`` repeating the first or last frame (as training pads)."""
        idx = torch.arange(t - self.config.n_obs_steps, t - self.config.n_obs_steps + self.audio_frames)
        return feats[idx.clamp(0, total - 1)]

    @torch.no_grad()
    def sample(self, features: torch.Tensor, num_samples: int = 1, steps: int | None = None,
               w_audio: float | None = None, generator: torch.Generator | list[torch.Generator] | None = None,
               scheduler: str | None = None, first=None, style=None, w_style=None) -> torch.Tensor:
        """Generate motion for an utterance of any length by receding horizon (diffusion policy):
        every ``n_action_steps`` frames one policy decision (eq. 3), integrated by eq. 2.

        Args:
            features: audio features ``[T, C]`` from ``audio_features`` (not normalised).
            num_samples: S.
            steps, scheduler: DDIM steps K and scheduler name (default ``default_sampling``).
            generator: a torch RNG, or a list of S (sample i then depends on ``generator[i]`` only).
            first: the first state x^1 ``[D]`` (face space); None: the neutral face.
            w_audio, style, w_style: accepted for :class:`facemotion.Animator`'s common call; no
                guidance (ignored) and no style (refused).
        Returns:
            motion ``[S, T, D]`` (face space).
        Raises:
            FacemotionError: a style, a wrong ``first`` or generator count.
        """
        if style is not None:
            self.encode_style(style)
        dev = self.normalizer.mean("motion").device
        feats = self.normalise_audio(torch.as_tensor(features, dtype=torch.float32, device=dev))
        total = feats.shape[0]
        step = self._policy(num_samples, steps, scheduler, generator, first)
        c = self.config
        return receding_horizon(lambda t, obs: step(t, self._audio_window(feats, t, total)), total, c.horizon,
                                c.n_obs_steps, c.n_action_steps)

    @property
    def lookahead_frames(self) -> int:
        """Frames of audio past the last emitted frame that a step needs:
        ``max(0, audio_lookahead − n_action_steps)`` (the streaming latency beyond one chunk)."""
        return max(0, self.audio_lookahead - self.config.n_action_steps)

    @torch.no_grad()
    def stream(self, feature_chunks: Iterable[torch.Tensor], num_samples: int = 1, steps: int | None = None,
               generator: torch.Generator | list[torch.Generator] | None = None, scheduler: str | None = None,
               first=None) -> Iterator[torch.Tensor]:
        """Streaming generation: consume audio-feature chunks as they arrive, yield motion frames
        as soon as the audio they need (past, plus :attr:`lookahead_frames`) has arrived.

        The steps, their audio and their noise draws are those of :meth:`sample` on the
        concatenated features (frames past the end repeat the last one, as there), so the
        concatenated output equals :meth:`sample`'s with the same generators, to float rounding.

        Args:
            feature_chunks: iterable of ``[T_i, C]`` feature chunks (not normalised; any sizes,
                empty ones allowed), in order.
            num_samples, steps, generator, scheduler, first: as :meth:`sample`.
        Yields:
            ``[S, k, D]`` face-space frames (k ≥ 1), in order; T frames in all for T feature frames.
        Raises:
            FacemotionError: as :meth:`sample`.
        """
        c = self.config
        dev = self.normalizer.mean("motion").device
        step = self._policy(num_samples, steps, scheduler, generator, first)
        feats = torch.zeros(0, self.audio_encoder.dim, device=dev)
        t = 0
        need = lambda t: t - c.n_obs_steps + self.audio_frames  # noqa: E731  audio frames a step at t needs
        for chunk in feature_chunks:
            chunk = torch.as_tensor(chunk, dtype=torch.float32, device=dev).reshape(-1, self.audio_encoder.dim)
            feats = torch.cat([feats, self.normalise_audio(chunk)])
            # a step also needs the frames it emits to exist (t + n_act ≤ T' keeps the last, short step for the end)
            while feats.shape[0] >= max(need(t), t + c.n_action_steps):
                out = step(t, self._audio_window(feats, t, feats.shape[0]))
                yield out[:, c.n_obs_steps - 1:c.n_obs_steps - 1 + c.n_action_steps]
                t += c.n_action_steps
        total = feats.shape[0]
        while t < total:
            out = step(t, self._audio_window(feats, t, total))
            first_row = c.n_obs_steps - 1
            yield out[:, first_row:first_row + min(c.n_action_steps, total - t)]
            t += c.n_action_steps


__all__ = ["FacePolicy", "FacePolicyConfig"]
