"""The data engine's corpus as vertices: every clip decoded onto the built-in head's face region,
each pseudo-speaker with a face of their own.

The blendshape corpus (:mod:`facemotion.synth.corpus`) animates one head. Vertex-space methods
(DF-3DFace, 3DFacePolicy; the papers train on VOCASET / 3D-HDTF, where every subject has their own
face) need vertices and identities: :func:`write_vertex_corpus` gives each clip its speaker's
neutral face (the ICT head's identity modes at the speaker's coefficients,
:func:`facemotion.synth.speaker.speaker_identity`) and the per-frame displacements of the face
region from it, in the native format of a :class:`~facemotion.face.space.VertexSpace`. The
expression morph targets are displacements shared by all identities (the ICT model's), so the
displacements do not depend on the identity; the identity is each clip's ``template``.

The face region (:func:`face_region`): the skin vertices that some ARKit morph target moves by more
than :data:`REGION_MOTION_M`, with the triangles among them; its lip landmarks, ``lips`` and
``upper_face`` come from the rig's. Layout written: ``OUT/template.npz`` (the mean face region:
``template [V, 3]`` m, ``faces [F, 3]``, ``lip_landmarks [2]``, ``lips``, ``upper_face``, ``neck_pivot [3]`` m —
the ``template`` a vertex space is built from), ``OUT/manifest.jsonl`` (the source's records; ``audio``
points into the source corpus, ``identity`` added) and per clip ``OUT/clips/<shard>/<id>.npz``:
``displacements [T, V, 3]`` float16 metres, ``template [V, 3]`` float32 metres (the speaker's
neutral face region), ``head_rotation [T, 3]`` radians, ``fps``. ``OUT/features`` links to the
source's feature cache (same clips, same frames), so audio features are not computed twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facemotion.atomic import atomic_path
from facemotion.data.native import MANIFEST, load_motion, read_manifest
from facemotion.errors import DataError, OutputError
from facemotion.face.rig import HeadRig, load_head_rig

REGION_MOTION_M = 1e-3
"""A skin vertex belongs to the face region when some morph target at weight 1 moves it this far
(metres)."""


def face_region(rig: HeadRig) -> dict[str, np.ndarray]:
    """The face region of a rig: vertices, triangles and landmarks re-indexed into it.

    Returns:
        ``vertices [V]`` indices into the rig, ``faces [F, 3]`` (triangles of the rig with all
        three corners in the region, re-indexed), ``lip_landmarks [2]`` (upper, lower lip
        midpoints), ``lips`` and ``upper_face`` (region indices).
    Raises:
        DataError: a lip landmark is outside the region (a rig without lip motion).
    """
    moved = np.linalg.norm(rig.deltas, axis=-1).max(0) > REGION_MOTION_M
    inside = np.zeros(rig.num_vertices, bool)
    inside[rig.regions["skin"]] = True
    inside &= moved
    vertices = np.flatnonzero(inside)
    new = np.full(rig.num_vertices, -1, np.int64)
    new[vertices] = np.arange(len(vertices))
    faces = new[rig.faces]
    faces = faces[(faces >= 0).all(1)]
    marks = new[[rig.landmarks["upper_lip_mid"], rig.landmarks["lower_lip_mid"]]]
    if (marks < 0).any():
        raise DataError("face_region: the lip landmarks do not move with any morph target")

    def sub(name):
        idx = new[rig.regions[name]]
        return np.sort(idx[idx >= 0])

    return {"vertices": vertices, "faces": faces, "lip_landmarks": marks, "lips": sub("lips"),
            "upper_face": sub("upper_face")}


def write_vertex_corpus(src: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False) -> list[dict]:
    """Decode a data-engine corpus onto the built-in head's face region with speaker identities.

    Resumable: clips whose ``.npz`` exists are kept; the manifest is written (atomically) last.

    Args:
        src: a corpus written by ``facemotion synth`` (``synth.json``, ``manifest.jsonl``, clips
            with ``blendshapes [T, 52]`` and ``head_rotation [T, 3]``).
        out: the vertex dataset folder to write (layout in the module doc).
        overwrite: replace an existing ``out`` manifest (clips already written are kept).
    Returns:
        the manifest records written.
    Raises:
        DataError: ``src`` is not a data-engine corpus or a clip lacks blendshapes.
        OutputError: ``out`` holds a manifest and ``overwrite`` is false.
    """
    from facemotion.synth.speaker import speaker_pool

    src, out = Path(src), Path(out)
    settings = src / "synth.json"
    if not settings.is_file():
        raise DataError(f"{settings}: missing (is {src} a corpus written by facemotion synth?)")
    if (out / MANIFEST).exists() and not overwrite:
        raise OutputError(f"{out / MANIFEST}: already there (use --overwrite to convert again)")
    source_records = read_manifest(src)
    seed = int(json.loads(settings.read_text())["seed"])
    identity = {s.id: np.asarray(s.identity, np.float32) for s in speaker_pool(seed)}
    rig = load_head_rig()
    region = face_region(rig)
    idx = region["vertices"]
    deltas = np.ascontiguousarray(rig.deltas[:, idx])                    # [52, V, 3]
    basis = np.ascontiguousarray(rig.identity_basis[:, idx])            # [K, V, 3]
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "template.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, template=rig.neutral[idx], neck_pivot=rig.neck_pivot,
                     **{k: v for k, v in region.items() if k != "vertices"})
    link = out / "features"
    if not link.exists() and (src / "features").is_dir():
        link.symlink_to(os.path.relpath(src / "features", out))
    records = []
    for rec in tqdm(source_records, desc="vertex corpus", unit="clip"):
        if rec["speaker"] not in identity:
            raise DataError(f"{src / MANIFEST}: clip {rec['id']}: speaker {rec['speaker']} is not in the "
                            f"corpus' speaker pool (seed {seed})")
        motion = Path(rec["motion"])
        target = out / motion
        if not target.is_file():
            arrays = load_motion(src, rec)
            if "blendshapes" not in arrays:
                raise DataError(f"{src / motion}: no blendshapes (not a data-engine clip)")
            beta = identity[rec["speaker"]]
            template = rig.neutral[idx] + np.tensordot(beta, basis[:len(beta)], axes=1)
            disp = np.tensordot(np.asarray(arrays["blendshapes"], np.float32), deltas, axes=([-1], [0]))
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, displacements=disp.astype(np.float16), template=template.astype(np.float32),
                             head_rotation=np.asarray(arrays["head_rotation"], np.float32),
                             fps=np.float32(rec["fps"]))
        audio = os.path.relpath(src / rec["audio"], out)
        records.append({**rec, "audio": audio, "identity": identity[rec["speaker"]].tolist()})
    with atomic_path(out / MANIFEST) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


__all__ = ["REGION_MOTION_M", "face_region", "write_vertex_corpus"]
