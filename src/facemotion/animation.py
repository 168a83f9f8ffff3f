"""The result of animating speech: a motion in a face space, over time.

:class:`Animation` is what :meth:`facemotion.Animator.generate` returns (one per sample) and
what every export format is written from: ``motion [T, D]`` in its face ``space`` (any
:class:`facemotion.face.space.FaceSpace`), decoded to meshes on demand. Blendshape-space
animations also give ``blendshapes`` and ``head_rotation``. :meth:`Animation.load` reads back
the ``.npz`` layout of any space (also the motion files of a native dataset).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from facemotion.errors import DataError


def head_quaternions(head_rotation) -> np.ndarray:
    """:func:`facemotion.face.rotation.head_quaternions` (``[T, 3]`` radians -> ``[T, 4]`` x, y, z, w),
    imported on first use so that importing this module stays light."""
    from facemotion.face.rotation import head_quaternions as quaternions

    return quaternions(head_rotation)


#: formats written by :meth:`Animation.save` unless told otherwise
DEFAULT_FORMATS = ("npz", "glb", "csv", "usd", "mp4")


class NotInSpace(DataError, AttributeError):
    """The animation's face space does not provide what was asked for (e.g. ``blendshapes`` of
    a vertex-space animation). Also an ``AttributeError``, so ``hasattr`` answers False."""


@dataclass
class Animation:
    """A facial animation: a motion in a face space.

    Attributes:
        motion: ``[T, D]`` float32, the motion in ``space`` (T >= 1 frames, D = ``space.dim``).
        space: its :class:`facemotion.face.space.FaceSpace` (decoding, layout, mesh).
        fps: frames per second.
        audio: the speech the animation belongs to (muxed into videos), or None.
        seed: the random seed that produced it, or None.
        identity: the per-sequence shape input of the space, or None for its mean face: for
            the blendshape space ``[K]`` float32 identity coefficients of the built-in head
            (unitless, about N(0, 1); see :meth:`facemotion.face.rig.HeadRig.with_identity`),
            for a vertex space a template offset ``[V, 3]`` metres. Every mesh export and the
            video use that face.

    Build one from blendshapes with :meth:`from_blendshapes`.

    Raises:
        DataError: on construction, if the motion is not ``[T >= 1, D]`` or not finite, fps <= 0,
            or the identity does not fit the space.
    """

    motion: np.ndarray
    space: object
    fps: float
    audio: Path | None = None
    seed: int | None = None
    identity: np.ndarray | None = None

    def __post_init__(self):
        self.motion = np.asarray(self.motion, np.float32)
        self.fps = float(self.fps)
        self.audio = Path(self.audio) if self.audio is not None else None
        dim = int(self.space.dim)
        shape = self.motion.shape
        if len(shape) != 2 or shape[1] != dim or shape[0] < 1:
            raise DataError(f"motion must have shape [T>=1, {dim}] for {self.space_name}, got {shape}")
        if not np.isfinite(self.motion).all():
            raise DataError("motion contains NaN or infinite values")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise DataError(f"fps must be a positive number, got {self.fps}")
        if self.identity is not None:
            if isinstance(self.identity, (int, np.integer)):
                raise DataError("identity must be an array of shape coefficients (draw a seed's with "
                                "space.shape_coefficients)")
            try:
                self.identity = self.space.shape_coefficients(np.asarray(self.identity, np.float32))
            except ValueError as exc:
                raise DataError(str(exc)) from exc

    @classmethod
    def from_blendshapes(cls, blendshapes, head_rotation, fps: float, audio: Path | None = None,
                         seed: int | None = None, identity=None, space=None) -> "Animation":
        """An animation in the blendshape space.

        Args:
            blendshapes: ``[T, 52]`` ARKit weights in ARKit order (nominally in [0, 1]).
            head_rotation: ``[T, 3]`` radians ``[pitch, yaw, roll]`` about the neck pivot.
            fps, audio, seed, identity: as the attributes.
            space: a :class:`~facemotion.face.space.BlendshapeSpace` (default: the built-in head's).
        Raises:
            DataError: shapes that disagree or non-finite values.
        """
        from facemotion.face.space import default_blendshape_space

        space = space if space is not None else default_blendshape_space()
        try:
            motion = space.from_arrays({"blendshapes": blendshapes, "head_rotation": head_rotation})
        except ValueError as exc:
            raise DataError(str(exc)) from exc
        return cls(motion, space, fps, audio=audio, seed=seed, identity=identity)

    @property
    def space_name(self) -> str:
        """The space's class name (``BlendshapeSpace``, ``VertexSpace``, ...), for messages."""
        return type(self.space).__name__

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return len(self.motion)

    @property
    def duration(self) -> float:
        """Length in seconds (``T / fps``)."""
        return self.num_frames / self.fps

    def provides(self, name: str) -> bool:
        """Whether the space's ``.npz`` layout has the array ``name`` (e.g. ``"blendshapes"``)."""
        return name in self.space.to_arrays(self.motion[:1])

    def _layout_array(self, name: str) -> np.ndarray:
        if not self.provides(name):
            raise NotInSpace(f"a {self.space_name} animation has no {name} "
                             f"(its arrays: {', '.join(sorted(self.space.to_arrays(self.motion[:1])))})")
        return self.space.to_arrays(self.motion)[name]

    @property
    def blendshapes(self) -> np.ndarray:
        """``[T, 52]`` float32 ARKit weights (ARKit order) of a blendshape-space animation.

        Raises:
            NotInSpace: the space has no blendshapes.
        """
        return self._layout_array("blendshapes")

    @property
    def head_rotation(self) -> np.ndarray:
        """``[T, 3]`` float32 radians (pitch, yaw, roll) of a space whose layout has a head rotation.

        Raises:
            NotInSpace: the space's layout has no head rotation.
        """
        return self._layout_array("head_rotation")

    def head(self):
        """The built-in head rig with this animation's :attr:`identity` (a
        :class:`facemotion.face.rig.HeadRig`; blendshape space only).

        Raises:
            NotInSpace: the space is not decoded by a head rig.
        """
        if not hasattr(self.space, "head"):
            raise NotInSpace(f"a {self.space_name} animation has no blendshape head rig")
        try:
            return self.space.head(self.identity)
        except ValueError as exc:
            raise DataError(str(exc)) from exc

    def mesh(self):
        """The rest mesh of the space with :attr:`identity` applied (``neutral [V, 3]`` metres,
        ``faces [F, 3]``, ``regions``, ``landmarks``, ``neck_pivot``): a
        :class:`facemotion.face.space.FaceMesh` or, for the blendshape space, the head rig."""
        try:
            return self.space.mesh(self.identity)
        except ValueError as exc:
            raise DataError(str(exc)) from exc

    def vertices(self, frames=None, rig=None) -> np.ndarray:
        """Decode to posed meshes: ``[T, V, 3]`` float32 metres (head pose applied).

        Args:
            frames: a slice or index array of frames (default: all).
            rig: blendshape space only: decode on this :class:`~facemotion.face.rig.HeadRig`
                (with its own face) instead of the space's head with :attr:`identity`.
        Raises:
            NotInSpace: ``rig`` given for a space without blendshapes.
        """
        sel = slice(None) if frames is None else frames
        if rig is not None:
            return rig.vertices(self.blendshapes[sel], self.head_rotation[sel])
        return self.space.vertices_np(self.motion[sel], self.identity)

    def iter_vertices(self, rig=None, chunk: int = 25) -> Iterator[np.ndarray]:
        """Posed vertices frame by frame (``[V, 3]`` float32 metres), decoded ``chunk`` frames
        at a time so memory stays bounded on long clips (``rig``: see :meth:`vertices`)."""
        if rig is None and hasattr(self.space, "head"):
            rig = self.head()  # built once, not per chunk
        for start in range(0, self.num_frames, chunk):
            yield from self.vertices(slice(start, start + chunk), rig)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The ``.npz`` layout: the space's arrays (``space.to_arrays``), ``fps`` float64,
        ``space`` (JSON text ``{"name", "settings"}``), ``audio`` and ``seed`` when set, and the
        identity as the space stores it (``space.identity_arrays``: ``identity`` when set; FLAME:
        DiffPoseTalk's ``shape [T, n_shape]``)."""
        arrays = dict(self.space.to_arrays(self.motion))
        arrays["fps"] = np.float64(self.fps)
        describe = getattr(self.space, "describe", None)
        if describe is not None:
            arrays["space"] = np.array(json.dumps(describe()))
        if self.audio is not None:
            arrays["audio"] = np.array(str(Path(self.audio).resolve()))
        if self.seed is not None:
            arrays["seed"] = np.int64(self.seed)
        arrays.update(self.space.identity_arrays(self.identity, self.num_frames))
        return arrays

    def save(self, outdir: str | Path, formats: Iterable[str] = DEFAULT_FORMATS,
             stem: str = "animation", with_vertices: bool = False, size: int = 512,
             rig=None) -> dict[str, Path]:
        """Write the animation in each of ``formats`` into ``outdir`` as ``{stem}.{suffix}``.

        Formats: ``npz``, ``obj`` / ``ply`` (a directory ``{stem}_obj`` of one mesh per frame) and
        ``mp4`` (``size`` pixels square, with :attr:`audio` muxed in) for any space; ``glb``,
        ``usd``, ``csv`` (ARKit Live Link Face) for the blendshape space. ``with_vertices`` adds
        vertices, faces and landmarks to the ``.npz``. Every file is written atomically.

        Returns:
            format -> path written.

        Raises:
            DataError: an unknown format, or one that cannot express this space (checked before
                anything is written).
            AudioError: :attr:`audio` is set but cannot be read (mp4).
        """
        from facemotion.export import check_format, output_paths, write

        paths = output_paths(outdir, stem, formats)
        for fmt in paths:
            check_format(self, fmt)
        return {fmt: write(self, fmt, path, with_vertices=with_vertices, size=size, rig=rig)
                for fmt, path in paths.items()}

    def render(self, path: str | Path, size: int = 512, rig=None) -> Path:
        """Render to an H.264 ``.mp4`` of ``size``×``size`` pixels at :attr:`fps`, with audio.

        See :func:`facemotion.render.video.render_video`.
        """
        from facemotion.render.video import render_video

        return render_video(self, path, size=size, rig=rig)

    @classmethod
    def from_arkit_csv(cls, path: str | Path, fps: float | None = None) -> "Animation":
        """A blendshape animation read from a Live Link Face CSV
        (:func:`facemotion.export.arkit_csv.read_arkit_csv`; ``fps`` defaults to the timecodes').

        Raises:
            DataError: the file is missing, lacks a blendshape column or has a malformed row.
        """
        from facemotion.export.arkit_csv import read_arkit_csv

        return cls.from_blendshapes(*read_arkit_csv(path, fps))

    @classmethod
    def load(cls, path: str | Path) -> "Animation":
        """Read an animation ``.npz`` of any space (as written by :meth:`save` or a native dataset).

        The space comes from the ``space`` entry, else from the arrays
        (:func:`facemotion.face.space.space_for_arrays`: ``blendshapes`` + ``head_rotation``
        is the blendshape space, ``vertices`` a vertex space); then ``fps`` and the optional
        ``audio``, ``seed``, ``identity``.

        Raises:
            DataError: the file is missing, not an ``.npz``, lacks an array, or holds arrays of
                the wrong shape or non-finite values; the message names the file.
        """
        from facemotion.face.space import space_for_arrays

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such animation file")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:  # zipfile/pickle/format errors all mean "not a valid npz"
            raise DataError(f"{path}: not a readable .npz animation ({exc})") from exc
        if "fps" not in arrays:
            raise DataError(f"{path}: missing array(s) ['fps'] (found {sorted(arrays)})")
        try:
            space = space_for_arrays(arrays)
            motion = space.from_arrays(arrays)
            fps = float(arrays["fps"])
            audio = Path(str(arrays["audio"])) if "audio" in arrays else None
            seed = int(arrays["seed"]) if "seed" in arrays else None
            return cls(motion, space, fps, audio=audio, seed=seed, identity=space.identity_from_arrays(arrays))
        except (DataError, TypeError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: {exc}") from exc
