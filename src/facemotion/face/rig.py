"""The built-in head rig: the ICT Face Model with the 52 ARKit blendshapes as linear morph targets.

The mesh, its expression shapes and identity modes come from the ICT Face Model Light (USC
Institute for Creative Technologies, MIT licence, shipped beside the data as
``ICT_FACEKIT_LICENSE``), converted by ``scripts/build_head_rig.py`` into package data
(``facemotion/face/data/head_rig.npz``). Parts: skin (face, head and neck), mouth socket, eye
sockets, gums, tongue, teeth, two eyeballs and eyelashes. The mesh is exactly mirror-symmetric
under ``x -> -x`` (:attr:`HeadRig.mirror`), and every "...Right" morph target is the mirror of
its "...Left" twin.

Coordinates: metres, +y up, +z out of the face, +x toward the subject's left.
"""
from __future__ import annotations

import dataclasses
import functools
from importlib import resources
from pathlib import Path

import numpy as np

from facemotion.errors import DataError
from facemotion.face.arkit import ARKIT_BLENDSHAPES
from facemotion.face.rotation import euler_to_matrix

LANDMARK_NAMES = (
    "upper_lip_mid", "lower_lip_mid", "lip_corner_left", "lip_corner_right",
    "upper_eyelid_left", "lower_eyelid_left", "upper_eyelid_right", "lower_eyelid_right",
    "nose_tip", "chin",
)
"""Named landmark vertices; the lip midpoints lie on the inner lip line (Multi-PIE 62 and 66)."""


@dataclasses.dataclass(frozen=True, eq=False)
class HeadRig:
    """A linear blendshape head: ``vertices = neutral + sum_i w_i * deltas[i]``, then head rotation.

    Attributes:
        neutral: ``[V, 3]`` float32 metres, the neutral (closed-mouth) head.
        faces: ``[F, 3]`` int32 triangles, counter-clockwise seen from outside.
        deltas: ``[52, V, 3]`` float32 metres, morph targets in ARKit order
            (:data:`facemotion.face.arkit.ARKIT_BLENDSHAPES`), each at weight 1.
        identity_names: ``K`` identity mode names (``identity000``, ...).
        identity_basis: ``[K, V, 3]`` float32 metres per unit coefficient: ICT's PCA modes, each
            at about one standard deviation of its light-stage scans; sample identities as
            ``beta ~ N(0, I)``.
        neck_pivot: ``[3]`` float32 metres, centre of head rotation.
        landmarks: name -> vertex index (see :data:`LANDMARK_NAMES`).
        multipie68: ``[68]`` int32 vertex indices of the 68 Multi-PIE facial landmarks.
        regions: name -> ``[n]`` int32 vertex indices: ``lips``, ``upper_face``, ``eyes``, ``jaw``;
            the parts ``skin``, ``mouth_socket``, ``eye_socket``, ``gums``, ``tongue``, ``teeth``,
            ``eyeball_left/right``, ``eyelashes``; and ``eyelid_left/right``,
            ``iris_left/right``, ``pupil_left/right`` (eyeball vertices, for colouring).
        mirror: ``[V]`` int32, index of each vertex's mirror image under ``x -> -x``.
        eye_centers: ``[2, 3]`` float32 metres, left then right eyeball centre.
        eye_radius: eyeball radius in metres.
    """

    neutral: np.ndarray
    faces: np.ndarray
    deltas: np.ndarray
    identity_names: tuple[str, ...]
    identity_basis: np.ndarray
    neck_pivot: np.ndarray
    landmarks: dict[str, int]
    multipie68: np.ndarray
    regions: dict[str, np.ndarray]
    mirror: np.ndarray
    eye_centers: np.ndarray
    eye_radius: float

    @property
    def num_vertices(self) -> int:
        """Number of vertices ``V``."""
        return int(self.neutral.shape[0])

    def with_identity(self, beta) -> "HeadRig":
        """A copy whose neutral is ``neutral + sum_k beta[k] * identity_basis[k]``.

        The morph targets are kept (they are displacements and transfer to nearby identities);
        the eye centres follow the eyeballs.

        Args:
            beta: ``[K]`` identity parameters (unitless, about N(0, 1)); fewer than K are
                zero-padded.

        Raises:
            ValueError: more than K parameters or not a 1-D vector.
        """
        beta = np.asarray(beta, dtype=np.float32)
        k = len(self.identity_names)
        if beta.ndim != 1 or beta.shape[0] > k:
            raise ValueError(f"with_identity: expected at most {k} parameters as a vector, got shape {beta.shape}")
        offset = np.tensordot(beta, self.identity_basis[: beta.shape[0]], axes=1)
        neutral = (self.neutral + offset).astype(np.float32)
        eyes = np.stack([offset[self.regions["eyeball_left"]].mean(0), offset[self.regions["eyeball_right"]].mean(0)])
        return dataclasses.replace(self, neutral=neutral, eye_centers=(self.eye_centers + eyes).astype(np.float32))

    def identity_coefficients(self, identity) -> np.ndarray | None:
        """Identity coefficients ``[K]`` float32 from a seed or an array.

        Args:
            identity: None (the mean face: returns None), an ``int`` seed (draws
                ``beta ~ N(0, I)`` with ``numpy.random.default_rng(seed)``) or an array of at most
                K coefficients (unitless).

        Raises:
            ValueError: an array that is not a finite vector of at most K values.
        """
        if identity is None:
            return None
        k = len(self.identity_names)
        if isinstance(identity, (int, np.integer)):
            return np.random.default_rng(int(identity)).standard_normal(k).astype(np.float32)
        beta = np.asarray(identity, np.float32)
        if beta.ndim != 1 or beta.shape[0] > k or not np.isfinite(beta).all():
            raise ValueError(f"identity: expected at most {k} finite coefficients as a vector, got shape {beta.shape}")
        return beta

    def vertices(self, blendshapes, head_rotation=None) -> np.ndarray:
        """Posed vertices (numpy).

        Args:
            blendshapes: ``[..., 52]`` ARKit weights (usually in [0, 1]; not clipped).
            head_rotation: ``[..., 3]`` radians (pitch, yaw, roll) about :attr:`neck_pivot`, or None.

        Returns:
            ``[..., V, 3]`` float32 metres.

        Raises:
            ValueError: the last dimension of ``blendshapes`` is not 52 or of ``head_rotation`` not 3.
        """
        w = np.asarray(blendshapes, dtype=np.float32)
        if w.shape[-1] != len(ARKIT_BLENDSHAPES):
            raise ValueError(f"HeadRig.vertices: expected [..., 52] blendshape weights, got shape {w.shape}")
        v = self.neutral + np.tensordot(w, self.deltas, axes=([-1], [0]))
        if head_rotation is not None:
            r = np.asarray(head_rotation, dtype=np.float32)
            if r.shape[-1] != 3:
                raise ValueError(f"HeadRig.vertices: expected [..., 3] head rotation, got shape {r.shape}")
            rot = euler_to_matrix(r).astype(np.float32)
            v = np.matmul(v - self.neck_pivot, np.swapaxes(rot, -1, -2)) + self.neck_pivot
        return v.astype(np.float32)


