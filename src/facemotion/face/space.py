"""Face spaces: the motion representations the denoisers work in, and their decoders to vertices.

A face space maps a motion ``x [B, T, D]`` to mesh vertices ``[B, T, V, 3]`` (metres) and a
head pose ``[B, T, 3]`` (radians, pitch/yaw/roll about the space's neck pivot; see
:mod:`facemotion.face.rotation`). :class:`FaceSpace` is the generic base (FLAME, vertex
and latent spaces derive from it); :class:`BlendshapeSpace` is the 52 ARKit weights plus
head rotation decoded through the built-in head rig (:func:`facemotion.face.rig.load_head_rig`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from facemotion.face.arkit import ARKIT_BLENDSHAPES
from facemotion.face.rig import HeadRig, load_head_rig
from facemotion.face.rotation import euler_to_matrix

HEAD_POSE_NAMES = ("headPitch", "headYaw", "headRoll")


class FaceSpace(nn.Module):
    """Base class of face spaces (an ``nn.Module`` so its mesh tensors follow ``.to(device)``).

    Subclasses set ``dim`` and ``names`` and implement :meth:`expression_vertices` and
    :meth:`head_pose`. Mesh buffers are non-persistent: they are rebuilt from the space's
    source, never stored in checkpoints.

    Args:
        lip_landmarks: ``(upper, lower)`` vertex indices of the lip midpoints.
        lip_indices: ``[n]`` vertex indices of the lips (for lip losses / LVE).
        upper_face_indices: ``[m]`` vertex indices of the upper face (for FDD).
        neck_pivot: ``[3]`` metres, centre of head rotation.
    """

    dim: int
    names: tuple[str, ...]

    def __init__(self, lip_landmarks, lip_indices, upper_face_indices, neck_pivot):
        super().__init__()
        self.lip_landmarks = (int(lip_landmarks[0]), int(lip_landmarks[1]))
        self.register_buffer("lip_indices", torch.as_tensor(np.asarray(lip_indices), dtype=torch.long), persistent=False)
        self.register_buffer("upper_face_indices", torch.as_tensor(np.asarray(upper_face_indices), dtype=torch.long),
                             persistent=False)
        self.register_buffer("neck_pivot", torch.as_tensor(np.asarray(neck_pivot), dtype=torch.float32), persistent=False)

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.dim:
            raise ValueError(f"{type(self).__name__}: expected motion [..., {self.dim}], got shape {tuple(x.shape)}")

    def expression_vertices(self, x: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Vertices with zero head pose: ``x [B, T, D] -> [B, T, V, 3]`` metres.

        With ``indices [K]`` (vertex indices) only those vertices are decoded: ``[B, T, K, 3]``;
        training losses use this to avoid decoding the whole mesh every step.
        """
        raise NotImplementedError

    def head_pose(self, x: torch.Tensor) -> torch.Tensor:
        """Head rotation: ``x [B, T, D] -> [B, T, 3]`` radians (pitch, yaw, roll)."""
        raise NotImplementedError

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Posed vertices ``x [B, T, D] -> [B, T, V, 3]`` metres (differentiable, batched).

        The expression vertices are rotated by ``euler_to_matrix(head_pose(x))`` about the
        neck pivot. Any leading dimensions work (``[..., D] -> [..., V, 3]``).

        Raises:
            ValueError: the last dimension is not :attr:`dim`.
        """
        self._check(x)
        v = self.expression_vertices(x)
        rot = euler_to_matrix(self.head_pose(x)).to(v.dtype)
        p = self.neck_pivot.to(v.dtype)
        return torch.einsum("...ij,...vj->...vi", rot, v - p) + p

    def lip_aperture(self, vertices: torch.Tensor) -> torch.Tensor:
        """Distance between the upper and lower lip midpoints: ``[..., V, 3] -> [...]`` metres."""
        up, lo = self.lip_landmarks
        return torch.linalg.vector_norm(vertices[..., up, :] - vertices[..., lo, :], dim=-1)


class BlendshapeSpace(FaceSpace):
    """52 ARKit blendshape weights then head pitch, yaw, roll (radians): ``dim = 55``.

    Decodes through a :class:`~facemotion.face.rig.HeadRig` (the built-in one by default):
    ``v = neutral + sum_i w_i * deltas_i``, rotated about the rig's neck pivot.

    Args:
        rig: the head rig, default :func:`~facemotion.face.rig.load_head_rig`.
    """

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

    @staticmethod
    def join(blendshapes, head_rotation):
        """Concatenate ``[..., 52]`` weights and ``[..., 3]`` radians into a motion ``[..., 55]`` (numpy or torch)."""
        if isinstance(blendshapes, torch.Tensor):
            return torch.cat([blendshapes, head_rotation.to(blendshapes.dtype)], -1)
        return np.concatenate([blendshapes, np.asarray(head_rotation, blendshapes.dtype)], -1)

    @staticmethod
    def split(x):
        """Inverse of :meth:`join`: ``[..., 55] -> ([..., 52] weights, [..., 3] radians)``."""
        return x[..., : len(ARKIT_BLENDSHAPES)], x[..., len(ARKIT_BLENDSHAPES):]

    def expression_vertices(self, x: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Vertices with zero head pose: ``x [..., 55] -> [..., V, 3]`` metres
        (``[..., K, 3]`` for the vertex ``indices [K]`` only)."""
        self._check(x)
        w = x[..., : len(ARKIT_BLENDSHAPES)].to(self.deltas.dtype)
        if indices is None:
            return self.neutral + (w @ self.deltas).unflatten(-1, (self.num_vertices, 3))
        deltas = self.deltas.view(len(ARKIT_BLENDSHAPES), self.num_vertices, 3)[:, indices]
        return self.neutral[indices] + (w @ deltas.flatten(1)).unflatten(-1, (len(indices), 3))

    def head_pose(self, x: torch.Tensor) -> torch.Tensor:
        """Head rotation ``x [..., 55] -> [..., 3]`` radians (pitch, yaw, roll)."""
        self._check(x)
        return x[..., len(ARKIT_BLENDSHAPES):]

    def vertices_np(self, blendshapes, head_rotation=None) -> np.ndarray:
        """Numpy decoding without autograd: ``[T, 52]`` weights, ``[T, 3]`` radians -> ``[T, V, 3]`` metres."""
        return self.rig.vertices(blendshapes, head_rotation)
