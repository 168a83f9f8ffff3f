"""Drive a user's own ARKit-rigged avatar (a ``.glb``) with an animation: its morph targets by
name, its head (or neck) node by the head rotation.

Names: every morph target of every mesh (``mesh.extras.targetNames``, the convention three.js,
Blender and Babylon write) is matched to an ARKit name (:func:`arkit_name`) regardless of case,
``snake_case``, a side suffix ``_L`` / ``_R`` / ``.L`` / ``.R`` (three.js's ``facecap.glb``, the
ICT face kit, many DCC rigs) or ``Left`` / ``Right``, and a prefix (``blendShape1.jawOpen``,
``Face|jawOpen``, ``BS_jawOpen``); a few other conventions' names are understood too (Unified
Expressions' ``EyeClosedLeft``, ``MouthClosed``, ``CheekPuffLeft``; VRM's ``blinkLeft``). A JSON
mapping ``{"avatar target": "arkitName" or null}`` overrides the matching target by target (null
leaves a target undriven).

Head: the first node named ``head`` (after any prefix such as ``mixamorig:`` or ``J_Bip_C_``),
else ``neck``, turns by the head rotation about its own origin, in the avatar's scene axes (glTF:
+y up, the face toward +z, as :mod:`facemotion.face.rotation` assumes), composed with its rest
rotation and its parents'.

The avatar's file is kept as it is (meshes, materials, textures, skins, its own animations); one
animation ``"speech"`` is added (:func:`facemotion.export.glb.add_speech_animation`) and the
result written atomically. GLB only (a ``.gltf`` with separate files: convert it first).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scipy.spatial.transform import Rotation

from facemotion.errors import DataError, require
from facemotion.export.atomic import atomic_path
from facemotion.face.arkit import ARKIT_BLENDSHAPES

#: other conventions' names (as :func:`_key` spells them) -> ARKit name
ALIASES = {"eyeclosedleft": "eyeBlinkLeft", "eyeclosedright": "eyeBlinkRight",
           "blinkleft": "eyeBlinkLeft", "blinkright": "eyeBlinkRight", "mouthclosed": "mouthClose",
           "cheekpuffleft": "cheekPuff", "cheekpuffright": "cheekPuff",
           "browinnerupleft": "browInnerUp", "browinnerupright": "browInnerUp"}
_ARKIT_KEYS = {name.lower(): name for name in ARKIT_BLENDSHAPES}
#: a side spelt as one letter after a separator: ``eyeBlink_L``, ``eyeBlink.R``
_SIDE = re.compile(r"^(.*?)[._\- ]([LRlr])$")


@dataclass
class RetargetReport:
    """What :func:`retarget_glb` drove on the avatar.

    Attributes:
        path: the animated ``.glb`` written.
        matched: ARKit names that drive at least one morph target, in ARKit order.
        unmatched: ARKit names no morph target of the avatar takes, in ARKit order.
        targets: avatar morph-target name -> the ARKit name driving it.
        ignored: the avatar's morph targets that no ARKit name drives.
        head_node: the node turned by the head rotation, or None (no head or neck node).
    """

    path: Path
    matched: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    targets: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    head_node: str | None = None


def arkit_name(target: str) -> str | None:
    """The ARKit blendshape name an avatar's morph target ``target`` stands for, or None.

    ``"eyeBlink_L"``, ``"EyeBlinkLeft"``, ``"eye_blink_left"``, ``"blendShape1.eyeBlinkLeft"``,
    ``"BS_eyeBlink.L"`` and ``"EyeClosedLeft"`` all give ``"eyeBlinkLeft"``.
    """
    side = _SIDE.match(target)
    if side:
        target = side.group(1) + ("Left" if side.group(2) in "Ll" else "Right")
    tokens = re.split(r"[.|:/]", target)[-1].split("_")
    for start in range(len(tokens)):  # then without leading prefix tokens ("BS_", "Face_")
        key = re.sub(r"[\- ]", "", "".join(tokens[start:])).lower()
        if key in _ARKIT_KEYS or key in ALIASES:
            return _ARKIT_KEYS.get(key) or ALIASES[key]
    return None


def find_head_node(gltf) -> int | None:
    """Index of the avatar's head node (a name ending in ``head`` after any prefix, the shortest
    such), else its neck node, else None."""
    names = [re.sub(r"[_\- ]", "", re.split(r"[.|:]", n.name or "")[-1]).lower() for n in gltf.nodes]
    for part in ("head", "neck"):
        hits = [i for i, n in enumerate(names) if n.endswith(part)]
        if hits:
            return min(hits, key=lambda i: len(names[i]))
    return None


def _load_mapping(mapping) -> tuple[dict[str, str | None], str]:
    """``(avatar target -> ARKit name or None, where it came from)`` of a dict or JSON file."""
    if mapping is None or isinstance(mapping, dict):
        table, source = dict(mapping or {}), "mapping"
    else:
        source = str(mapping)
        try:
            table = json.loads(Path(mapping).read_text())
        except FileNotFoundError:
            raise DataError(f"{mapping}: no such mapping file") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"{mapping}: not a JSON mapping file ({exc})") from None
        if not isinstance(table, dict):
            raise DataError(f"{mapping}: expected a JSON object {{\"avatar target\": \"arkitName\" or null}}")
    wrong = {k: v for k, v in table.items() if v is not None and v not in ARKIT_BLENDSHAPES}
    if wrong:
        raise DataError(f"{source}: not ARKit blendshape names: {wrong} (use Apple's spelling, e.g. jawOpen)")
    return table, source


def _rest_rotation(node) -> Rotation:
    """The node's rest rotation (from ``rotation`` or ``matrix``)."""
    if node.matrix is not None:
        m = np.array(node.matrix, float).reshape(4, 4).T[:3, :3]
        return Rotation.from_matrix(m / np.linalg.norm(m, axis=0))
    return Rotation.from_quat(node.rotation) if node.rotation is not None else Rotation.identity()


