"""DF-3DFace (Park et al. 2023): speech → identity, facial motion and head pose, jointly, by diffusion.

Wires a face space with vertices, an audio encoder, :class:`~facemotion.models.JointEncoderDenoiser`
(a transformer encoder over ``[t, a_1..a_N, x_id, x_MP,1..N]`` tokens, x0 prediction, eq. 3–4),
masked audio conditioning with scale s (eq. 5–6) through :func:`~facemotion.diffusion.guidance.
guided_output`, the mesh–audio :class:`~facemotion.models.SyncExpert` (trained contrastively in a
first training phase, then frozen and used for L_sync, eq. 7), the lip and pose losses (eq. 8–9,
total eq. 10), and reference control (§3.6): any of identity, motion and pose given by the caller
is overwritten into the sample at every step (``sample_loop``'s ``condition_data`` /
``condition_mask``), the rest is generated.

Representations (§3.1) in facemotion's face spaces: x_MP ``[N, D]`` is the face-space motion
(expression, then head pose pitch/yaw/roll in radians as its last 3 channels when the space has
head pose); x_id ``[I]`` encodes the space's per-sequence shape input (its identity, ``[S]``
flattened):

- a :class:`~facemotion.face.space.VertexSpace` with an identity model (``identity_components``
  J > 0): the neutral-face offsets from the template (the paper's x_id ∈ R^{3V}, metres) as their
  J whitened coordinates in the PCA basis fitted from the training clips' neutral faces
  (:meth:`~facemotion.face.space.VertexSpace.identity_coefficients`; basis in the checkpoint),
  so the identity token is J wide instead of 3V (24255 numbers for the 8085-vertex face, a 3M
  parameter projection). A given identity is held exactly whether or not it lies in the span:
  its coordinates are overwritten into X at every step and its residual off the span is added
  back to the sampled offsets outside the diffusion;
- a vertex space without one: the offsets themselves, I = 3V (normalised with the
  ``identity`` statistics given to ``set_statistics``);
- :class:`~facemotion.face.space.BlendshapeSpace`: the built-in head's identity coefficients.

A training batch carries the shape input as ``shape [B, S]`` (or ``[B, V, 3]``;
:class:`~facemotion.data.windows.MotionWindows` reads each clip's); a batch without it trains on
the template face (zeros).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facemotion import losses
from facemotion.diffusion.guidance import guided_output
from facemotion.diffusion.schedulers import add_noise, predicted_x0, sample_loop
from facemotion.diffusion.windows import overlapped_windows, window_boundaries, window_slice
from facemotion.errors import DataError, FacemotionError
from facemotion.face.lips import lip_vertex_error
from facemotion.models import SyncExpert, build_denoiser
from facemotion.recipes.base import DiffusionConfig, Recipe

# Guidance branches of eq. 5–6: G(t, m(a), X_t), then G(t, a, X_t).
BRANCHES = ({"audio"}, set())


@dataclass
class DF3DFaceConfig(DiffusionConfig):
    """DF-3DFace settings. The paper's main text gives the structure and the 10 % masking; the
    sizes, loss weights and sync-expert settings are in its (unavailable) supplement, so the
    values here are this project's choices (marked *).

    Space and data: ``space`` (a face space with vertices; the paper's is FLAME vertices, e.g.
    ``{"name": "vertex", "template": "mesh.npz", "pca_components": 50, "identity_components": 32,
    "head_pose": true}``), ``identity_dim`` I (-1: from the space, the J coordinates of a vertex
    space's identity model, else 3V, the rig's identity modes for the blendshape space; 0: no
    identity token, the paper's "w/o x_id" ablation), ``fps``, ``audio_encoder``
    (the paper uses HuBERT; default here phone-loop phones + log-mel + recognised-word phones,
    the best encoder that runs offline without downloaded weights), ``window`` frames per
    training clip and per sampling window*, long audio as overlapped windows sampled in one
    batch and cross-faded over ``overlap`` frames* (the identity of the first window is held
    in the others, so one utterance has one face).
    Denoiser*: ``denoiser`` (name in ``facemotion.models.DENOISERS``), ``d_model`` 128,
    ``n_layers`` 4, ``n_heads`` 4, ``ff_mult`` 4, ``dropout`` 0.
    Diffusion: ``num_train_timesteps`` N = 500*, cosine schedule*, ``prediction_type``
    ``"sample"`` (x0, eq. 3).
    Masked conditioning (§3.3): the audio of ``p_mask_audio`` = 10 % of the training samples is
    masked by m, which hides a random ``audio_mask_ratio``* of its frames behind a learned mask
    embedding; at inference ``w_audio`` is s of eq. 6 (the paper's experiments: s = 1), m hides
    a fixed random pattern of frames (seed 0).
    Sync expert (§3.4)*: ``sync_window`` n = 5 frames (Wav2Lip's 0.2 s), ``sync_hidden``,
    ``sync_dim``, ``sync_tau`` (InfoNCE temperature), ``sync_windows`` windows drawn per clip,
    trained for the first ``sync_steps`` steps, then frozen. ``loss_lip_vertices``: lip vertices
    used by L_lip and the expert (a fixed random subset of the space's lips).
    Loss weights (eq. 10)*: ``w_face`` (L_face, normalised units), ``w_sync`` (cosine
    distance), ``w_lip`` 1e6 (m², so 1 mm² of lip error weighs 1), ``w_pose`` 1e3 (radians²
    per frame²). ``std_floor`` 1e-4: vertex offsets are in metres.
    Sampling: ``scheduler``, ``steps``, ``w_audio``.
    """

    identity_dim: int = -1
    denoiser: str = "transformer_encoder"
    overlap: int = 10
    p_mask_audio: float = 0.1
    audio_mask_ratio: float = 0.5
    sync_window: int = 5
    sync_hidden: int = 64
    sync_dim: int = 64
    sync_tau: float = 0.1
    sync_windows: int = 4
    sync_steps: int = 300
    loss_lip_vertices: int = 128
    std_floor: float = 1e-4
    w_face: float = 1.0
    w_sync: float = 0.1
    w_lip: float = 1e6
    w_pose: float = 1e3


def identity_width(space, requested: int = -1) -> int:
    """Width I of x_id for ``space``: ``requested`` when ≥ 0, else for a vertex space the J
    coordinates of its identity model (``identity_components``) or, without one, 3V (neutral-face
    offsets, metres), or the number of identity modes of a space with a rig.

    Raises:
        DataError: ``requested`` is -1 and the space has neither (give ``identity_dim``).
    """
    if requested >= 0:
        return int(requested)
    if getattr(space, "name", "") == "vertex":
        return int(space.identity_components) or 3 * int(space.num_vertices)
    basis = getattr(getattr(space, "rig", None), "identity_basis", None)
    if basis is not None:
        return int(np.shape(basis)[0])
    raise DataError(f"df3dface: cannot tell the identity size of {type(space).__name__}; set identity_dim")


class DF3DFace(Recipe):
    """The DF-3DFace recipe (see module doc).

    ``DF3DFace(config, space=None, denoiser=None, scheduler=None)``: the face space, the denoiser
    (``denoiser(X [B, R + N, W], t, cond, drop)``, :class:`~facemotion.models.JointEncoderDenoiser`'s
    layout) and the training noise scheduler can be passed in built; otherwise built from
    ``config``, as a checkpoint is loaded.

    Attributes: ``space``, ``fps``, ``audio_encoder``, ``denoiser``, ``sync_expert``,
    ``scheduler`` (training noiser, DDPM), ``identity_dim`` I, ``pose_dim`` (3 or 0),
    ``width`` W = max(I, D), ``rows`` R (1 with an identity token), ``identity_model`` (x_id is
    the whitened coordinates of the space's identity model), ``normalizer`` keys ``motion``,
    ``audio`` and ``identity`` (mean 0, std 1 with an identity model: its coordinates are whitened).
    """

    name = "df3dface"
    Config = DF3DFaceConfig

    def __init__(self, config: DF3DFaceConfig | None = None, space=None, audio_model_dir=None,
                 asr_model_dir=None, denoiser: torch.nn.Module | None = None, scheduler=None):
        super().__init__(config or DF3DFaceConfig(), space, audio_model_dir, asr_model_dir)
        c = self.config
        d = self.space.dim
        self.identity_dim = identity_width(self.space, c.identity_dim)
        self.identity_model = 0 < self.identity_dim == getattr(self.space, "identity_components", 0)
        self.pose_dim = 3 if getattr(self.space, "has_head_pose", True) else 0
        self.expr_dim = d - self.pose_dim
        self.width, self.rows = max(d, self.identity_dim), 1 if self.identity_dim else 0
        if self.identity_dim:
            self.normalizer.add("identity", self.identity_dim)
        self.denoiser = denoiser if denoiser is not None else build_denoiser(
            c.denoiser, motion_dim=d, audio_dim=self.audio_encoder.dim, identity_dim=self.identity_dim,
            pose_dim=self.pose_dim, d_model=c.d_model, n_layers=c.n_layers, n_heads=c.n_heads, ff_mult=c.ff_mult,
            dropout=c.dropout)
        lips = torch.as_tensor(np.asarray(self.space.lip_indices.cpu() if torch.is_tensor(self.space.lip_indices)
                                          else self.space.lip_indices), dtype=torch.long).reshape(-1)
        lips = lips[torch.randperm(len(lips), generator=torch.Generator().manual_seed(1))[:c.loss_lip_vertices]]
        self.register_buffer("loss_lips", torch.sort(lips).values, persistent=False)
        self.sync_expert = SyncExpert(3 * len(lips), self.audio_encoder.dim, c.sync_window, c.sync_hidden, c.sync_dim)
        self.scheduler = scheduler if scheduler is not None else self._scheduler("ddpm")
        self.phase = "denoiser"

    # ------------------------------------------------------------------ helpers
    @property
    def generates_identity(self) -> bool:
        """True: :meth:`sample` draws x_id too (``identity``, ``return_identity``); read by
        :class:`facemotion.Animator` to hold a given identity and keep the drawn ones."""
        return bool(self.identity_dim)

    @property
    def shape_size(self) -> int:
        """S, the number of values of the space's shape input that x_id encodes (3V with an
        identity model, else I)."""
        return 3 * int(self.space.num_vertices) if self.identity_model else self.identity_dim

    @property
    def holds_pose(self) -> bool:
        """True when the space has head pose: :meth:`sample` takes a reference ``pose``."""
        return bool(self.pose_dim)

    @property
    def default_sampling(self) -> dict:
        """``{"steps", "w_audio", "scheduler", "overlap"}`` used when ``sample`` gets None."""
        c = self.config
        return {"steps": c.steps, "w_audio": c.w_audio, "scheduler": c.scheduler, "overlap": c.overlap}

    @property
    def train_frames(self) -> int:
        """Frames per training clip: ``window``."""
        return self.config.window

    def window_boundaries(self, num_frames: int, overlap: int | None = None) -> tuple[list[int], int]:
        """Where :meth:`sample`'s windows hand over (for the seam metric): the first frame of each
        window after the first, and the frames each hand-over spans (``overlap`` + 2, cross-faded)."""
        overlap = self.config.overlap if overlap is None else overlap
        return window_boundaries(num_frames, self.config.window, overlap), overlap + 2

    def lip_motion(self, motion: torch.Tensor) -> torch.Tensor:
        """m_lip · x_motion: lip-vertex displacements from rest, per frame, in millimetres.

        Args:
            motion: face-space motion ``[..., T, D]`` (de-normalised; head pose is ignored).
        Returns:
            ``[..., T, 3L]`` (L = ``len(loss_lips)``), differentiable.
        """
        rest = self.space.expression_vertices(torch.zeros_like(motion[..., :1, :]), indices=self.loss_lips)
        v = self.space.expression_vertices(motion, indices=self.loss_lips)
        return 1e3 * (v - rest).flatten(-2)

    def pack(self, identity: torch.Tensor | None, motion: torch.Tensor) -> torch.Tensor:
        """X = [x_id; x_MP] ``[B, R + N, W]`` (zero-padded) from the identity ``[B, I]`` (None:
        zeros) and motion ``[B, N, D]`` (both as given: normalise first)."""
        x = torch.nn.functional.pad(motion, (0, self.width - motion.shape[-1]))
        if not self.rows:
            return x
        if identity is None:
            identity = motion.new_zeros(motion.shape[0], self.identity_dim)
        ident = torch.nn.functional.pad(identity.to(motion), (0, self.width - self.identity_dim))
        return torch.cat([ident[:, None], x], dim=1)

    def unpack(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Inverse of :meth:`pack`: ``(identity [B, I] or None, motion [B, N, D])``."""
        motion = x[:, self.rows:, :self.space.dim]
        return (x[:, 0, :self.identity_dim] if self.rows else None), motion

    def encode_identity(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The normalised x_id of shape inputs, and what of them x_id cannot express.

        Args:
            shape: ``[B, S]`` (or ``[B, V, 3]``) the space's shape input (vertex offsets, metres).
        Returns:
            ``(x_id [B, I] normalised, residual [B, S] or None)``: with an identity model the
            offsets' whitened coordinates and the offsets minus their projection on the model's
            span (metres; :meth:`decode_identity` adds it back), else the flattened input and None.
        """
        shape = shape.reshape(shape.shape[0], -1).float()
        if not self.identity_model:
            return self.normalizer.normalize("identity", shape), None
        code = self.space.identity_coefficients(shape)
        return self.normalizer.normalize("identity", code), shape - self.space.identity_offsets(code)

    def decode_identity(self, x_id: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """Shape inputs ``[B, S]`` (vertex offsets, metres) of normalised x_id ``[B, I]``, plus the
        ``residual`` of :meth:`encode_identity` when given (inverse of :meth:`encode_identity`)."""
        x_id = self.normalizer.unnormalize("identity", x_id)
        shape = self.space.identity_offsets(x_id) if self.identity_model else x_id
        return shape if residual is None else shape + residual

    # ------------------------------------------------------------------ inference
    def encode_style(self, motion: torch.Tensor):
        """DF-3DFace has no speaking-style input (its one-to-many variation comes from the
        diffusion itself). Raises FacemotionError."""
        raise FacemotionError("df3dface has no speaking-style input (no --style / --style-clip)")

    @torch.no_grad()
    def sample(self, features: torch.Tensor, num_samples: int = 1, steps: int | None = None,
               w_audio: float | None = None, generator: torch.Generator | list[torch.Generator] | None = None,
               scheduler: str | None = None, identity=None, pose=None, motion=None, overlap: int | None = None,
               return_identity: bool = False, style=None, w_style=None):
        """Generate identity, motion and head pose for an utterance (§3.6), holding any given
        reference fixed.

        The face representation X is drawn from noise with masked-conditioning guidance
        ``G(m(a)) + s (G(a) − G(m(a)))`` (eq. 5–6, one batched forward); references are
        overwritten into X at every step (``sample_loop``'s ``condition_data`` /
        ``condition_mask``), so they come out exactly (up to float rounding of the
        normalisation, ~1e-7 relative). Audio longer than ``window`` frames is cut into windows
        that start every ``window - overlap`` frames, sampled in one batch and cross-faded
        (:func:`~facemotion.diffusion.windows.overlapped_windows`); without a given identity the
        first window is sampled first and its identity held in the others.

        Args:
            features: audio features ``[T, C]`` from ``audio_features`` (not normalised).
            num_samples: S.
            steps, w_audio (s of eq. 6), scheduler (``"ddpm"``, ``"ddim"``, ``"dpmsolver"``),
                overlap (frames): override ``default_sampling``.
            generator: a torch RNG, or a list of S (sample i then depends on ``generator[i]`` only;
                one RNG for one sample is the same as a list of it).
            identity: reference identity, the space's shape input ``[S]`` (a vertex space:
                neutral-face offsets ``[V, 3]`` or ``[3V]``, metres), shared by all samples and held
                exactly (:meth:`encode_identity`); None: generated.
            pose: reference head pose ``[T, 3]`` radians (pitch, yaw, roll); None: generated.
            motion: reference face-space motion ``[T, D]`` whose expression channels (all but the
                head pose) are held; None: generated.
            return_identity: also return the identities.
            style, w_style: accepted for the common call of :class:`facemotion.Animator`; a style
                is refused (DF-3DFace has none).
        Returns:
            motion ``[S, T, D]`` (face space, de-normalised), or ``(motion, identity [S, S])``
            with ``return_identity`` (the shape inputs, :meth:`decode_identity`; None for a model
            without identity token).
        Raises:
            FacemotionError: a style, a reference of the wrong size (or an identity / pose the model
                does not generate), or ``overlap`` outside ``[0, window)``.
        """
        if style is not None:
            self.encode_style(style)
        c, ds = self.config, self.default_sampling
        steps = steps or ds["steps"]
        w_audio = ds["w_audio"] if w_audio is None else float(w_audio)
        overlap = ds["overlap"] if overlap is None else int(overlap)
        if not 0 <= overlap < c.window:
            raise FacemotionError(f"overlap must be in [0, {c.window}), got {overlap}")
        sched = self._scheduler(scheduler or ds["scheduler"])
        dev = self.motion_mean.device
        total, d, e = features.shape[0], self.space.dim, self.expr_dim
        feats = self.normalise_audio(features.to(dev).float())[None]
        known_id, residual = self._reference_identity(identity, dev)
        held = torch.zeros(1, total, d, device=dev)
        held_mask = torch.zeros(1, total, d, dtype=torch.bool, device=dev)
        if pose is not None:
            if not self.pose_dim:
                raise FacemotionError("this model's face space has no head pose to hold")
            pose = torch.as_tensor(np.asarray(pose, np.float32), device=dev)
            if pose.shape != (total, self.pose_dim):
                raise FacemotionError(f"pose must be [{total}, {self.pose_dim}] radians, got {tuple(pose.shape)}")
            held[0, :, e:] = pose
            held_mask[0, :, e:] = True
        if motion is not None:
            motion = torch.as_tensor(np.asarray(motion, np.float32), device=dev)
            if motion.shape != (total, d):
                raise FacemotionError(f"motion must be [{total}, {d}] (face space), got {tuple(motion.shape)}")
            held[0, :, :e] = motion[:, :e]
            held_mask[0, :, :e] = True
        held = torch.where(held_mask, self.normalise(held), held)
        gens = list(generator) if isinstance(generator, (list, tuple)) else generator
        if isinstance(gens, torch.Generator) and num_samples == 1:
            gens = [gens]  # one sample: the same draws as a list of one generator
        if isinstance(gens, list) and len(gens) != num_samples:
            raise FacemotionError(f"{len(gens)} generators for {num_samples} samples")
        sampled_id = {}

        def windows(starts: list[int], length: int) -> torch.Tensor:
            n = len(starts)
            cut = lambda a: torch.cat([window_slice(a, s, length, 0) for s in starts])  # noqa: E731
            audio, data, mask = cut(feats), cut(held), cut(held_mask.float()).bool()
            valid = torch.stack([torch.arange(s, s + length, device=dev) < total for s in starts])
            window_gens = _child_generators(gens, n)
            if known_id is not None or n == 1:
                ident = None if known_id is None else known_id[None].expand(num_samples, -1)
                out, got = self._sample_windows(audio, valid, data, mask, ident, num_samples, window_gens, steps,
                                                sched, w_audio)
            else:  # one face per utterance: the first window's identity is held in the others
                first_gens = window_gens if not isinstance(window_gens, list) else window_gens[:num_samples]
                rest_gens = window_gens if not isinstance(window_gens, list) else window_gens[num_samples:]
                out0, got = self._sample_windows(audio[:1], valid[:1], data[:1], mask[:1], None, num_samples,
                                                 first_gens, steps, sched, w_audio)
                rest, _ = self._sample_windows(audio[1:], valid[1:], data[1:], mask[1:], got[0], num_samples,
                                               rest_gens, steps, sched, w_audio)
                out = torch.cat([out0, rest])
            sampled_id["x"] = None if got is None else got[0]
            return out

        if total <= c.window:
            x = windows([0], total)[0]
        else:
            x = overlapped_windows(windows, total, c.window, overlap)
        out = self.denormalise(x)
        if not return_identity:
            return out
        ident = sampled_id["x"]
        return out, (None if ident is None else self.decode_identity(ident, residual))

    def _reference_identity(self, identity, dev) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """A caller's identity reference as normalised x_id ``[I]`` and the residual ``[S]`` that
        :meth:`decode_identity` adds back (:meth:`encode_identity`); ``(None, None)`` for None.

        Raises:
            FacemotionError: wrong size, or a model without identity token.
        """
        if identity is None:
            return None, None
        if not self.identity_dim:
            raise FacemotionError("this model has no identity token (identity_dim 0)")
        ident = torch.as_tensor(np.asarray(identity, np.float32), device=dev).reshape(1, -1)
        if ident.shape[1] != self.shape_size:
            raise FacemotionError(f"identity must have {self.shape_size} values, got {ident.shape[1]}")
        code, residual = self.encode_identity(ident)
        return code[0], (None if residual is None else residual[0])

    def _sample_windows(self, audio, valid, data, mask, identity, num_samples, generator, steps, sched, w_audio):
        """Sample n windows × S samples in one batch (window-major).

        Args:
            audio: ``[n, L, C]`` normalised features; valid: ``[n, L]`` bool (False: padding).
            data, mask: ``[n, L, D]`` normalised motion references and where they hold.
            identity: ``[S, I]`` normalised identity held in every window, or None (generated).
            generator: one generator, or a list of n·S (window-major).
        Returns:
            ``(motion [n, S, L, D], identity [n, S, I] or None)``, normalised.
        """
        n, length = audio.shape[:2]
        s, dev = num_samples, audio.device
        rep = lambda a: a.repeat_interleave(s, dim=0)  # noqa: E731  window-major: row j·S + i
        mp_data, mp_mask = rep(data), rep(mask)
        if self.rows:
            ident = torch.zeros(n * s, self.identity_dim, device=dev) if identity is None else identity.repeat(n, 1)
        x_data = self.pack(ident if self.rows else None, mp_data)
        x_mask = self.pack(torch.ones(n * s, self.identity_dim, device=dev) if (self.rows and identity is not None)
                           else None, mp_mask.float())
        pad = torch.ones_like(x_mask)
        pad[:, self.rows:, :self.space.dim] = 0
        if self.rows:
            pad[:, 0, :self.identity_dim] = 0
        x_mask = (x_mask + pad) > 0  # padding columns are held at zero
        gen_mask = torch.Generator(device="cpu").manual_seed(0)
        audio_mask = (torch.rand(length, generator=gen_mask) < self.config.audio_mask_ratio).to(dev)
        cond = {"audio": rep(audio), "valid": rep(valid), "audio_mask": audio_mask[None].expand(n * s, -1)}
        shape = (n * s, self.rows + length, self.width)
        first = generator[0] if isinstance(generator, list) else generator
        gen_dev = first.device if first is not None else dev

        def denoise(x, t):
            return guided_output(self.denoiser, x.to(dev), t.to(dev), cond, BRANCHES, [w_audio]).to(gen_dev)

        x = sample_loop(sched, denoise, shape, steps, generator, gen_dev, condition_data=x_data.to(gen_dev),
                        condition_mask=x_mask.to(gen_dev)).to(dev)
        ident, motion = self.unpack(x)
        motion = motion.reshape(n, s, length, -1)
        return motion, (None if ident is None else ident.reshape(n, s, -1))

    # ------------------------------------------------------------------ training
    def set_phase(self, step: int) -> str:
        """Training phase at optimizer step ``step``: ``"sync"`` (the sync expert, contrastive,
        first ``sync_steps`` steps) or ``"denoiser"`` (sync expert frozen, eq. 10). Sets
        ``requires_grad`` accordingly; returns the phase."""
        self.phase = "sync" if step < self.config.sync_steps else "denoiser"
        self.sync_expert.requires_grad_(self.phase == "sync")
        self.denoiser.requires_grad_(self.phase == "denoiser")
        return self.phase

    def phase_start(self, step: int) -> int:
        """Step at which the phase containing ``step`` began (for warm-up)."""
        return 0 if step < self.config.sync_steps else self.config.sync_steps

    def untrained_parts(self) -> list[str]:
        """``["sync expert (sync_steps 0)"]`` when the config uses L_sync but never trains the expert."""
        c = self.config
        return ["sync expert (sync_steps 0)"] if c.sync_steps <= 0 and c.w_sync > 0 else []

    def sync_windows(self, length: torch.Tensor, count: int, generator: torch.Generator | None = None):
        """``count`` random n-frame windows in each sample that has at least n real frames.

        Args:
            length: real frames per sample ``[B]``.
        Returns:
            ``(sample index [M], frame index [M, n])`` long tensors (M = count · usable samples).
        """
        n = self.config.sync_window
        length = torch.as_tensor(length).reshape(-1).to(self.loss_lips.device)
        ok = torch.nonzero(length >= n).reshape(-1)
        b = ok.repeat_interleave(count)
        room = (length[b] - n + 1).float()
        u = torch.rand(len(b), generator=generator).to(room.device)
        starts = (u * room).long().clamp_max((room - 1).long())
        return b, starts[:, None] + torch.arange(n, device=room.device)

    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one batch in the current phase (see ``set_phase``).

        Args:
            batch: ``audio [B, N, C]`` features, ``motion [B, N, D]`` (face space), ``length [B]``
                real frames, optionally ``shape [B, S]`` (or ``[B, V, 3]``) the clips' shape inputs.
        Returns:
            (scalar loss, dict of named terms for logging). Sync phase: InfoNCE ``sync_nce`` and
            in-batch top-1 accuracy ``sync_top1``. Denoiser phase: ``face`` (eq. 4), ``sync``
            (eq. 7), ``lip`` (eq. 8, m²), ``pose`` (eq. 9, rad²), weighted as eq. 10.
        """
        audio = self.normalise_audio(batch["audio"])
        motion = batch["motion"].to(audio.dtype)
        length = torch.as_tensor(batch["length"], device=motion.device)
        valid = torch.arange(motion.shape[1], device=motion.device)[None] < length[:, None]
        if self.phase == "sync":
            return self._sync_loss(motion, audio, length)
        return self._denoiser_loss(audio, motion, valid, batch.get("shape"))

    def _sync_loss(self, motion, audio, length):
        """Contrastive training of S_sync on ground-truth lip motion (§3.4)."""
        self.sync_expert.train(self.training)
        b, frames = self.sync_windows(length, self.config.sync_windows)
        if len(b) < 2:
            zero = motion.sum() * 0
            return zero, {"sync_nce": zero.detach()}
        lips = self.lip_motion(motion)[b[:, None], frames]
        aud = audio[b[:, None], frames]
        loss = self.sync_expert.contrastive_loss(lips, aud, self.config.sync_tau)
        with torch.no_grad():
            sim = self.sync_expert.similarity(lips, aud)
            top1 = (sim.argmax(1) == torch.arange(len(sim), device=sim.device)).float().mean()
        return loss, {"sync_nce": loss.detach(), "sync_top1": top1}

    def _denoiser_loss(self, audio, motion, valid, shape=None):
        """L = λ_face L_face + λ_sync L_sync + λ_lip L_lip + λ_pose L_pose (eq. 10)."""
        c = self.config
        bsz, dev = motion.shape[0], motion.device
        ident = None
        if self.rows:
            shape = motion.new_zeros(bsz, self.shape_size) if shape is None else shape.to(motion)
            ident = self.encode_identity(shape)[0]
        x0 = self.pack(ident, self.normalise(motion))
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (bsz,), device=dev)
        noise = torch.randn_like(x0)
        x_t = add_noise(self.scheduler, x0, noise, t)
        drop = torch.rand(bsz, device=dev) < c.p_mask_audio
        audio_mask = torch.rand(bsz, motion.shape[1], device=dev) < c.audio_mask_ratio
        out = self.denoiser(x_t, t, {"audio": audio, "audio_mask": audio_mask, "valid": valid}, {"audio": drop})
        pred = predicted_x0(self.scheduler, out, x_t, t)
        target = noise if self.scheduler.config.prediction_type == "epsilon" else x0
        # L_face (eq. 4): squared error per row (x_id and each real frame of x_MP), mean over rows
        err_id, err_mp = self.unpack((out - target) ** 2)
        vf = valid.float()
        rows = (err_mp.mean(-1) * vf).sum(1)
        count = vf.sum(1)
        if err_id is not None:
            rows, count = rows + err_id.mean(-1), count + 1
        terms = {"face": (rows / count.clamp_min(1)).mean()}
        _, mp_hat = self.unpack(pred)
        motion_hat = self.denormalise(mp_hat)
        lips_hat, lips = self.lip_motion(motion_hat), self.lip_motion(motion)
        terms["lip"] = losses.vertex_loss(lips_hat * 1e-3, lips * 1e-3, vf)  # eq. 8, m²
        if self.pose_dim:
            terms["pose"] = losses.velocity_loss(self.space.head_pose(motion_hat), self.space.head_pose(motion), vf)
        if c.w_sync > 0:
            self.sync_expert.eval()
            b, frames = self.sync_windows(valid.sum(1), 1)
            if len(b):
                terms["sync"] = self.sync_expert.sync_loss(lips_hat[b[:, None], frames], audio[b[:, None], frames])
        loss = sum(getattr(c, "w_" + k) * v for k, v in terms.items())
        return loss, {k: v.detach() for k, v in terms.items()}

    @torch.no_grad()
    def validation_metrics(self, batch: dict, generator: torch.Generator) -> dict[str, float]:
        """Sample each validation clip (its first ``window`` frames; identity from the batch's
        ``shape`` when given) and compare with the ground truth.

        Returns:
            ``lve_mm`` (lip vertex error, mm, over the loss lip vertices), ``head_deg`` (mean
            absolute head-angle error, degrees), ``sync`` (S_sync of the sample's lip windows and
            the audio, mean cosine similarity).
        """
        out = {"lve_mm": [], "head_deg": [], "sync": []}
        shapes = batch.get("shape")
        for i, (audio, motion, length) in enumerate(zip(batch["audio"], batch["motion"], batch["length"])):
            n = int(min(int(length), self.config.window))
            ident = None if shapes is None else shapes[i]
            pred = self.sample(audio[:n], steps=10, scheduler="ddim", generator=generator, identity=ident)
            v_hat = self.space.expression_vertices(pred, indices=self.loss_lips)
            v = self.space.expression_vertices(motion[:n][None], indices=self.loss_lips)
            out["lve_mm"].append(1e3 * lip_vertex_error(v_hat, v, torch.arange(v.shape[-2])).mean())
            out["head_deg"].append((self.space.head_pose(pred) - self.space.head_pose(motion[:n][None])).abs()
                                   .mean().rad2deg())
            b, frames = self.sync_windows(torch.tensor([n]), 4, generator)
            if len(b):
                lips = self.lip_motion(pred[0])[frames]
                out["sync"].append(self.sync_expert(lips, self.normalise_audio(audio[:n])[frames]).mean())
        return {k: float(torch.stack(v).mean()) if v else float("nan") for k, v in out.items()}


def _child_generators(generator, count: int):
    """Per-window generators: for a list of S generators, ``count`` · S new ones (window-major:
    window j of sample i is ``[j·S + i]``), each seeded from sample i's generator, so a sample
    does not depend on the batch it is drawn in; a single generator (or None) is returned as is."""
    if not isinstance(generator, list):
        return generator
    seeds = [[int(torch.randint(0, 2**62, (1,), generator=g, device=g.device)) for _ in range(count)]
             for g in generator]
    return [torch.Generator(device=generator[i].device).manual_seed(seeds[i][j])
            for j in range(count) for i in range(len(generator))]


__all__ = ["DF3DFace", "DF3DFaceConfig", "identity_width"]
