"""Face spaces: the motion representations the denoisers work in, and their decoders to vertices.

A face space maps a motion ``x [..., T, D]`` to mesh vertices ``[..., T, V, 3]`` (metres) and a
head pose ``[..., T, 3]`` (radians, pitch/yaw/roll about the space's neck pivot; see
:mod:`facemotion.face.rotation`). Every space honours the contract of :class:`FaceSpace`
(DESIGN.md, "The face-space contract"):

- ``from_arrays(arrays) -> x [T, D]`` and ``to_arrays(x) -> dict``: the named arrays of the
  ``.npz`` layout (exported animations and native dataset clips) to and from motion vectors;
- ``decode(x, shape=None) -> (vertices, head pose)``, ``expression_vertices(x, indices, shape)``,
  ``head_pose(x)``;
- ``names``, ``dim``, ``lip_landmarks``, ``lip_indices``, ``upper_face_indices``, ``mesh()``;
- ``settings()``: a JSON-able dict such that ``build_space(space.name, space.settings())``
  builds the same space, whose persistent buffers (learned or derived state: a PCA basis, a
  template) then load from the checkpoint's state dict.

Spaces: :class:`BlendshapeSpace` (52 ARKit weights + head rotation on the built-in head rig),
:class:`VertexSpace` (per-frame displacements from a template mesh of any fixed topology,
optionally in a fitted PCA basis) and :class:`facemotion.face.flame.FlameSpace` (FLAME
expression, jaw and global rotation on the user's FLAME model). :func:`build_space` builds one from its name and settings.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import json
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from facemotion.errors import DataError
from facemotion.face.arkit import ARKIT_BLENDSHAPES, HEAD_POSE_NAMES
from facemotion.face.lips import lip_aperture
from facemotion.face.rig import HeadRig, load_head_rig
from facemotion.face.rotation import euler_to_matrix



@dataclasses.dataclass(frozen=True, eq=False)
class FaceMesh:
    """The mesh a space decodes onto, as exporters and the renderer need it.

    :class:`facemotion.face.rig.HeadRig` has the same attributes, so either serves.

    Attributes:
        neutral: ``[V, 3]`` float32 metres, the rest (zero-motion) mesh.
        faces: ``[F, 3]`` int32 triangles (may be empty: a point cloud).
        regions: name -> ``[n]`` int vertex indices (at least ``lips`` and ``upper_face``).
        landmarks: name -> vertex index (at least ``upper_lip_mid`` and ``lower_lip_mid``).
        neck_pivot: ``[3]`` float32 metres, centre of head rotation.
    """

    neutral: np.ndarray
    faces: np.ndarray
    regions: dict
    landmarks: dict
    neck_pivot: np.ndarray

    @property
    def num_vertices(self) -> int:
        """Number of vertices ``V``."""
        return int(self.neutral.shape[0])


def _frames(arrays: dict, key: str, width: tuple[int, ...], what: str) -> np.ndarray:
    """``arrays[key]`` as float32 ``[T >= 1, *width]``; raises ValueError naming ``key``."""
    if key not in arrays:
        raise ValueError(f"{what}: no '{key}' array (found {sorted(arrays)})")
    a = np.asarray(arrays[key])
    if a.ndim != 1 + len(width) or a.shape[0] < 1 or tuple(a.shape[1:]) != tuple(width):
        want = ", ".join(["T"] + [str(w) for w in width])
        raise ValueError(f"{what}: '{key}' has shape {a.shape}, expected [{want}] with T >= 1")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: '{key}' holds NaN or infinite values")
    return a


class FaceSpace(nn.Module):
    """Base class of face spaces (an ``nn.Module`` so its tensors follow ``.to(device)`` and its
    persistent buffers go into the recipe's checkpoint).

    Subclasses set ``name`` (the :data:`SPACES` key), ``dim``, ``names`` and implement
    :meth:`from_arrays`, :meth:`to_arrays`, :meth:`expression_vertices`, :meth:`head_pose`,
    :meth:`mesh` and :meth:`settings`. Buffers that a space rebuilds from its settings or from
    package data (the rig's morph targets) are non-persistent; learned or derived state
    (a PCA basis, a template) is persistent and round-trips through the checkpoint.

    Args:
        lip_landmarks: ``(upper, lower)`` vertex indices of the lip midpoints.
        lip_indices: ``[n]`` vertex indices of the lips (for lip losses / LVE).
        upper_face_indices: ``[m]`` vertex indices of the upper face (for FDD).
        neck_pivot: ``[3]`` metres, centre of head rotation.
    """

    name: str = ""
    dim: int
    names: tuple[str, ...]
    #: the space's motion carries a head pose (else :meth:`head_pose` is zero)
    has_head_pose: bool = True

    def __init__(self, lip_landmarks, lip_indices, upper_face_indices, neck_pivot):
        super().__init__()
        self.lip_landmarks = (int(lip_landmarks[0]), int(lip_landmarks[1]))
        self.register_buffer("lip_indices", torch.as_tensor(np.asarray(lip_indices), dtype=torch.long), persistent=False)
        self.register_buffer("upper_face_indices", torch.as_tensor(np.asarray(upper_face_indices), dtype=torch.long),
                             persistent=False)
        self.register_buffer("neck_pivot", torch.as_tensor(np.asarray(neck_pivot), dtype=torch.float32), persistent=False)

    # ------------------------------------------------------------------ the contract
    def settings(self) -> dict:
        """JSON-able settings: ``build_space(self.name, self.settings())`` rebuilds this space
        (its persistent buffers then come from the checkpoint's state dict)."""
        return {}

    def from_arrays(self, arrays: dict) -> np.ndarray:
        """Motion vectors ``[T, D]`` float32 from the named arrays of one clip (``.npz`` layout).

        Raises:
            ValueError: an array is missing, of the wrong shape, or not finite.
        """
        raise NotImplementedError

    def to_arrays(self, x) -> dict[str, np.ndarray]:
        """The ``.npz`` layout (named numpy arrays) of a motion ``x [T, D]`` (numpy or torch);
        :meth:`from_arrays` inverts it."""
        raise NotImplementedError

    def constrain(self, x: np.ndarray) -> np.ndarray:
        """A sampled motion ``[..., D]`` (numpy) brought into the space's valid range (identity
        here; :class:`BlendshapeSpace` clips weights to [0, 1])."""
        return x

    def shape_coefficients(self, identity) -> np.ndarray | None:
        """Per-sequence shape input from a user's ``identity``: None (the mean/template face)
        or an array (returned as float32). Spaces with a shape model also take an ``int``
        seed (:class:`BlendshapeSpace`: the rig's identity modes).

        Raises:
            ValueError: an ``int`` seed for a space without a shape model, or a bad array.
        """
        if identity is None:
            return None
        if isinstance(identity, (int, np.integer)):
            raise ValueError(f"{type(self).__name__} has no shape model to draw an identity from a seed; "
                             "pass shape coefficients as an array")
        shape = np.asarray(identity, np.float32)
        if not np.isfinite(shape).all():
            raise ValueError("identity: shape coefficients must be finite")
        return shape

    def identity_arrays(self, identity, frames: int) -> dict[str, np.ndarray]:
        """The ``.npz`` arrays of a sequence's shape input ``identity`` (None: the mean face) over
        ``frames`` frames: ``{"identity": float32}`` here, nothing for None;
        :meth:`identity_from_arrays` inverts it."""
        return {} if identity is None else {"identity": np.asarray(identity, np.float32)}

    def identity_from_arrays(self, arrays: dict) -> np.ndarray | None:
        """The shape input stored by :meth:`identity_arrays` (None when there is none)."""
        return arrays.get("identity")

    def mesh(self, shape=None) -> FaceMesh:
        """The rest mesh (``neutral [V, 3]`` m with ``shape`` applied, ``faces``, regions,
        landmarks, neck pivot) for exporters and the renderer."""
        raise NotImplementedError

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.dim:
            raise ValueError(f"{type(self).__name__}: expected motion [..., {self.dim}], got shape {tuple(x.shape)}")

    def expression_vertices(self, x: torch.Tensor, indices: torch.Tensor | None = None,
                            shape: torch.Tensor | None = None) -> torch.Tensor:
        """Vertices with zero head pose: ``x [..., T, D] -> [..., T, V, 3]`` metres.

        With ``indices [K]`` (vertex indices) only those vertices are decoded: ``[..., T, K, 3]``;
        training losses use this to avoid decoding the whole mesh every step. ``shape``: the
        per-sequence shape input (see the subclass), ``[..., S]`` broadcast over frames.

        Raises:
            ValueError: the last dimension is not :attr:`dim`.
        """
        raise NotImplementedError

    def head_pose(self, x: torch.Tensor) -> torch.Tensor:
        """Head rotation: ``x [..., D] -> [..., 3]`` radians (pitch, yaw, roll); zeros for a
        space without head pose."""
        raise NotImplementedError

    def decode(self, x: torch.Tensor, shape: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posed vertices and head pose of ``x [..., T, D]`` (differentiable, batched).

        The expression vertices are rotated by ``euler_to_matrix(head_pose(x))`` about the
        neck pivot.

        Args:
            x: motion ``[..., T, D]``.
            shape: per-sequence shape input or None (see :meth:`expression_vertices`).
        Returns:
            ``(vertices [..., T, V, 3] metres, head pose [..., T, 3] radians)``.
        Raises:
            ValueError: the last dimension is not :attr:`dim`.
        """
        self._check(x)
        v = self.expression_vertices(x, shape=shape)
        pose = self.head_pose(x)
        if not self.has_head_pose:
            return v, pose
        rot = euler_to_matrix(pose).to(v.dtype)
        p = self.neck_pivot.to(v.dtype)
        return torch.einsum("...ij,...vj->...vi", rot, v - p) + p, pose

    @torch.no_grad()
    def vertices_np(self, x, shape=None) -> np.ndarray:
        """Numpy decoding without autograd: motion ``[..., D]`` -> posed ``[..., V, 3]`` float32
        metres (``shape`` as in :meth:`decode`)."""
        x = torch.as_tensor(np.asarray(x, np.float32), device=self.neck_pivot.device)
        s = None if shape is None else torch.as_tensor(np.asarray(shape, np.float32), device=x.device)
        return self.decode(x, s)[0].cpu().numpy()

    def lip_aperture(self, vertices: torch.Tensor) -> torch.Tensor:
        """Distance between the upper and lower lip midpoints: ``[..., V, 3] -> [...]`` metres."""
        return lip_aperture(vertices, *self.lip_landmarks)

    def describe(self) -> dict:
        """``{"name": ..., "settings": ...}``: what a checkpoint or an ``.npz`` stores of the space."""
        return {"name": self.name, "settings": self.settings()}


class BlendshapeSpace(FaceSpace):
    """52 ARKit blendshape weights then head pitch, yaw, roll (radians): ``dim = 55``.

    Decodes through a :class:`~facemotion.face.rig.HeadRig` (the built-in one by default):
    ``v = neutral + sum_k beta_k * identity_k + sum_i w_i * deltas_i``, rotated about the rig's
    neck pivot. Its ``.npz`` layout: ``blendshapes [T, 52]`` (ARKit order),
    ``blendshape_names [52]``, ``head_rotation [T, 3]`` radians. The rig's tensors are
    non-persistent (rebuilt from package data), so the space adds nothing to a checkpoint.
    Shape input: ``[..., K]`` coefficients of the rig's identity modes (about N(0, 1)).

    Args:
        rig: the head rig, default :func:`~facemotion.face.rig.load_head_rig`.
    """

    name = "blendshape"
    dim = len(ARKIT_BLENDSHAPES) + 3
    names = tuple(ARKIT_BLENDSHAPES) + HEAD_POSE_NAMES

    def __init__(self, rig: HeadRig | None = None):
        rig = rig if rig is not None else load_head_rig()
        lm = rig.landmarks
        super().__init__((lm["upper_lip_mid"], lm["lower_lip_mid"]), rig.regions["lips"],
                         rig.regions["upper_face"], rig.neck_pivot)
        self.rig = rig
        self.num_vertices = rig.num_vertices
        self.register_buffer("neutral", torch.from_numpy(np.array(rig.neutral, np.float32)), persistent=False)
        self.register_buffer("deltas", torch.from_numpy(np.array(rig.deltas, np.float32).reshape(len(ARKIT_BLENDSHAPES), -1)),
                             persistent=False)

    def settings(self) -> dict:
        """No settings: the built-in rig is package data."""
        return {}

    def from_arrays(self, arrays: dict) -> np.ndarray:
        """``blendshapes [T, 52]`` (reordered to ARKit order by ``blendshape_names`` when given)
        and ``head_rotation [T, 3]`` radians -> ``[T, 55]`` float32.

        Raises:
            ValueError: missing arrays, wrong shapes, frame counts that differ, names that are not
                the 52 ARKit names, or non-finite values.
        """
        bs = _frames(arrays, "blendshapes", (len(ARKIT_BLENDSHAPES),), "blendshape motion")
        head = _frames(arrays, "head_rotation", (3,), "blendshape motion")
        if len(head) != len(bs):
            raise ValueError(f"blendshape motion: 'head_rotation' has shape {head.shape}, expected [{len(bs)}, 3] "
                             "(one row per frame of blendshapes)")
        if "blendshape_names" in arrays:
            names = [str(n) for n in np.asarray(arrays["blendshape_names"]).reshape(-1)]
            if sorted(names) != sorted(ARKIT_BLENDSHAPES):
                raise ValueError("blendshape motion: blendshape_names are not the 52 ARKit names")
            bs = bs[:, [names.index(n) for n in ARKIT_BLENDSHAPES]]
        return np.concatenate([bs, head], -1)

    def to_arrays(self, x) -> dict[str, np.ndarray]:
        """``x [T, 55]`` -> ``blendshapes [T, 52]`` float32, ``blendshape_names [52]``,
        ``head_rotation [T, 3]`` float32 radians."""
        x = _numpy(x)
        n = len(ARKIT_BLENDSHAPES)
        return {"blendshapes": x[..., :n].astype(np.float32), "blendshape_names": np.array(ARKIT_BLENDSHAPES),
                "head_rotation": x[..., n:].astype(np.float32)}

    def constrain(self, x: np.ndarray) -> np.ndarray:
        """Weights clipped to [0, 1]; head rotation unchanged."""
        x = np.array(x, np.float32, copy=True)
        x[..., :len(ARKIT_BLENDSHAPES)] = np.clip(x[..., :len(ARKIT_BLENDSHAPES)], 0.0, 1.0)
        return x

    def shape_coefficients(self, identity) -> np.ndarray | None:
        """The rig's identity coefficients ``[K]`` from None, an ``int`` seed or an array
        (:meth:`facemotion.face.rig.HeadRig.identity_coefficients`).

        Raises:
            ValueError: an array that is not a finite vector of at most K values.
        """
        return self.rig.identity_coefficients(identity)

    def head(self, shape=None) -> HeadRig:
        """The rig with identity coefficients ``shape [K]`` applied (None: the mean face)."""
        return self.rig if shape is None else self.rig.with_identity(np.asarray(shape, np.float32))

    def mesh(self, shape=None) -> HeadRig:
        """The head rig itself (a :class:`HeadRig` has every :class:`FaceMesh` attribute), with
        identity coefficients ``shape [K]`` applied."""
        return self.head(shape)

    def _identity_offset(self, shape: torch.Tensor, indices=None) -> torch.Tensor:
        """``shape [..., K]`` -> vertex offsets ``[..., 1, V or K_idx, 3]`` metres."""
        basis = self.rig.identity_basis
        shape = torch.as_tensor(shape, dtype=self.deltas.dtype, device=self.deltas.device)
        k = shape.shape[-1]
        if k > basis.shape[0]:
            raise ValueError(f"{type(self).__name__}: at most {basis.shape[0]} identity coefficients, got {k}")
        b = basis[:k] if indices is None else basis[:k][:, np.asarray(torch.as_tensor(indices).cpu())]
        b = torch.from_numpy(np.array(b, np.float32)).to(shape.device)
        return torch.einsum("...k,kvc->...vc", shape, b).unsqueeze(-3)

    def expression_vertices(self, x: torch.Tensor, indices: torch.Tensor | None = None,
                            shape: torch.Tensor | None = None) -> torch.Tensor:
        """Vertices with zero head pose: ``x [..., T, 55] -> [..., T, V, 3]`` metres
        (``[..., T, K, 3]`` for the vertex ``indices [K]`` only); ``shape [..., K_id]``:
        identity coefficients of the rig, or None for the mean face.

        Raises:
            ValueError: the last dimension is not 55, or more identity coefficients than modes.
        """
        self._check(x)
        return self.rig_vertices(x[..., : len(ARKIT_BLENDSHAPES)], indices, shape)

    def rig_vertices(self, weights: torch.Tensor, indices: torch.Tensor | None = None,
                     shape: torch.Tensor | None = None) -> torch.Tensor:
        """The rig's vertices with zero head pose: ARKit ``weights [..., T, 52] -> [..., T, V, 3]``
        metres (``indices``, ``shape`` as in :meth:`expression_vertices`)."""
        w = weights.to(self.deltas.dtype)
        if indices is None:
            v = self.neutral + (w @ self.deltas).unflatten(-1, (self.num_vertices, 3))
        else:
            deltas = self.deltas.view(len(ARKIT_BLENDSHAPES), self.num_vertices, 3)[:, indices]
            v = self.neutral[indices] + (w @ deltas.flatten(1)).unflatten(-1, (len(indices), 3))
        if shape is not None:
            v = v + self._identity_offset(shape, indices)
        return v

    def head_pose(self, x: torch.Tensor) -> torch.Tensor:
        """Head rotation ``x [..., 55] -> [..., 3]`` radians (pitch, yaw, roll)."""
        self._check(x)
        return x[..., len(ARKIT_BLENDSHAPES):]

    def vertices_np(self, x, shape=None) -> np.ndarray:
        """Numpy decoding through the rig (fast, no torch): motion ``[..., 55]`` -> posed
        ``[..., V, 3]`` float32 metres; ``shape [K]``: identity coefficients (None: mean face).

        Raises:
            ValueError: the last dimension is not 55.
        """
        x = np.asarray(x, np.float32)
        if x.shape[-1] != self.dim:
            raise ValueError(f"BlendshapeSpace: expected motion [..., {self.dim}], got shape {x.shape}")
        n = len(ARKIT_BLENDSHAPES)
        return self.head(shape).vertices(x[..., :n], x[..., n:])


class VertexSpace(FaceSpace):
    """Per-frame vertex displacements from a template mesh of any fixed topology.

    Motion: the displacements ``[T, V * 3]`` metres (vertex-major, x y z), or with
    ``pca_components`` K > 0 their coefficients ``[T, K]`` in a PCA basis fitted from data
    (:meth:`fit`); then, with ``head_pose``, pitch, yaw, roll (radians). So
    ``dim = (K or 3V) + (3 if head_pose else 0)``.

    ``.npz`` layout: ``vertices [T, V, 3]`` metres (or ``displacements [T, V, 3]`` from the
    clip's template), optional ``template [V, 3]`` (the clip's own rest mesh: displacements are
    taken from it) and ``faces [F, 3]``; with ``head_pose`` also ``head_rotation [T, 3]``.
    :meth:`to_arrays` writes ``vertices`` (template + displacement), ``template`` and ``faces``.

    Persistent state (saved in the checkpoint): ``template [V, 3]``, ``faces [F, 3]``,
    ``pca_mean [3V]``, ``pca_basis [K, 3V]`` (orthonormal rows), ``pca_fitted``; with
    ``identity_components`` J > 0 also the identity model ``identity_mean [3V]``,
    ``identity_basis [J, 3V]`` (orthonormal rows), ``identity_std [J]`` (metres) and
    ``identity_fitted``. Settings hold the sizes, the lip landmarks, the region indices and the
    neck pivot, so a space built from its settings alone has the right shapes and regions and
    takes the rest from the state dict.

    Shape input (identity): a per-sequence template offset ``[..., V, 3]`` metres. A clip's is its
    own ``template`` minus the space's (plus an ``identity`` array, as an exported animation stores
    it; :meth:`identity_from_arrays`). With J > 0 the offsets have a linear model fitted from the
    training clips' neutral faces (PCA, :meth:`fit`): :meth:`identity_coefficients` gives an
    offset's J whitened coordinates (about N(0, 1)), :meth:`identity_offsets` the offset of
    coordinates, and :meth:`shape_coefficients` draws a face from an ``int`` seed.

    Args:
        template: ``[V, 3]`` metres (array), or the path of an ``.npz`` holding ``template``
            (or ``vertices [T, V, 3]``: the first frame) and optionally ``faces``,
            ``lip_landmarks [2]``, ``lips``, ``upper_face``, ``neck_pivot``; None: zeros of ``num_vertices``.
        faces: ``[F, 3]`` triangles (None: from the template file, else ``num_faces`` zeros).
        lip_landmarks: ``(upper, lower)`` lip-midpoint vertex indices (required, unless the
            template file has them).
        lips, upper_face: vertex indices (default: the two lip landmarks; the vertices above
            the upper lip landmark).
        pca_components: K > 0 for a PCA space (fitted with :meth:`fit`), 0 for raw displacements.
        identity_components: J > 0 for an identity model of J components (fitted with :meth:`fit`).
        head_pose: the motion carries a head rotation (else the head pose is zero).
        neck_pivot: ``[3]`` metres (default: the template's centroid).
        num_vertices, num_faces: sizes when ``template`` / ``faces`` come from the state dict.

    Raises:
        DataError: unreadable template file. ValueError: inconsistent sizes or indices.
    """

    name = "vertex"

    def __init__(self, template=None, faces=None, lip_landmarks=None, lips=None, upper_face=None,
                 pca_components: int = 0, head_pose: bool = False, neck_pivot=None,
                 num_vertices: int | None = None, num_faces: int | None = None, identity_components: int = 0):
        source = None
        if isinstance(template, (str, Path)):
            source, template, extra = str(template), *_read_template(template)
            faces = extra.get("faces") if faces is None else faces
            lip_landmarks = extra.get("lip_landmarks") if lip_landmarks is None else lip_landmarks
            lips = extra.get("lips") if lips is None else lips
            upper_face = extra.get("upper_face") if upper_face is None else upper_face
            neck_pivot = extra.get("neck_pivot") if neck_pivot is None else neck_pivot
        if template is None:
            if num_vertices is None:
                raise ValueError("VertexSpace: give a template (array or .npz path) or num_vertices")
            template = np.zeros((int(num_vertices), 3), np.float32)
        template = np.asarray(template, np.float32)
        if template.ndim != 2 or template.shape[1] != 3 or len(template) < 2:
            raise ValueError(f"VertexSpace: template must be [V >= 2, 3] metres, got shape {template.shape}")
        v = len(template)
        if faces is None:
            faces = np.zeros((int(num_faces or 0), 3), np.int64)
        faces = np.asarray(faces, np.int64).reshape(-1, 3)
        if lip_landmarks is None:
            raise ValueError("VertexSpace: lip_landmarks (upper, lower vertex indices) are required")
        up, lo = (int(i) for i in np.asarray(lip_landmarks).reshape(-1)[:2])
        lips = np.asarray([up, lo] if lips is None else lips, np.int64).reshape(-1)
        if upper_face is None:
            upper_face = np.flatnonzero(template[:, 1] > template[up, 1])
        upper_face = np.asarray(upper_face, np.int64).reshape(-1)
        for what, ix in (("lip_landmarks", np.array([up, lo])), ("lips", lips), ("upper_face", upper_face),
                         ("faces", faces.reshape(-1))):
            if len(ix) and (ix.min() < 0 or ix.max() >= v):
                raise ValueError(f"VertexSpace: {what} index out of range for {v} vertices")
        pivot = template.mean(0) if neck_pivot is None else np.asarray(neck_pivot, np.float32).reshape(3)
        super().__init__((up, lo), lips, upper_face, pivot)
        self.template_source = source
        self.num_vertices = v
        self.pca_components = int(pca_components or 0)
        self.identity_components = int(identity_components or 0)
        if self.pca_components < 0 or self.identity_components < 0:
            raise ValueError(f"VertexSpace: pca_components and identity_components must be >= 0, got "
                             f"{pca_components}, {identity_components}")
        self.has_head_pose = bool(head_pose)
        k = self.pca_components or 3 * v
        self.dim = k + (3 if self.has_head_pose else 0)
        self.names = tuple(f"pc{i}" for i in range(k)) if self.pca_components else \
            tuple(f"v{i // 3}.{'xyz'[i % 3]}" for i in range(k))
        if self.has_head_pose:
            self.names += HEAD_POSE_NAMES
        self.register_buffer("template", torch.from_numpy(template.copy()))
        self.register_buffer("faces", torch.from_numpy(faces.copy()))
        if self.pca_components:
            self.register_buffer("pca_mean", torch.zeros(3 * v))
            self.register_buffer("pca_basis", torch.zeros(self.pca_components, 3 * v))
            self.register_buffer("pca_fitted", torch.zeros((), dtype=torch.bool))
        if self.identity_components:
            self.register_buffer("identity_mean", torch.zeros(3 * v))
            self.register_buffer("identity_basis", torch.zeros(self.identity_components, 3 * v))
            self.register_buffer("identity_std", torch.ones(self.identity_components))
            self.register_buffer("identity_fitted", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ settings and fitting
    def settings(self) -> dict:
        """Sizes, lip landmarks, regions, PCA size, head-pose flag and neck pivot (JSON-able);
        the template, faces and PCA basis are state (persistent buffers)."""
        return {"num_vertices": self.num_vertices, "num_faces": int(self.faces.shape[0]),
                "lip_landmarks": list(self.lip_landmarks), "lips": self.lip_indices.tolist(),
                "upper_face": self.upper_face_indices.tolist(), "pca_components": self.pca_components,
                "head_pose": self.has_head_pose, "neck_pivot": [float(p) for p in self.neck_pivot],
                "identity_components": self.identity_components}

    @property
    def needs_fit(self) -> bool:
        """True for a PCA space or identity model whose basis has not been fitted (:meth:`fit`)
        or loaded."""
        return (bool(self.pca_components) and not bool(self.pca_fitted)) or \
            (bool(self.identity_components) and not bool(self.identity_fitted))

    @torch.no_grad()
    def fit(self, clips: Iterable[dict], max_frames: int = 4000, seed: int = 0, max_identities: int = 2000) -> float:
        """Fit the PCA basis (mean and the first K principal directions of the displacements) and
        the identity model (mean and the first J principal directions of the clips' distinct
        neutral-face offsets, :meth:`identity_from_arrays`, with the std of each coordinate), in
        one pass over the clips.

        Frames are subsampled uniformly at random to at most ``max_frames`` (memory
        ``max_frames * 3V`` floats; clips are read one at a time); the first ``max_identities``
        distinct offsets are kept. The principal directions come from the SVD, or with fewer
        rows than coordinates from the eigenvectors of their Gram matrix (the same directions at
        a fraction of the cost).

        Args:
            clips: the named arrays of each clip (``.npz`` layout, e.g.
                :func:`facemotion.data.native.load_motion` of each record).
            max_frames: frame budget of the motion PCA.
            seed: seed of the subsampling.
            max_identities: offsets budget of the identity model.
        Returns:
            the fraction of the displacement variance the K components explain (1.0 without a
            motion PCA); that of the offsets' variance the J identity components explain is
            stored in ``identity_explained``.
        Raises:
            ValueError: neither a PCA nor an identity model, no frames, fewer frames than
                components, fewer distinct offsets than identity components, or bad arrays.
        """
        if not (self.pca_components or self.identity_components):
            raise ValueError("VertexSpace.fit: this space has no PCA and no identity model (pca_components = "
                             "identity_components = 0)")
        rng = np.random.default_rng(seed)
        chunks, keys, bound = [], np.zeros(0), np.inf
        offsets: dict[bytes, np.ndarray] = {}
        for arrays in clips:  # uniform subsample: keep the frames with the smallest random keys
            if self.identity_components and len(offsets) < max_identities:
                offset = self.identity_from_arrays(arrays)
                offset = np.zeros(3 * self.num_vertices, np.float32) if offset is None else offset.reshape(-1)
                offsets.setdefault(offset.tobytes(), offset)
            if not self.pca_components:
                continue
            d = self._displacements(arrays).reshape(-1, 3 * self.num_vertices)
            k = rng.random(len(d))
            chunks.append(d[k < bound])
            keys = np.concatenate([keys, k[k < bound]])
            if len(keys) > 2 * max_frames:
                keep = np.argpartition(keys, max_frames)[:max_frames]
                chunks, keys = [np.concatenate(chunks)[keep]], keys[keep]
                bound = keys.max()
        explained = 1.0
        if self.pca_components:
            frames = np.concatenate(chunks) if chunks else np.zeros((0, 3 * self.num_vertices), np.float32)
            if len(frames) > max_frames:
                frames = frames[np.argpartition(keys, max_frames)[:max_frames]]
            if len(frames) < self.pca_components:
                raise ValueError(f"VertexSpace.fit: {len(frames)} frames for {self.pca_components} components")
            mean, basis, var = _principal_directions(frames, self.pca_components)
            self.pca_mean.copy_(mean)
            self.pca_basis.copy_(basis)
            self.pca_fitted.fill_(True)
            explained = float(var[:self.pca_components].sum() / var.sum().clamp_min(1e-30))
        if self.identity_components:
            if len(offsets) < self.identity_components:
                raise ValueError(f"VertexSpace.fit: {len(offsets)} distinct neutral faces for "
                                 f"{self.identity_components} identity components")
            mean, basis, var = _principal_directions(np.stack(list(offsets.values())), self.identity_components)
            j = self.identity_components
            self.identity_mean.copy_(mean)
            self.identity_basis.copy_(basis)
            self.identity_std.copy_((var[:j] / len(offsets)).sqrt().clamp_min(1e-9).float())
            self.identity_fitted.fill_(True)
            self.identity_explained = float(var[:j].sum() / var.sum().clamp_min(1e-30))
        return explained

    def identity_coefficients(self, offset: torch.Tensor) -> torch.Tensor:
        """Whitened coordinates of neutral-face offsets in the identity model:
        ``[..., V, 3]`` or ``[..., 3V]`` metres -> ``[..., J]`` (about N(0, 1) over the training faces).

        Raises:
            ValueError: no identity model (``identity_components`` 0), or a wrong size.
        """
        self._check_identity_model()
        x = torch.as_tensor(offset, dtype=self.identity_basis.dtype, device=self.identity_basis.device)
        x = x.flatten(-2) if x.shape[-2:] == (self.num_vertices, 3) else x
        if x.shape[-1] != 3 * self.num_vertices:
            raise ValueError(f"VertexSpace: identity offsets must be [..., {self.num_vertices}, 3], got {tuple(x.shape)}")
        return ((x - self.identity_mean) @ self.identity_basis.T) / self.identity_std

    def identity_offsets(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`identity_coefficients` on the model's span: ``[..., J]`` -> offsets
        ``[..., 3V]`` metres.

        Raises:
            ValueError: no identity model.
        """
        self._check_identity_model()
        return self.identity_mean + (coefficients.to(self.identity_std) * self.identity_std) @ self.identity_basis

    def _check_identity_model(self) -> None:
        if not self.identity_components:
            raise ValueError("VertexSpace: no identity model (identity_components = 0)")
        if not bool(self.identity_fitted):
            raise ValueError("VertexSpace: the identity model is not fitted (call fit() or load a checkpoint)")

    def identity_from_arrays(self, arrays: dict) -> np.ndarray | None:
        """A clip's neutral-face offset ``[V, 3]`` float32 metres: its ``template`` minus the
        space's (a dataset clip's own face) plus its ``identity`` (an exported animation's), or
        None when it has neither (or its template is the space's and it has no ``identity``).

        Raises:
            ValueError: a ``template`` or ``identity`` of the wrong size.
        """
        v = self.num_vertices
        offset = None
        if "template" in arrays:
            template = np.asarray(arrays["template"], np.float32)
            if template.shape != (v, 3):
                raise ValueError(f"vertex motion: 'template' has shape {template.shape}, expected [{v}, 3]")
            own = self.template.cpu().numpy()
            offset = None if np.array_equal(template, own) else template - own
        if "identity" in arrays:
            ident = np.asarray(arrays["identity"], np.float32)
            if ident.size != 3 * v:
                raise ValueError(f"vertex motion: 'identity' has {ident.size} values, expected {v} x 3")
            offset = ident.reshape(v, 3) if offset is None else offset + ident.reshape(v, 3)
        return offset

    def shape_coefficients(self, identity) -> np.ndarray | None:
        """A template offset ``[V, 3]`` float32 metres from an array of ``3V`` values, or from an
        ``int`` seed with an identity model (whitened coordinates drawn ~ N(0, 1) with that seed,
        :meth:`identity_offsets`); None passes through.

        Raises:
            ValueError: a seed without an identity model, a wrong size, or non-finite values.
        """
        if isinstance(identity, (int, np.integer)) and self.identity_components:
            z = np.random.default_rng(int(identity)).standard_normal(self.identity_components).astype(np.float32)
            with torch.no_grad():
                return self.identity_offsets(torch.from_numpy(z)).cpu().numpy().reshape(self.num_vertices, 3)
        shape = super().shape_coefficients(identity)
        if shape is None:
            return None
        if shape.size != 3 * self.num_vertices:
            raise ValueError(f"identity: a vertex space's is a template offset [{self.num_vertices}, 3] metres, "
                             f"got {shape.size} values")
        return shape.reshape(self.num_vertices, 3)

    # ------------------------------------------------------------------ arrays
    def _displacements(self, arrays: dict) -> np.ndarray:
        """``[T, V, 3]`` float32 displacements of a clip (from ``displacements``, or ``vertices``
        minus the clip's ``template`` if it has one, else minus the space's)."""
        v = self.num_vertices
        if "displacements" in arrays:
            return _frames(arrays, "displacements", (v, 3), "vertex motion")
        verts = _frames(arrays, "vertices", (v, 3), "vertex motion")
        if "template" in arrays:
            template = np.asarray(arrays["template"], np.float32)
            if template.shape != (v, 3):
                raise ValueError(f"vertex motion: 'template' has shape {template.shape}, expected [{v}, 3]")
        else:
            template = self.template.cpu().numpy()
        return verts - template

    def from_arrays(self, arrays: dict) -> np.ndarray:
        """``vertices``/``displacements [T, V, 3]`` (+ ``head_rotation [T, 3]``) -> ``[T, D]``.

        Raises:
            ValueError: missing or malformed arrays, or a PCA space not fitted yet.
        """
        d = self._displacements(arrays).reshape(-1, 3 * self.num_vertices)
        if self.pca_components:
            if self.needs_fit:
                raise ValueError("VertexSpace: the PCA basis is not fitted (call fit() or load a checkpoint)")
            d = (d - self.pca_mean.cpu().numpy()) @ self.pca_basis.cpu().numpy().T
        if self.has_head_pose:
            head = _frames(arrays, "head_rotation", (3,), "vertex motion")
            if len(head) != len(d):
                raise ValueError(f"vertex motion: {len(d)} frames of vertices but {len(head)} of head_rotation")
            d = np.concatenate([d, head], -1)
        return np.ascontiguousarray(d, np.float32)

    def to_arrays(self, x) -> dict[str, np.ndarray]:
        """``x [T, D]`` -> ``vertices [T, V, 3]`` float32 metres (template + displacement, no head
        pose), ``template [V, 3]``, ``faces [F, 3]`` int32, and ``head_rotation [T, 3]`` radians
        when the space has head pose."""
        x = torch.as_tensor(_numpy(x), device=self.template.device)
        self._check(x)
        with torch.no_grad():
            out = {"vertices": self.expression_vertices(x).cpu().numpy().astype(np.float32),
                   "template": self.template.cpu().numpy().astype(np.float32),
                   "faces": self.faces.cpu().numpy().astype(np.int32)}
            if self.has_head_pose:
                out["head_rotation"] = self.head_pose(x).cpu().numpy().astype(np.float32)
        return out

    def mesh(self, shape=None) -> FaceMesh:
        """The template (plus the offset ``shape [V, 3]``), faces, ``lips``/``upper_face``
        regions and the lip landmarks."""
        neutral = self.template.cpu().numpy().astype(np.float32)
        if shape is not None:
            neutral = neutral + np.asarray(shape, np.float32).reshape(neutral.shape)
        up, lo = self.lip_landmarks
        return FaceMesh(neutral=neutral, faces=self.faces.cpu().numpy().astype(np.int32),
                        regions={"lips": self.lip_indices.cpu().numpy(), "upper_face": self.upper_face_indices.cpu().numpy()},
                        landmarks={"upper_lip_mid": up, "lower_lip_mid": lo},
                        neck_pivot=self.neck_pivot.cpu().numpy())

    # ------------------------------------------------------------------ decoding
    def expression_vertices(self, x: torch.Tensor, indices: torch.Tensor | None = None,
                            shape: torch.Tensor | None = None) -> torch.Tensor:
        """Template + displacement: ``x [..., T, D] -> [..., T, V, 3]`` metres (``[..., T, K, 3]``
        for ``indices [K]``); ``shape [..., V, 3]``: a per-sequence template offset (metres).

        Raises:
            ValueError: the last dimension is not :attr:`dim`.
        """
        self._check(x)
        v = self.num_vertices
        k = self.pca_components or 3 * v
        c = x[..., :k].to(self.template.dtype)
        template = self.template
        if indices is not None:
            indices = torch.as_tensor(indices, dtype=torch.long, device=self.template.device)
            template = template[indices]
        if self.pca_components:
            mean, basis = self.pca_mean.view(v, 3), self.pca_basis.view(k, v, 3)
            if indices is not None:
                mean, basis = mean[indices], basis[:, indices]
            disp = (c @ basis.flatten(1)).unflatten(-1, (basis.shape[1], 3)) + mean
        else:
            disp = c.unflatten(-1, (v, 3))
            if indices is not None:
                disp = disp[..., indices, :]
        out = template + disp
        if shape is not None:
            s = torch.as_tensor(shape, dtype=out.dtype, device=out.device)
            s = s.unflatten(-1, (v, 3)) if s.shape[-1] == 3 * v and s.shape[-2:] != (v, 3) else s
            if indices is not None:
                s = s[..., indices, :]
            out = out + s.unsqueeze(-3)
        return out

    def head_pose(self, x: torch.Tensor) -> torch.Tensor:
        """Head rotation ``x [..., D] -> [..., 3]`` radians, zeros without head pose."""
        self._check(x)
        if self.has_head_pose:
            return x[..., -3:]
        return x.new_zeros(*x.shape[:-1], 3)


def _principal_directions(rows: np.ndarray, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PCA of ``rows [N, F]``: ``(mean [F], basis [k, F] orthonormal rows, variances [min(N, F)])``
    (float32, float32, float64; the variances are the squared singular values of the centred rows,
    largest first). With fewer rows than columns the directions come from the eigenvectors of the
    rows' Gram matrix, else from the SVD."""
    data = torch.from_numpy(np.asarray(rows, np.float64))
    mean = data.mean(0)
    x = data - mean
    if len(x) < x.shape[1]:
        eig, u = torch.linalg.eigh(x @ x.T)
        s, u = eig.flip(0).clamp_min(0).sqrt(), u.flip(1)
        vh = (u[:, :k].T @ x) / s[:k, None].clamp_min(1e-30)
    else:
        _, s, vh = torch.linalg.svd(x, full_matrices=False)
    return mean.float(), vh[:k].float(), s.square()


def _read_template(path) -> tuple[np.ndarray, dict]:
    """``template [V, 3]`` and the optional ``faces``, ``lip_landmarks``, ``lips``, ``upper_face``,
    ``neck_pivot [3]`` of a template ``.npz`` (``template``, or ``vertices [T, V, 3]`` whose first frame is used).

    Raises:
        DataError: the file is missing, unreadable or holds neither array.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile, format and OS errors all mean "not a readable npz"
        raise DataError(f"{path}: not a readable template .npz ({type(exc).__name__}: {exc})") from None
    if "template" in arrays:
        template = arrays["template"]
    elif "vertices" in arrays and np.ndim(arrays["vertices"]) == 3:
        template = arrays["vertices"][0]
    else:
        raise DataError(f"{path}: no 'template [V, 3]' (or 'vertices [T, V, 3]') array")
    extra = {k: arrays[k] for k in ("faces", "lip_landmarks", "lips", "upper_face", "neck_pivot") if k in arrays}
    return np.asarray(template, np.float32), extra


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, np.float32)


SPACES: dict[str, str] = {"blendshape": "facemotion.face.space:BlendshapeSpace",
                          "vertex": "facemotion.face.space:VertexSpace",
                          "latent": "facemotion.face.latent:LatentSpace",
                          "flame": "facemotion.face.flame:FlameSpace"}
"""Space name -> ``"module:Class"``. :func:`build_space` also takes any ``"module:Class"``."""


def space_class(name: str) -> type:
    """The class of a space name (a :data:`SPACES` key or ``"module:Class"``).

    Raises:
        DataError: unknown name or unimportable class.
    """
    spec = SPACES.get(name, name)
    if ":" not in spec:
        raise DataError(f"face space {name!r}: unknown (use one of {sorted(SPACES)} or 'module:Class')")
    module, attr = spec.split(":", 1)
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise DataError(f"face space {name!r}: cannot import {spec} ({exc})") from None


def build_space(name: str | dict, settings: dict | None = None) -> FaceSpace:
    """A face space from its name and settings.

    Args:
        name: ``"blendshape"``, ``"vertex"``, ``"module:Class"``, or a dict
            ``{"name": ..., **settings}`` (the form a recipe config's ``space`` may take).
        settings: keyword arguments of the class (``space.settings()`` of a saved space).
    Returns:
        the space (for a saved space, load the checkpoint's state dict into it next).
    Raises:
        DataError: unknown name, or settings the class does not take.
    """
    if isinstance(name, dict):
        spec = dict(name)
        name = spec.pop("name", None)
        if name is None:
            raise DataError(f"face space {spec}: no 'name'")
        settings = {**spec, **(settings or {})}
    cls = space_class(name)
    try:
        return cls(**(settings or {}))
    except TypeError as exc:
        raise DataError(f"face space {name!r}: bad settings {sorted(settings or {})} ({exc})") from None


@functools.lru_cache(maxsize=1)
def default_blendshape_space() -> BlendshapeSpace:
    """One shared :class:`BlendshapeSpace` on the built-in head (built once; animations read from
    files and built from blendshapes use it)."""
    return BlendshapeSpace()


def space_for_arrays(arrays: dict) -> FaceSpace:
    """The space that reads a saved animation's arrays (``.npz`` layout).

    Uses the ``space`` entry (JSON ``{"name", "settings"}``, written by the exporter) when
    present; otherwise ``blendshapes`` means :class:`BlendshapeSpace` and
    ``vertices``/``displacements`` a :class:`VertexSpace`. A vertex space is rebuilt without
    PCA on the file's own ``template`` and ``faces`` (its motion in the file is vertices).

    Raises:
        DataError: no recognisable motion arrays, or a malformed ``space`` entry.
    """
    described = None
    if "space" in arrays:
        try:
            described = json.loads(str(arrays["space"]))
            name, settings = described["name"], dict(described.get("settings") or {})
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"'space' entry is not a JSON space description ({exc})") from None
    elif "blendshapes" in arrays:
        name, settings = "blendshape", {}
    elif "vertices" in arrays or "displacements" in arrays:
        name, settings = "vertex", {}
    else:
        raise DataError(f"no motion arrays (blendshapes or vertices) among {sorted(arrays)}")
    if name == "blendshape":
        return default_blendshape_space()
    if name == "vertex":
        key = "vertices" if "vertices" in arrays else "displacements"
        if key not in arrays or np.ndim(arrays[key]) != 3:
            raise DataError(f"vertex animation: no '{key}' array [T, V, 3]")
        v = int(np.shape(arrays[key])[1])
        template = arrays.get("template", np.zeros((v, 3), np.float32))
        keep = {k: settings[k] for k in ("lip_landmarks", "lips", "upper_face", "head_pose", "neck_pivot")
                if k in settings}
        keep.setdefault("lip_landmarks", (0, min(1, v - 1)))
        keep["head_pose"] = bool(keep.get("head_pose", False)) and "head_rotation" in arrays
        try:
            return VertexSpace(template=template, faces=arrays.get("faces"), **keep)
        except ValueError as exc:
            raise DataError(f"vertex animation: {exc}") from None
    return build_space(name, settings)