def _head_track(gltf, head: int, head_rotation: np.ndarray) -> np.ndarray:
    """``[T, 4]`` local rotations (x, y, z, w) of node ``head`` that turn it by ``head_rotation
    [T, 3]`` radians in scene axes: ``P^-1 R(t) P Q`` with P its parents' rest rotation, Q its own.
    A ``matrix`` on the node is replaced by translation, rotation and scale (animated nodes take
    TRS only)."""
    from facemotion.face.rotation import euler_to_matrix

    parent = {c: i for i, n in enumerate(gltf.nodes) for c in (n.children or [])}
    frame, i = Rotation.identity(), head
    while i in parent:
        i = parent[i]
        frame = _rest_rotation(gltf.nodes[i]) * frame
    node = gltf.nodes[head]
    rest = _rest_rotation(node)
    if node.matrix is not None:
        m = np.array(node.matrix, float).reshape(4, 4).T
        node.translation, node.scale = m[:3, 3].tolist(), np.linalg.norm(m[:3, :3], axis=0).tolist()
        node.rotation, node.matrix = rest.as_quat().tolist(), None
    turn = Rotation.from_matrix(euler_to_matrix(np.asarray(head_rotation, np.float64)))
    quats = (frame.inv() * turn * frame * rest).as_quat()
    quats[np.cumsum(np.r_[0, np.sum(quats[1:] * quats[:-1], axis=1) < 0]) % 2 == 1] *= -1  # short way
    return quats


