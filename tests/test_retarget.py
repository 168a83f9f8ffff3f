"""Retargeting onto a user's avatar: names matched across conventions, head node turned, the
avatar's own content kept, the Khronos validator satisfied."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facemotion.animation import Animation
from facemotion.errors import DataError, OutputError
from facemotion.export.retarget import arkit_name, retarget_glb
from facemotion.face.arkit import ARKIT_BLENDSHAPES, ARKIT_INDEX
from gltf_helpers import accessor, khronos_issues

gl = pytest.importorskip("pygltflib")

#: morph-target names as in three.js's facecap.glb: a side as _L / _R, except the jaw and mouth
FACECAP_NAMES = [n if n in ("jawLeft", "jawRight", "mouthLeft", "mouthRight")
                 else n[:-4] + "_L" if n.endswith("Left") else n[:-5] + "_R" if n.endswith("Right") else n
                 for n in ARKIT_BLENDSHAPES]
ARMATURE = [-np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)]   # -90 degrees about x (a Z-up rig)
NECK = [0.0, np.sin(np.pi / 12), 0.0, np.cos(np.pi / 12)]  # 30 degrees about y


@pytest.mark.parametrize("target, name", [
    ("eyeBlink_L", "eyeBlinkLeft"), ("mouthSmile_R", "mouthSmileRight"), ("jawLeft", "jawLeft"),
    ("EyeBlinkLeft", "eyeBlinkLeft"), ("JAWOPEN", "jawOpen"), ("mouth_smile_left", "mouthSmileLeft"),
    ("blendShape1.jawOpen", "jawOpen"), ("Face|mouthClose", "mouthClose"), ("BS_eyeBlink.L", "eyeBlinkLeft"),
    ("EyeClosedRight", "eyeBlinkRight"), ("MouthClosed", "mouthClose"), ("blinkLeft", "eyeBlinkLeft"),
    ("Fcl_ALL_Joy", None), ("mouth", None)])
def test_names_of_other_conventions(target, name):
    assert arkit_name(target) == name


def write_avatar(path, names) -> None:
    """A skinned two-triangle avatar: Armature (Z-up rotation) > Hips > Neck (turned 30 degrees) >
    Head joints, a material, and one morph target per name (target k lifts vertex k % 4)."""
    chunks, gltf = [], gl.GLTF2(asset=gl.Asset(version="2.0"))

    def add(data, component, kind, target=None, minmax=False):
        raw = np.ascontiguousarray(data).tobytes()
        offset = sum(len(c) for c in chunks)
        chunks.append(raw + b"\0" * (-len(raw) % 4))
        gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=offset, byteLength=len(raw), target=target))
        acc = gl.Accessor(bufferView=len(gltf.bufferViews) - 1, componentType=component, count=len(data), type=kind)
        if minmax:
            acc.min, acc.max = data.min(0).tolist(), data.max(0).tolist()
        gltf.accessors.append(acc)
        return len(gltf.accessors) - 1

    quad = np.array([[0, 1.5, 0], [0.1, 1.5, 0], [0.1, 1.6, 0], [0, 1.6, 0]], np.float32)
    targets = []
    for k in range(len(names)):
        delta = np.zeros((4, 3), np.float32)
        delta[k % 4, 1] = 0.001 * (k + 1)
        targets.append({"POSITION": add(delta, gl.FLOAT, gl.VEC3, minmax=True)})
    attributes = gl.Attributes(
        POSITION=add(quad, gl.FLOAT, gl.VEC3, gl.ARRAY_BUFFER, minmax=True),
        NORMAL=add(np.tile(np.float32([0, 0, 1]), (4, 1)), gl.FLOAT, gl.VEC3, gl.ARRAY_BUFFER),
        JOINTS_0=add(np.tile(np.uint16([2, 0, 0, 0]), (4, 1)), gl.UNSIGNED_SHORT, gl.VEC4, gl.ARRAY_BUFFER),
        WEIGHTS_0=add(np.tile(np.float32([1, 0, 0, 0]), (4, 1)), gl.FLOAT, gl.VEC4, gl.ARRAY_BUFFER))
    indices = add(np.uint16([0, 1, 2, 0, 2, 3]), gl.UNSIGNED_SHORT, gl.SCALAR, gl.ELEMENT_ARRAY_BUFFER)
    gltf.materials.append(gl.Material(name="skin", pbrMetallicRoughness=gl.PbrMetallicRoughness(
        baseColorFactor=[0.8, 0.6, 0.5, 1.0])))
    gltf.meshes.append(gl.Mesh(name="face", extras={"targetNames": list(names)}, primitives=[
        gl.Primitive(attributes=attributes, indices=indices, material=0, targets=targets)]))
    gltf.nodes = [gl.Node(name="Armature", rotation=ARMATURE, children=[1]),
                  gl.Node(name="Hips", translation=[0, 1.0, 0], children=[2]),
                  gl.Node(name="Neck", translation=[0, 0.3, 0], rotation=NECK, children=[3]),
                  gl.Node(name="Head", translation=[0, 0.1, 0]),
                  gl.Node(name="face", mesh=0, skin=0)]
    gltf.skins.append(gl.Skin(name="rig", joints=[1, 2, 3], skeleton=1,
                              inverseBindMatrices=add(np.tile(np.eye(4, dtype=np.float32).reshape(1, 16), (3, 1)),
                                                      gl.FLOAT, gl.MAT4)))
    gltf.scenes.append(gl.Scene(nodes=[0, 4]))
    gltf.scene = 0
    blob = b"".join(chunks)
    gltf.buffers.append(gl.Buffer(byteLength=len(blob)))
    gltf.set_binary_blob(blob)
    gltf.save_binary(str(path))


@pytest.fixture()
def speech():
    t = np.arange(30) / 30.0
    bs = np.random.default_rng(0).random((30, 52)).astype(np.float32)
    head = np.stack([0.1 * np.sin(6 * t), 0.4 * np.sin(3 * t), 0.05 * t], 1)
    return Animation.from_blendshapes(bs, head, 30.0)


def test_facecap_names_match_52_of_52_and_validate(speech, tmp_path):
    from scipy.spatial.transform import Rotation

    from facemotion.face.rotation import euler_to_matrix

    avatar = tmp_path / "facecap.glb"
    write_avatar(avatar, FACECAP_NAMES + ["extraShape"])
    report = retarget_glb(speech, avatar, tmp_path / "animated.glb")
    assert (len(report.matched), report.unmatched) == (52, [])
    assert report.ignored == ["extraShape"] and report.head_node == "Head"
    issues = khronos_issues(tmp_path / "animated.glb")
    assert issues["numErrors"] == 0, issues["messages"][:5]

    before, after = gl.GLTF2.load(str(avatar)), gl.GLTF2.load(str(report.path))
    assert after.materials == before.materials and after.skins == before.skins
    assert [n.name for n in after.nodes] == [n.name for n in before.nodes]
    np.testing.assert_array_equal(accessor(after, after.skins[0].inverseBindMatrices),
                                  accessor(before, before.skins[0].inverseBindMatrices))
    np.testing.assert_array_equal(accessor(after, after.meshes[0].primitives[0].attributes.POSITION),
                                  accessor(before, before.meshes[0].primitives[0].attributes.POSITION))
    (anim,) = after.animations
    assert anim.name == "speech" and anim.extras == {"fps": 30.0}
    by_target = {(c.target.node, c.target.path): anim.samplers[c.sampler] for c in anim.channels}
    assert set(by_target) == {(4, "weights"), (3, "rotation")}
    np.testing.assert_allclose(accessor(after, by_target[4, "weights"].input)[:, 0], np.arange(30) / 30.0, atol=1e-6)
    weights = accessor(after, by_target[4, "weights"].output).reshape(30, 53)
    np.testing.assert_array_equal(weights[:, :52], speech.blendshapes)  # facecap order is ARKit order
    assert not weights[:, 52].any()

    # the head turns by the animation's rotation in scene axes, under its rotated parents
    quats = accessor(after, by_target[3, "rotation"].output)
    parents = Rotation.from_quat(ARMATURE) * Rotation.from_quat(NECK)
    world = parents * Rotation.from_quat(quats)
    expected = Rotation.from_matrix(euler_to_matrix(speech.head_rotation.astype(np.float64))) * parents
    np.testing.assert_allclose((world * expected.inv()).magnitude(), 0, atol=1e-5)


def test_mapping_file_overrides_and_errors(speech, tmp_path, capsys):
    from facemotion.cli import main

    avatar = tmp_path / "avatar.glb"
    write_avatar(avatar, ["Jaw_Open", "smile", "blendShape1.eyeBlink_L"])
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"smile": "mouthSmileLeft", "Jaw_Open": None}))
    npz = speech.save(tmp_path, formats=["npz"])["npz"]
    out = tmp_path / "out" / "animated.glb"
    assert main(["retarget", str(npz), "--avatar", str(avatar), "-o", str(out), "--mapping", str(mapping)]) == 0
    printed = capsys.readouterr().out
    assert "matched 2/52 ARKit blendshapes" in printed and "not driven: Jaw_Open" in printed
    assert "head rotation on node: Head" in printed and printed.strip().endswith(str(out))
    animated = gl.GLTF2.load(str(out))
    weights = accessor(animated, animated.animations[0].samplers[0].output).reshape(30, 3)
    np.testing.assert_array_equal(weights[:, 1], speech.blendshapes[:, ARKIT_INDEX["mouthSmileLeft"]])
    np.testing.assert_array_equal(weights[:, 2], speech.blendshapes[:, ARKIT_INDEX["eyeBlinkLeft"]])
    assert not weights[:, 0].any()

    with pytest.raises(OutputError, match="already exists"):
        retarget_glb(speech, avatar, out, mapping=mapping)
    with pytest.raises(DataError, match="not ARKit blendshape names"):
        retarget_glb(speech, avatar, out, mapping={"smile": "smileLeft"}, overwrite=True)
    with pytest.raises(DataError, match=r"map.json: no morph target \['frown'\] on avatar.glb"):
        mapping.write_text(json.dumps({"frown": "mouthFrownLeft"}))
        retarget_glb(speech, avatar, out, mapping=mapping, overwrite=True)
    write_avatar(tmp_path / "other.glb", ["smile", "frown"])
    with pytest.raises(DataError, match="none of its 2 morph targets is an ARKit name"):
        retarget_glb(speech, tmp_path / "other.glb", tmp_path / "x.glb")
    (tmp_path / "fake.glb").write_text("not a glb")
    assert main(["retarget", str(npz), "--avatar", str(tmp_path / "fake.glb"), "-o", str(tmp_path / "y.glb")]) == 1
    assert "fake.glb: not a binary glTF (.glb) avatar" in capsys.readouterr().err
    assert not (tmp_path / "x.glb").exists() and not (tmp_path / "y.glb").exists()
