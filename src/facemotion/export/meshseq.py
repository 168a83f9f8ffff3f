"""Mesh sequences: a directory with one ``frame_00000.obj`` (or ``.ply``) per frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemotion.errors import require
from facemotion.export.atomic import atomic_path

trimesh = require("trimesh", "OBJ/PLY export")


def write_mesh_sequence(anim, directory: str | Path, fmt: str = "obj", rig=None) -> Path:
    """Write one mesh per frame of ``anim`` into ``directory`` as ``frame_{i:05d}.{fmt}``.

    Works for any face space: vertices are metres (:meth:`~facemotion.animation.Animation.iter_vertices`,
    head rotation applied) on the faces of ``anim.mesh()`` (``rig``: blendshape space only, a
    head rig to decode on instead); ``fmt`` is ``"obj"`` or ``"ply"`` (binary). The directory is
    replaced as a whole, atomically.
    """
    faces = np.asarray((rig or anim.mesh()).faces)
    directory = Path(directory)
    with atomic_path(directory, directory=True) as tmp:
        for i, verts in enumerate(anim.iter_vertices(rig)):
            mesh = trimesh.Trimesh(verts, faces, process=False)
            mesh.export(tmp / f"frame_{i:05d}.{fmt}")
    return directory


def read_mesh_sequence(directory: str | Path) -> list[trimesh.Trimesh]:
    """Read the frames written by :func:`write_mesh_sequence`, in frame order."""
    files = sorted(p for p in Path(directory).glob("frame_*") if p.suffix in (".obj", ".ply"))
    return [trimesh.load(p, process=False, force="mesh") for p in files]