def _rig_path() -> Path:
    return Path(str(resources.files("facemotion.face") / "data" / "head_rig.npz"))


def read_head_rig(path) -> HeadRig:
    """Read a rig file written by ``scripts/build_head_rig.py``.

    The file stores each morph target only at the vertices it moves (``delta_counts [52]``,
    ``delta_vertices [N]``, ``delta_values [N, 3]`` float16); they are expanded here to the dense
    ``[52, V, 3]`` float32 :attr:`HeadRig.deltas`.

    Raises:
        DataError: the file is missing, corrupt or lacks an array.
    """
    path = Path(path)
    try:
        with np.load(path) as z:
            a = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read head rig ({e})") from e
    try:
        names = tuple(str(n) for n in a["blendshape_names"])
        if names != ARKIT_BLENDSHAPES:
            raise DataError(f"{path}: blendshape names are not the 52 ARKit names in Apple's order")
        neutral = a["neutral"].astype(np.float32)
        deltas = np.zeros((len(names), len(neutral), 3), np.float32)
        shape_of = np.repeat(np.arange(len(names)), a["delta_counts"])
        deltas[shape_of, a["delta_vertices"]] = a["delta_values"]
        return HeadRig(
            neutral=neutral, faces=a["faces"], deltas=deltas,
            identity_names=tuple(str(n) for n in a["identity_names"]),
            identity_basis=a["identity_basis"].astype(np.float32),
            neck_pivot=a["neck_pivot"],
            landmarks={str(n): int(i) for n, i in zip(a["landmark_names"], a["landmark_indices"])},
            multipie68=a["multipie68"],
            regions={k[len("region_"):]: v for k, v in a.items() if k.startswith("region_")},
            mirror=a["mirror"], eye_centers=a["eye_centers"], eye_radius=float(a["eye_radius"]),
        )
    except (KeyError, IndexError, ValueError) as e:
        raise DataError(f"{path}: not a head rig file ({type(e).__name__}: {e})") from e


@functools.lru_cache(maxsize=1)
def load_head_rig() -> HeadRig:
    """The built-in head rig (package data, read once and cached; treat its arrays as read-only).

    Raises:
        DataError: the package data file is missing or corrupt (rebuild it with
            ``python scripts/build_head_rig.py``).
    """
    rig = read_head_rig(_rig_path())
    for arr in (rig.neutral, rig.faces, rig.deltas, rig.identity_basis, rig.mirror):
        arr.setflags(write=False)
    return rig
