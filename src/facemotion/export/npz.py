"""The ``.npz`` animation layout (also the motion files of a native dataset)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facemotion.export.atomic import atomic_path
from facemotion.face.arkit import ARKIT_BLENDSHAPES


def write_npz(anim, path: str | Path, with_vertices: bool = False, rig=None) -> Path:
    """Write ``anim`` as an uncompressed ``.npz`` of named arrays.

    Arrays: ``blendshapes [T,52]`` float32 (ARKit order), ``blendshape_names [52]`` str,
    ``head_rotation [T,3]`` float32 radians ``[pitch, yaw, roll]``, ``fps`` float64 scalar;
    ``audio`` (str path), ``seed`` (int) and ``identity [K]`` float32 when set. With ``with_vertices`` also
    ``vertices [T,V,3]`` float32 metres, ``faces [F,3]`` int32 and ``landmarks`` (a JSON text
    mapping the rig's landmark names to vertex indices). Read back with
    :meth:`facemotion.animation.Animation.load`.
    """
    arrays = {
        "blendshapes": anim.blendshapes.astype(np.float32),
        "blendshape_names": np.array(ARKIT_BLENDSHAPES),
        "head_rotation": anim.head_rotation.astype(np.float32),
        "fps": np.float64(anim.fps),
    }
    if anim.audio is not None:
        arrays["audio"] = np.array(str(Path(anim.audio).resolve()))
    if anim.seed is not None:
        arrays["seed"] = np.int64(anim.seed)
    if anim.identity is not None:
        arrays["identity"] = anim.identity.astype(np.float32)
    if with_vertices:
        rig = rig or anim.head()
        arrays["vertices"] = anim.vertices(rig)
        arrays["faces"] = np.asarray(rig.faces, np.int32)
        arrays["landmarks"] = np.array(json.dumps({k: int(v) for k, v in rig.landmarks.items()}))
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path
