"""Binary glTF 2.0 (``.glb``): the head mesh with its 52 ARKit morph targets, animated.

Scene graph: ``head_pivot`` (translation = neck pivot, animated ``rotation``) → ``head``
(the mesh, translation = -neck pivot), so the head turns about the neck. The mesh carries
per-vertex part colours (``COLOR_0``: skin, eyes, teeth, gums, tongue, mouth, lashes; see
:func:`facemotion.render.video.part_albedo`) and ``POSITION``/``NORMAL`` morph targets (sparse
accessors) named in ``mesh.extras.targetNames`` (the convention three.js, Blender and Babylon
read); one animation ``"speech"`` (:func:`add_speech_animation`) drives the morph ``weights`` and
the pivot ``rotation`` at the animation fps (``LINEAR``, time in seconds; glTF has no frame rate,
so it is in the animation's ``extras.fps`` for importers that take one, e.g. as Blender's scene
fps). Written with ``pygltflib`` (trimesh drops morph targets); checked against the Khronos glTF
validator. :mod:`.retarget` adds the same animation to a user's avatar.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemotion.errors import require
from facemotion.export.atomic import atomic_path
from facemotion.face.arkit import ARKIT_BLENDSHAPES
from facemotion.render.video import part_albedo, vertex_normals

gl = require("pygltflib", "GLB export")


class Builder:
    """Packs arrays into buffer 0 of ``gltf`` (the GLB binary chunk) and creates an accessor for
    each, after whatever that buffer already holds (so an avatar's own data stays in place).
    Call :meth:`finish` once at the end."""

    def __init__(self, gltf: gl.GLTF2):
        self.gltf = gltf
        blob = (gltf.binary_blob() or b"") if gltf.buffers else b""
        self.chunks: list[bytes] = [blob + b"\0" * ((-len(blob)) % 4)]
        self.offset = len(self.chunks[0])

    def _view(self, data: np.ndarray, target: int | None = None) -> int:
        raw = np.ascontiguousarray(data).tobytes()
        self.gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=self.offset,
                                                   byteLength=len(raw), target=target))
        pad = (-len(raw)) % 4
        self.chunks.append(raw + b"\0" * pad)
        self.offset += len(raw) + pad
        return len(self.gltf.bufferViews) - 1

    def add(self, data: np.ndarray, kind: str, target: int | None = None,
            minmax: bool = False, sparse: bool = False) -> int:
        """Append ``data`` ``[N, ...]`` (float32 or uint32) as an accessor of type ``kind``.

        ``sparse`` stores only the rows that are not all zero (glTF sparse accessor), which
        keeps morph targets that move a small part of the head small. Returns the index.
        """
        flat = data.reshape(len(data), -1)
        comp = gl.UNSIGNED_INT if data.dtype == np.uint32 else gl.FLOAT
        acc = gl.Accessor(componentType=comp, count=len(data), type=kind)
        if not sparse:
            acc.bufferView = self._view(data, target)
        else:
            acc.byteOffset = None  # only meaningful with a bufferView
            rows = np.flatnonzero(np.any(flat != 0, axis=1)).astype(np.uint32)
            if len(rows):  # an accessor with neither bufferView nor sparse reads as zeros
                acc.sparse = gl.Sparse(
                    count=len(rows),
                    indices=gl.AccessorSparseIndices(bufferView=self._view(rows),
                                                     componentType=gl.UNSIGNED_INT),
                    values=gl.AccessorSparseValues(bufferView=self._view(data[rows])))
        if minmax:
            acc.min = flat.min(axis=0).astype(float).tolist()
            acc.max = flat.max(axis=0).astype(float).tolist()
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def finish(self) -> None:
        """Store the packed data as buffer 0 (the binary chunk) of the glTF."""
        blob = b"".join(self.chunks)
        if not self.gltf.buffers:
            self.gltf.buffers.append(gl.Buffer())
        self.gltf.buffers[0].byteLength = len(blob)
        self.gltf.set_binary_blob(blob)


def add_speech_animation(b: Builder, fps: float, num_frames: int, weights: dict[int, np.ndarray],
                         rotations: dict[int, np.ndarray]) -> None:
    """Append the animation ``"speech"`` (``LINEAR``, keyframe times ``i / fps`` seconds, the fps
    in its ``extras``) to ``b.gltf``.

    Args:
        weights: node index -> ``[T, K]`` morph weights of the node's mesh (all its K targets).
        rotations: node index -> ``[T, 4]`` quaternions ``(x, y, z, w)`` of the node's rotation.
    """
    times = b.add(np.arange(num_frames, dtype=np.float32) / np.float32(fps), gl.SCALAR, minmax=True)
    samplers, channels = [], []
    tracks = [(node, "weights", b.add(np.asarray(w, np.float32).reshape(-1), gl.SCALAR))
              for node, w in weights.items()]
    tracks += [(node, "rotation", b.add(np.asarray(q, np.float32), gl.VEC4)) for node, q in rotations.items()]
    for node, what, output in tracks:
        channels.append(gl.AnimationChannel(sampler=len(samplers),
                                            target=gl.AnimationChannelTarget(node=node, path=what)))
        samplers.append(gl.AnimationSampler(input=times, output=output, interpolation="LINEAR"))
    b.gltf.animations.append(gl.Animation(name="speech", samplers=samplers, channels=channels,
                                          extras={"fps": float(fps)}))


def write_glb(anim, path: str | Path, rig=None) -> Path:
    """Write ``anim`` on ``rig`` (default: the built-in head) as an animated ``.glb``.

    Morph weights are ``anim.blendshapes [T,52]``; the head rotation ``[T,3]`` radians becomes
    the pivot node's quaternion track. Keyframe times are ``i / fps`` seconds.
    """
    from facemotion.face.rotation import head_quaternions

    rig = rig or anim.head()
    gltf = gl.GLTF2(asset=gl.Asset(generator="facemotion", version="2.0"))
    b = Builder(gltf)
    neutral = np.asarray(rig.neutral, np.float32)
    faces = np.asarray(rig.faces, np.uint32)
    base_normals = vertex_normals(neutral, faces)
    attrs = gl.Attributes(POSITION=b.add(neutral, gl.VEC3, gl.ARRAY_BUFFER, minmax=True),
                          NORMAL=b.add(base_normals, gl.VEC3, gl.ARRAY_BUFFER),
                          COLOR_0=b.add(part_albedo(rig), gl.VEC3, gl.ARRAY_BUFFER))
    targets = []
    for delta in np.asarray(rig.deltas, np.float32):
        dn = vertex_normals(neutral + delta, faces) - base_normals
        targets.append({"POSITION": b.add(delta, gl.VEC3, minmax=True, sparse=True),
                        "NORMAL": b.add(dn, gl.VEC3, sparse=True)})
    indices = b.add(faces.reshape(-1), gl.SCALAR, gl.ELEMENT_ARRAY_BUFFER)
    gltf.materials.append(gl.Material(   # colours per part come from COLOR_0
        name="head", doubleSided=False,
        pbrMetallicRoughness=gl.PbrMetallicRoughness(baseColorFactor=[1.0, 1.0, 1.0, 1.0],
                                                     metallicFactor=0.0, roughnessFactor=0.6)))
    gltf.meshes.append(gl.Mesh(
        name="head", weights=[0.0] * len(ARKIT_BLENDSHAPES),
        extras={"targetNames": list(ARKIT_BLENDSHAPES)},
        primitives=[gl.Primitive(attributes=attrs, indices=indices, material=0,
                                 targets=targets, mode=gl.TRIANGLES)]))
    pivot = np.asarray(rig.neck_pivot, float).tolist()
    gltf.nodes.append(gl.Node(name="head_pivot", translation=pivot, children=[1]))
    gltf.nodes.append(gl.Node(name="head", mesh=0, translation=[-x for x in pivot]))
    gltf.scenes.append(gl.Scene(name="facemotion", nodes=[0]))
    gltf.scene = 0

    add_speech_animation(b, anim.fps, anim.num_frames, weights={1: anim.blendshapes},
                         rotations={0: head_quaternions(anim.head_rotation)})
    b.finish()
    path = Path(path)
    with atomic_path(path) as tmp:
        gltf.save_binary(str(tmp))
    return path
