"""A learned expression space: Media2Face's GNPFA geometry VAE (§3.1) on the built-in head, scaled down.

:class:`LatentSpace` is a face space whose motion is ``x = [z_e, θ]`` (Media2Face §4.1): an
expression latent ``z_e [L]`` of a geometry VAE plus the head pitch, yaw, roll ``θ`` (radians).
Its learned parts, all persistent state that travels in a recipe's checkpoint:

- ``encoder`` E_geo: expression geometry -> (μ, log σ²) of ``z_e``;
- ``decoder`` G_geo: (neutral geometry, ``z_e``) -> expression geometry (conditioned on the
  neutral face, i.e. the identity);
- ``to_latent`` M: 52 ARKit weights -> ``z_e``; ``to_weights`` M′: ``z_e`` -> ARKit weights.

Geometry is the built-in head (ICT Face Model) at a fixed subset of ``num_vertices`` vertices
(farthest-point samples of the vertices the 52 shapes move, a quarter of them on the lips), in
millimetres, as displacements from the neutral face. Deviations from the paper, for a CPU and a
synthetic corpus: MLPs on a vertex subset instead of a UNet on UV coordinate maps; the encoder
sees the displacement ``G − Ḡ`` (the paper's sees ``G``; with the neutral known, subtracting it
removes the identity the encoder would otherwise learn to ignore). The rig's expression shapes
are the same for every identity, so on this head the decoder's identity condition carries
little; it is there for heads whose shapes are personalised.

Decoding to the whole head: the decoded subset geometry's least-squares weights in the rig's 52
shapes (a fixed ``[52, 3S]`` pseudo-inverse; exact for this rig's linear expressions), applied to
every vertex. ``to_arrays`` writes the ARKit weights ``M′(z_e)`` (so CSV, GLB and USD export work)
and the latent itself; an ``.npz`` of a latent animation reads back as a blendshape animation (the
VAE's weights live in the model checkpoint, not in each animation file).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from facemotion.errors import DataError
from facemotion.face.arkit import ARKIT_BLENDSHAPES, HEAD_POSE_NAMES
from facemotion.face.rig import HeadRig, load_head_rig
from facemotion.face.space import BlendshapeSpace, _frames, _numpy

MM = 1e3  # the VAE works in millimetres
NUM_WEIGHTS = len(ARKIT_BLENDSHAPES)


def vae_vertices(rig: HeadRig, count: int, moved: float = 2e-4) -> np.ndarray:
    """The vertex subset the VAE sees: ``[count]`` sorted int64 indices of the rig.

    Farthest-point samples (on the neutral face, deterministic) of the vertices that some ARKit
    shape moves by more than ``moved`` metres: first ``count // 4`` on the lips (from the two lip
    midpoints), then the rest over all of them.

    Raises:
        ValueError: ``count`` is below 64 or above the number of moved vertices.
    """
    movers = np.flatnonzero(np.abs(rig.deltas).max(axis=(0, 2)) > moved)
    if not 64 <= count <= len(movers):
        raise ValueError(f"LatentSpace: num_vertices must be in [64, {len(movers)}], got {count}")
    lm = rig.landmarks
    lips = np.intersect1d(rig.regions["lips"], movers)
    chosen = _farthest(rig.neutral, lips, [lm["upper_lip_mid"], lm["lower_lip_mid"]], count // 4)
    return np.sort(_farthest(rig.neutral, movers, chosen, count))


def _farthest(points: np.ndarray, pool: np.ndarray, chosen: list, count: int) -> list:
    """``chosen`` extended by farthest-point sampling from ``pool`` to ``count`` indices."""
    chosen = list(chosen)
    p = points[pool].astype(np.float64)
    dist = np.min([np.linalg.norm(p - points[c], axis=1) for c in chosen], axis=0)
    while len(chosen) < count:
        i = int(np.argmax(dist))
        chosen.append(int(pool[i]))
        dist = np.minimum(dist, np.linalg.norm(p - p[i], axis=1))
    return chosen


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers[:-1])


class LatentSpace(BlendshapeSpace):
    """Media2Face's motion state ``x = [z_e, θ]`` on a geometry VAE of the built-in head (module doc).

    ``dim = latent_dim + 3``; names ``z0 .. z{L-1}`` then pitch, yaw, roll. Shape input: the
    rig's identity coefficients ``[K]`` (as :class:`BlendshapeSpace`). Built untrained (train it
    with ``facemotion train --recipe media2face-vae``) or from a trained VAE checkpoint
    (``vae``); a recipe's checkpoint holds the weights, so ``build_space("latent",
    space.settings())`` followed by the state dict restores it.

    Args:
        latent_dim: L; num_vertices: size S of the vertex subset; hidden: MLP width.
        vae: a ``media2face-vae`` checkpoint (``model.pt`` of ``facemotion train``) whose VAE is
            loaded (its sizes win over the arguments).

    Raises:
        DataError: ``vae`` is not a readable ``media2face-vae`` checkpoint.
        ValueError: bad sizes.
    """

    name = "latent"

    def __init__(self, latent_dim: int = 64, num_vertices: int = 512, hidden: int = 256, vae=None):
        blob = None
        if vae is not None:
            blob = _read_vae(vae)
            cfg = blob["config"]
            latent_dim, num_vertices, hidden = cfg["latent_dim"], cfg["vae_vertices"], cfg["vae_hidden"]
        rig = load_head_rig()
        super().__init__(rig)
        self.latent_dim, self.hidden = int(latent_dim), int(hidden)
        self.dim = self.latent_dim + 3
        self.names = tuple(f"z{i}" for i in range(self.latent_dim)) + HEAD_POSE_NAMES
        subset = vae_vertices(rig, int(num_vertices))
        self.vae_vertex_count = len(subset)
        s3 = 3 * len(subset)
        deltas = torch.from_numpy(np.array(rig.deltas[:, subset], np.float32)).flatten(1) * MM  # [52, 3S] mm
        if int(torch.linalg.matrix_rank(deltas.double())) < NUM_WEIGHTS:
            raise ValueError(f"LatentSpace: {len(subset)} vertices do not tell the 52 ARKit shapes apart; take more")
        self.register_buffer("vae_index", torch.from_numpy(subset), persistent=False)
        self.register_buffer("subset_deltas", deltas, persistent=False)
        self.register_buffer("subset_pinv", torch.linalg.pinv(deltas.double()).float(), persistent=False)  # [3S, 52]
        self.register_buffer("subset_identity", torch.from_numpy(
            np.array(rig.identity_basis[:, subset], np.float32)).flatten(1) * MM, persistent=False)  # [K, 3S] mm
        h, n_id = self.hidden, rig.identity_basis.shape[0]
        self.encoder = _mlp([s3, h, h, 2 * self.latent_dim])
        self.neutral_in = nn.Linear(s3, h)
        self.decoder = _mlp([self.latent_dim + h, h, h, s3])
        self.to_latent = _mlp([NUM_WEIGHTS, h, h, self.latent_dim])
        self.to_weights = _mlp([self.latent_dim, h, h, NUM_WEIGHTS])
        self.register_buffer("trained", torch.zeros((), dtype=torch.bool))
        self.identity_modes = n_id
        if blob is not None:
            state = {k[len("vae."):]: v for k, v in blob["state_dict"].items() if k.startswith("vae.")}
            self.load_state_dict(state)

    def settings(self) -> dict:
        """Sizes (JSON-able); the weights are state (persistent) in the checkpoint."""
        return {"latent_dim": self.latent_dim, "num_vertices": self.vae_vertex_count, "hidden": self.hidden}

    def describe(self) -> dict:
        """An animation ``.npz`` of this space is described as the blendshape space: it holds the
        ARKit weights ``M′(z_e)`` and reads back as a blendshape animation (see module doc)."""
        return {"name": "blendshape", "settings": {}}

    @property
    def needs_fit(self) -> bool:
        """Always False: the VAE is trained by its own recipe, never fitted by the trainer."""
        return False

    def _require_trained(self) -> None:
        if not bool(self.trained):
            raise ValueError("LatentSpace: the VAE is untrained (train one with `facemotion train --recipe "
                             "media2face-vae` and give its model.pt as the space's 'vae')")

    # ------------------------------------------------------------------ the VAE's parts
    def subset_geometry(self, weights: torch.Tensor) -> torch.Tensor:
        """Expression geometry of ARKit weights at the subset: ``[..., 52] -> [..., 3S]`` mm
        displacements from the neutral face (the rig's shapes; the same for every identity)."""
        return weights @ self.subset_deltas

    def neutral_offset(self, shape: torch.Tensor | None, batch: tuple[int, ...]) -> torch.Tensor:
        """Neutral geometry Ḡ at the subset relative to the mean face, ``[*batch, 3S]`` mm, of
        identity coefficients ``shape [*batch, K']`` (None: the mean face, zeros)."""
        if shape is None:
            return self.subset_deltas.new_zeros(*batch, self.subset_deltas.shape[1])
        shape = torch.as_tensor(shape, dtype=self.subset_deltas.dtype, device=self.subset_deltas.device)
        return (shape @ self.subset_identity[:shape.shape[-1]]).expand(*batch, -1)

    def encode(self, geometry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E_geo: displacements ``[..., 3S]`` mm -> (μ ``[..., L]``, log σ² ``[..., L]``)."""
        mu, logvar = self.encoder(geometry).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode_geometry(self, z: torch.Tensor, neutral: torch.Tensor) -> torch.Tensor:
        """G_geo: latent ``[..., L]`` and neutral Ḡ ``[..., 3S]`` mm (:meth:`neutral_offset`) ->
        displacements ``[..., 3S]`` mm."""
        return self.decoder(torch.cat([z, self.neutral_in(neutral)], dim=-1))

    def weights_to_latent(self, weights: torch.Tensor, refine: bool = False, tol: float = 1e-4) -> torch.Tensor:
        """M: ARKit weights ``[..., 52]`` -> ``z_e [..., L]``.

        With ``refine`` (keyframes), ``M(w)`` is then refined by L-BFGS on ``||M′(z) − w||²``
        (outputs beyond a weight of 0 or 1 count as met, as :meth:`to_arrays` clips them) until
        the largest weight error is below ``tol`` (or 5 x 200 iterations), so the key's weights
        come back through M′ as given.
        """
        z = self.to_latent(weights)
        if not refine:
            return z
        with torch.inference_mode(False), torch.enable_grad():  # also under Animator's inference mode
            z, weights = z.clone().requires_grad_(True), weights.clone()
            opt = torch.optim.LBFGS([z], lr=1.0, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14,
                                    line_search_fn="strong_wolfe")

            def error():  # as to_arrays clips: a weight at 0 (1) is met by any output below (above)
                out = self.to_weights(z)
                met = ((weights <= 0) & (out < 0)) | ((weights >= 1) & (out > 1))
                return torch.where(met, 0.0, out - weights)

            def closure():
                opt.zero_grad()
                loss = error().square().sum()
                loss.backward()
                return loss
            for _ in range(5):
                opt.step(closure)
                if float(error().detach().abs().max()) < tol:
                    break
        return z.detach()

    # ------------------------------------------------------------------ the face-space contract
    def from_arrays(self, arrays: dict) -> np.ndarray:
        """``latent [T, L]`` (as :meth:`to_arrays` writes it) or ARKit ``blendshapes [T, 52]``
        (encoded: the mean μ of E_geo on their geometry), and ``head_rotation [T, 3]`` radians ->
        ``[T, L + 3]`` float32.

        Raises:
            ValueError: missing or malformed arrays, or an untrained VAE.
        """
        head = _frames(arrays, "head_rotation", (3,), "latent motion")
        if "latent" in arrays:
            z = _frames(arrays, "latent", (self.latent_dim,), "latent motion")
        else:
            self._require_trained()
            w = BlendshapeSpace.from_arrays(self, arrays)[:, :NUM_WEIGHTS]
            with torch.no_grad():
                geo = self.subset_geometry(torch.from_numpy(w).to(self.subset_deltas))
                z = self.encode(geo)[0].cpu().numpy()
        if len(z) != len(head):
            raise ValueError(f"latent motion: {len(z)} frames of expression but {len(head)} of head_rotation")
        return np.concatenate([z, head], -1).astype(np.float32)

    def to_arrays(self, x) -> dict[str, np.ndarray]:
        """``x [T, L + 3]`` -> ``latent [T, L]``, ARKit ``blendshapes [T, 52]`` = M′(z_e) clipped
        to [0, 1], ``blendshape_names``, ``head_rotation [T, 3]`` radians."""
        x = _numpy(x)
        with torch.no_grad():
            w = self.to_weights(torch.from_numpy(x[..., :self.latent_dim]).to(self.subset_deltas)).cpu().numpy()
        return {"latent": x[..., :self.latent_dim].astype(np.float32),
                "blendshapes": np.clip(w, 0.0, 1.0).astype(np.float32), "blendshape_names": np.array(ARKIT_BLENDSHAPES),
                "head_rotation": x[..., self.latent_dim:].astype(np.float32)}

    def constrain(self, x: np.ndarray) -> np.ndarray:
        """Unchanged: every latent is valid."""
        return np.asarray(x, np.float32)

    def decoded_weights(self, x: torch.Tensor, shape: torch.Tensor | None = None) -> torch.Tensor:
        """The rig weights of the decoded geometry: ``x [..., L + 3] -> [..., 52]``, the
        least-squares fit of G_geo's subset displacements in the rig's shapes; ``shape``:
        identity coefficients broadcast to ``x [..., K_id]`` (None: mean face)."""
        self._check(x)
        z = x[..., :self.latent_dim].to(self.subset_deltas.dtype)
        return self.decode_geometry(z, self.neutral_offset(shape, z.shape[:-1])) @ self.subset_pinv

    def expression_vertices(self, x: torch.Tensor, indices: torch.Tensor | None = None,
                            shape: torch.Tensor | None = None) -> torch.Tensor:
        """Whole-head vertices with zero head pose: ``x [..., T, L + 3] -> [..., T, V, 3]`` metres
        (``[..., T, K, 3]`` for ``indices [K]``), decoded by G_geo and spread over the head by the
        rig (module doc); ``shape [..., K_id]``: identity coefficients (None: mean face).

        Raises:
            ValueError: the last dimension is not L + 3.
        """
        per_frame = None if shape is None else torch.as_tensor(shape).unsqueeze(-2)
        return self.rig_vertices(self.decoded_weights(x, per_frame), indices, shape)

    def head_pose(self, x: torch.Tensor) -> torch.Tensor:
        """Head rotation ``x [..., L + 3] -> [..., 3]`` radians (pitch, yaw, roll)."""
        self._check(x)
        return x[..., self.latent_dim:]

    def vertices_np(self, x, shape=None) -> np.ndarray:
        """Numpy decoding without autograd (through G_geo): motion ``[..., L + 3]`` -> posed
        ``[..., V, 3]`` float32 metres; ``shape [K]``: identity coefficients (None: mean face)."""
        x = torch.as_tensor(np.asarray(x, np.float32), device=self.neck_pivot.device)
        s = None if shape is None else torch.as_tensor(np.asarray(shape, np.float32), device=x.device)
        with torch.no_grad():
            return self.decode(x, s)[0].cpu().numpy()


def _read_vae(path) -> dict:
    """The checkpoint dict of a ``media2face-vae`` model file.

    Raises:
        DataError: missing, unreadable, or another recipe's checkpoint.
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a missing or corrupt file
        raise DataError(f"{path}: not a readable VAE checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(blob, dict) or blob.get("recipe") != "media2face-vae":
        raise DataError(f"{path}: not a media2face-vae checkpoint (train one with `facemotion train --recipe "
                        "media2face-vae`)")
    return blob
