"""Mesh sequences: a directory with one ``frame_00000.obj`` (or ``.ply``) per frame."""

from __future__ import annotations

from pathlib import Path

import trimesh

from facemotion.export.atomic import atomic_path


def write_mesh_sequence(anim, directory: str | Path, fmt: str = "obj", rig=None) -> Path:
    """Write one mesh per frame of ``anim`` into ``directory`` as ``frame_{i:05d}.{fmt}``.

    Vertices are metres (``anim.vertices(rig)``, head rotation applied; ``rig`` defaults to
    ``anim.head()``); ``fmt`` is ``"obj"`` or ``"ply"`` (binary). The directory is replaced as a
    whole, atomically.
    """
    rig = rig or anim.head()
    directory = Path(directory)
    with atomic_path(directory, directory=True) as tmp:
        for i, verts in enumerate(anim.vertices(rig)):
            mesh = trimesh.Trimesh(verts, rig.faces, process=False)
            mesh.export(tmp / f"frame_{i:05d}.{fmt}")
    return directory


def read_mesh_sequence(directory: str | Path) -> list[trimesh.Trimesh]:
    """Read the frames written by :func:`write_mesh_sequence`, in frame order."""
    files = sorted(p for p in Path(directory).glob("frame_*") if p.suffix in (".obj", ".ply"))
    return [trimesh.load(p, process=False, force="mesh") for p in files]
