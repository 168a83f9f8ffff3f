"""The result of animating speech: ARKit blendshape weights and head rotation over time.

:class:`Animation` is what :meth:`facemotion.Animator.generate` returns and what every export
format is written from; :meth:`Animation.load` reads back the ``.npz`` layout (also the motion
files of a native dataset).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from facemotion.errors import DataError
from facemotion.face.arkit import ARKIT_BLENDSHAPES, ARKIT_INDEX

#: formats written by :meth:`Animation.save` unless told otherwise
DEFAULT_FORMATS = ("npz", "glb", "csv", "usd", "mp4")


def head_quaternions(head_rotation: np.ndarray) -> np.ndarray:
    """Unit quaternions ``[T, 4]`` (x, y, z, w) of head rotations ``[T, 3]`` radians.

    Signs are chosen so consecutive quaternions lie in the same hemisphere, so that linear
    (slerp) interpolation between frames takes the short way.
    """
    from scipy.spatial.transform import Rotation

    from facemotion.face.rotation import euler_to_matrix

    q = Rotation.from_matrix(euler_to_matrix(np.asarray(head_rotation, np.float64))).as_quat()
    flip = np.cumsum(np.r_[0, np.sum(q[1:] * q[:-1], axis=1) < 0]) % 2 == 1
    q[flip] *= -1
    return q.astype(np.float32)


@dataclass
class Animation:
    """A facial animation on the built-in head (or any rig with the 52 ARKit morph targets).

    Attributes:
        blendshapes: ``[T, 52]`` float32 ARKit weights in ARKit order
            (:data:`facemotion.face.arkit.ARKIT_BLENDSHAPES`), nominally in [0, 1].
        head_rotation: ``[T, 3]`` float32 radians ``[pitch, yaw, roll]`` about the neck pivot.
        fps: frames per second.
        audio: the speech the animation belongs to (muxed into videos), or None.
        seed: the random seed that produced it, or None.
        identity: ``[K]`` float32 identity coefficients of the built-in head (unitless, about
            N(0, 1); see :meth:`facemotion.face.rig.HeadRig.with_identity`), or None for the
            mean face. Every mesh export and the video use that face.

    Raises:
        DataError: on construction, if shapes disagree, values are not finite or fps <= 0.
    """

    blendshapes: np.ndarray
    head_rotation: np.ndarray
    fps: float
    audio: Path | None = None
    seed: int | None = None
    identity: np.ndarray | None = None

    def __post_init__(self):
        self.blendshapes = np.asarray(self.blendshapes, np.float32)
        self.head_rotation = np.asarray(self.head_rotation, np.float32)
        self.fps = float(self.fps)
        self.audio = Path(self.audio) if self.audio is not None else None
        n = len(ARKIT_BLENDSHAPES)
        shape = self.blendshapes.shape
        if len(shape) != 2 or shape[1] != n or shape[0] < 1:
            raise DataError(f"blendshapes must have shape [T>=1, {n}], got {shape}")
        if self.head_rotation.shape != (len(self.blendshapes), 3):
            raise DataError(f"head_rotation must have shape [{len(self.blendshapes)}, 3], "
                            f"got {self.head_rotation.shape}")
        if not (np.isfinite(self.blendshapes).all() and np.isfinite(self.head_rotation).all()):
            raise DataError("blendshapes / head_rotation contain NaN or infinite values")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise DataError(f"fps must be a positive number, got {self.fps}")
        if self.identity is not None:
            self.identity = np.asarray(self.identity, np.float32)
            if self.identity.ndim != 1 or not np.isfinite(self.identity).all():
                raise DataError(f"identity must be a finite vector [K], got shape {self.identity.shape}")

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return len(self.blendshapes)

    @property
    def duration(self) -> float:
        """Length in seconds (``T / fps``)."""
        return self.num_frames / self.fps

    def head(self):
        """The built-in head with this animation's :attr:`identity` (a
        :class:`facemotion.face.rig.HeadRig`).

        Raises:
            DataError: :attr:`identity` has more coefficients than the head has modes.
        """
        from facemotion.face.rig import load_head_rig

        rig = load_head_rig()
        if self.identity is None:
            return rig
        try:
            return rig.with_identity(self.identity)
        except ValueError as exc:
            raise DataError(str(exc)) from exc

    def vertices(self, rig=None) -> np.ndarray:
        """Decode to meshes: ``[T, V, 3]`` float32 metres on ``rig`` (default: :meth:`head`)."""
        return (rig or self.head()).vertices(self.blendshapes, self.head_rotation)

    def save(self, outdir: str | Path, formats: Iterable[str] = DEFAULT_FORMATS,
             stem: str = "animation", with_vertices: bool = False, size: int = 512,
             rig=None) -> dict[str, Path]:
        """Write the animation in each of ``formats`` into ``outdir`` as ``{stem}.{suffix}``.

        Formats: ``npz``, ``glb``, ``usd``, ``csv`` (ARKit Live Link Face), ``obj`` / ``ply``
        (a directory ``{stem}_obj`` of one mesh per frame) and ``mp4`` (``size`` pixels square,
        with :attr:`audio` muxed in). ``with_vertices`` adds vertices, faces and landmarks to the
        ``.npz``. Every file is written atomically.

        Returns:
            format -> path written.

        Raises:
            DataError: an unknown format.
            AudioError: :attr:`audio` is set but cannot be read (mp4).
        """
        from facemotion.export import output_paths, write

        return {fmt: write(self, fmt, path, with_vertices=with_vertices, size=size, rig=rig)
                for fmt, path in output_paths(outdir, stem, formats).items()}

    def render(self, path: str | Path, size: int = 512, rig=None) -> Path:
        """Render to an H.264 ``.mp4`` of ``size``×``size`` pixels at :attr:`fps`, with audio.

        See :func:`facemotion.render.video.render_video`.
        """
        from facemotion.render.video import render_video

        return render_video(self, path, size=size, rig=rig)

    @classmethod
    def load(cls, path: str | Path) -> "Animation":
        """Read an animation ``.npz`` (as written by :meth:`save` or a native dataset).

        Required arrays: ``blendshapes [T,52]``, ``head_rotation [T,3]``, ``fps``; optional
        ``blendshape_names [52]`` (columns are reordered to ARKit order), ``audio``, ``seed``,
        ``identity [K]``.

        Raises:
            DataError: the file is missing, not an ``.npz``, lacks an array, or holds arrays of
                the wrong shape or non-finite values; the message names the file.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such animation file")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:  # zipfile/pickle/format errors all mean "not a valid npz"
            raise DataError(f"{path}: not a readable .npz animation ({exc})") from exc
        missing = [k for k in ("blendshapes", "head_rotation", "fps") if k not in arrays]
        if missing:
            raise DataError(f"{path}: missing array(s) {missing} (found {sorted(arrays)})")
        blendshapes = arrays["blendshapes"]
        if "blendshape_names" in arrays:
            names = [str(n) for n in arrays["blendshape_names"]]
            if sorted(names) != sorted(ARKIT_BLENDSHAPES) or blendshapes.ndim != 2 \
                    or blendshapes.shape[1] != len(names):
                raise DataError(f"{path}: blendshape_names are not the 52 ARKit names "
                                f"matching the blendshapes columns")
            blendshapes = blendshapes[:, [names.index(n) for n in ARKIT_INDEX]]
        try:
            fps = float(arrays["fps"])
            audio = Path(str(arrays["audio"])) if "audio" in arrays else None
            seed = int(arrays["seed"]) if "seed" in arrays else None
            return cls(blendshapes, arrays["head_rotation"], fps, audio=audio, seed=seed,
                       identity=arrays.get("identity"))
        except (DataError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: {exc}") from exc