def retarget_glb(animation, avatar_path: str | Path, out_path: str | Path, mapping=None,
                 overwrite: bool = False) -> RetargetReport:
    """Write ``avatar_path`` animated by ``animation`` to ``out_path`` (module docstring).

    Args:
        animation: a blendshape-space :class:`facemotion.animation.Animation`
            (``blendshapes [T, 52]``, ``head_rotation [T, 3]`` radians, ``fps``).
        avatar_path: the avatar ``.glb`` with ARKit-like morph targets.
        out_path: the ``.glb`` to write.
        mapping: overrides of the name matching: a dict or a JSON file
            ``{"avatar target": "arkitName" or null}``.
        overwrite: replace ``out_path`` if it exists.
    Returns:
        a :class:`RetargetReport` (matched / unmatched ARKit names, the head node).
    Raises:
        DataError: the animation has no blendshapes; the avatar is missing, not a GLB or has no
            morph target an ARKit name drives; the mapping is unreadable, names a target the avatar
            lacks or a value that is not an ARKit name.
        OutputError: ``out_path`` exists and ``overwrite`` is False, or cannot be written there.
    """
    gl = require("pygltflib", "retargeting")
    from facemotion.export.glb import Builder, add_speech_animation
    from facemotion.export.outputs import check_output, output_folder

    avatar_path, out_path = Path(avatar_path), Path(out_path)
    if not animation.provides("blendshapes"):
        raise DataError(f"retargeting drives ARKit blendshapes; a {animation.space_name} animation has none")
    table, source = _load_mapping(mapping)
    if not avatar_path.is_file():
        raise DataError(f"{avatar_path}: no such avatar file")
    with open(avatar_path, "rb") as f:
        if f.read(4) != b"glTF":
            raise DataError(f"{avatar_path}: not a binary glTF (.glb) avatar")
    with output_folder(out_path.parent):
        check_output(out_path, overwrite=overwrite)
        try:
            gltf = gl.GLTF2.load_binary(str(avatar_path))
        except Exception as exc:  # pygltflib raises whatever its parser hits
            raise DataError(f"{avatar_path}: not a readable .glb ({exc})") from None
        report = RetargetReport(path=out_path)
        weights = _morph_tracks(gltf, np.asarray(animation.blendshapes, np.float32), table, report)
        absent = sorted(set(table) - set(report.targets) - set(report.ignored))
        if absent:
            raise DataError(f"{source}: no morph target {absent[:5]} on {avatar_path.name}")
        if not report.targets:
            seen = report.ignored
            raise DataError(f"{avatar_path}: " + (f"none of its {len(seen)} morph targets is an ARKit name "
                                                  f"(e.g. {seen[:3]}); give a mapping file" if seen else
                                                  "the avatar has no morph targets to drive"))
        driven = set(report.targets.values())
        report.matched = [n for n in ARKIT_BLENDSHAPES if n in driven]
        report.unmatched = [n for n in ARKIT_BLENDSHAPES if n not in driven]
        rotations = {}
        head = find_head_node(gltf)
        if head is not None:
            report.head_node = gltf.nodes[head].name
            rotations[head] = _head_track(gltf, head, animation.head_rotation)
        b = Builder(gltf)
        add_speech_animation(b, animation.fps, animation.num_frames, weights, rotations)
        b.finish()
        with atomic_path(out_path) as tmp:
            gltf.save_binary(str(tmp))
    return report


def _morph_tracks(gltf, blendshapes: np.ndarray, table: dict, report: RetargetReport) -> dict[int, np.ndarray]:
    """Node index -> ``[T, K]`` weights of its mesh's K morph targets: the ARKit weight a target
    is mapped to, else the mesh's default weight; fills ``report.targets`` and ``report.ignored``."""
    tracks: dict[int, np.ndarray] = {}
    for mi, mesh in enumerate(gltf.meshes):
        count = len(mesh.primitives[0].targets or []) if mesh.primitives else 0
        if not count:
            continue
        names = list((mesh.extras or {}).get("targetNames") or [])
        names += [f"{mesh.name or mi}:{k}" for k in range(len(names), count)]
        track = np.tile(np.asarray(mesh.weights or [0.0] * count, np.float32), (len(blendshapes), 1))
        for k, target in enumerate(names[:count]):
            arkit = table[target] if target in table else arkit_name(target)
            if arkit is None:
                report.ignored.append(target)
                continue
            report.targets[target] = arkit
            track[:, k] = blendshapes[:, ARKIT_BLENDSHAPES.index(arkit)]
        tracks.update({ni: track for ni, node in enumerate(gltf.nodes) if node.mesh == mi})
    return tracks
