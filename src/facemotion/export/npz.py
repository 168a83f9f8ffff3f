"""The ``.npz`` animation layout (also the motion files of a native dataset)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facemotion.export.atomic import atomic_path


def write_npz(anim, path: str | Path, with_vertices: bool = False, rig=None) -> Path:
    """Write ``anim`` as an uncompressed ``.npz`` of named arrays (any face space).

    Arrays (:meth:`facemotion.animation.Animation.to_arrays`): the space's layout (blendshape
    space: ``blendshapes [T,52]`` float32 in ARKit order, ``blendshape_names [52]`` str,
    ``head_rotation [T,3]`` float32 radians ``[pitch, yaw, roll]``; vertex space:
    ``vertices [T,V,3]`` float32 metres, ``template [V,3]``, ``faces [F,3]``, and
    ``head_rotation`` if it has head pose), ``fps`` float64 scalar, ``space`` (JSON text: the
    space's name and settings); ``audio`` (str path), ``seed`` (int) and ``identity`` when set.
    With ``with_vertices`` also the posed ``vertices [T,V,3]`` float32 metres (blendshape
    space; a vertex space's layout has them already), ``faces [F,3]`` int32 and ``landmarks``
    (a JSON text mapping the mesh's landmark names to vertex indices). Read back with
    :meth:`facemotion.animation.Animation.load`.

    Args:
        rig: blendshape space only: decode ``with_vertices`` on this head rig.
    """
    arrays = anim.to_arrays()
    if with_vertices:
        mesh = rig or anim.mesh()
        if "vertices" not in arrays:
            arrays["vertices"] = anim.vertices(rig=rig)
        arrays["faces"] = np.asarray(mesh.faces, np.int32)
        arrays["landmarks"] = np.array(json.dumps({k: int(v) for k, v in mesh.landmarks.items()}))
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path
