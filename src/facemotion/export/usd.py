"""OpenUSD (``.usd`` binary crate or ``.usda`` text) with UsdSkel blend shapes, via ``usd-core``.

Layout (``/Head`` is the default prim; Y up, metres, ``timeCodesPerSecond = fps``, time code i
= frame i)::

    /Head                  SkelRoot
    /Head/Skeleton         Skeleton, one joint "head" at the neck pivot
    /Head/Animation        SkelAnimation: time-sampled blendShapeWeights [52] and joint rotation
    /Head/Mesh             Mesh bound to the skeleton (all vertices to "head", weight 1)
    /Head/Mesh/<name>      52 BlendShapes (offsets + pointIndices of the moving vertices)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemotion.errors import DataError, require
from facemotion.export.atomic import atomic_path
from facemotion.face.arkit import ARKIT_BLENDSHAPES
from facemotion.render.video import part_albedo, vertex_normals

JOINT = "head"


def write_usd(anim, path: str | Path, rig=None) -> Path:
    """Write ``anim`` on ``rig`` (default: the built-in head) as a UsdSkel stage.

    ``path`` must end in ``.usd``, ``.usda`` or ``.usdc`` (the suffix picks the encoding).

    Raises:
        DataError: another suffix.
    """
    require("pxr", "USD export")
    from pxr import Gf, Usd, UsdGeom, UsdSkel, Vt

    from facemotion.face.rotation import head_quaternions

    path = Path(path)
    if path.suffix not in (".usd", ".usda", ".usdc"):
        raise DataError(f"{path}: a USD file must end in .usd, .usda or .usdc")
    rig = rig or anim.head()
    pivot = Gf.Vec3d(*np.asarray(rig.neck_pivot, float))
    with atomic_path(path) as tmp:
        stage = Usd.Stage.CreateNew(str(tmp))
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
        UsdGeom.SetStageMetersPerUnit(stage, 1.0)
        stage.SetTimeCodesPerSecond(anim.fps)
        stage.SetFramesPerSecond(anim.fps)
        stage.SetStartTimeCode(0)
        stage.SetEndTimeCode(anim.num_frames - 1)

        root = UsdSkel.Root.Define(stage, "/Head")
        stage.SetDefaultPrim(root.GetPrim())

        skel = UsdSkel.Skeleton.Define(stage, "/Head/Skeleton")
        rest = Gf.Matrix4d().SetTranslate(pivot)
        skel.CreateJointsAttr([JOINT])
        skel.CreateBindTransformsAttr(Vt.Matrix4dArray([rest]))
        skel.CreateRestTransformsAttr(Vt.Matrix4dArray([rest]))

        skel_anim = UsdSkel.Animation.Define(stage, "/Head/Animation")
        skel_anim.CreateJointsAttr([JOINT])
        skel_anim.CreateBlendShapesAttr(list(ARKIT_BLENDSHAPES))
        skel_anim.CreateTranslationsAttr(Vt.Vec3fArray([Gf.Vec3f(pivot)]))
        skel_anim.CreateScalesAttr(Vt.Vec3hArray([Gf.Vec3h(1, 1, 1)]))
        weights_attr = skel_anim.CreateBlendShapeWeightsAttr()
        rotations_attr = skel_anim.CreateRotationsAttr()
        for i, (w, (x, y, z, qw)) in enumerate(zip(anim.blendshapes,
                                                   head_quaternions(anim.head_rotation))):
            weights_attr.Set(Vt.FloatArray.FromNumpy(np.ascontiguousarray(w, np.float32)), i)
            quat = Gf.Quatf(float(qw), float(x), float(y), float(z))
            rotations_attr.Set(Vt.QuatfArray([quat]), i)
        UsdSkel.BindingAPI.Apply(skel.GetPrim()).CreateAnimationSourceRel().SetTargets(
            [skel_anim.GetPath()])

        mesh = UsdGeom.Mesh.Define(stage, "/Head/Mesh")
        faces = np.asarray(rig.faces, np.int32)
        mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(np.asarray(rig.neutral, np.float32)))
        mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(faces), 3, np.int32)))
        mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(faces.reshape(-1)))
        mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
        mesh.CreateDisplayColorPrimvar(UsdGeom.Tokens.vertex).Set(Vt.Vec3fArray.FromNumpy(part_albedo(rig)))
        mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(vertex_normals(rig.neutral, faces)))
        mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
        mesh.CreateExtentAttr(UsdGeom.PointBased.ComputeExtent(mesh.GetPointsAttr().Get()))
        binding = UsdSkel.BindingAPI.Apply(mesh.GetPrim())
        binding.CreateSkeletonRel().SetTargets([skel.GetPath()])
        binding.CreateGeomBindTransformAttr(Gf.Matrix4d(1.0))
        binding.CreateJointIndicesPrimvar(constant=True, elementSize=1).Set(Vt.IntArray([0]))
        binding.CreateJointWeightsPrimvar(constant=True, elementSize=1).Set(Vt.FloatArray([1.0]))

        targets = []
        for name, delta in zip(ARKIT_BLENDSHAPES, np.asarray(rig.deltas, np.float32)):
            moving = np.flatnonzero(np.any(delta != 0, axis=1))
            if len(moving) == 0:  # a shape that moves nothing: store its (zero) offsets densely
                moving = np.arange(len(delta))
            shape = UsdSkel.BlendShape.Define(stage, mesh.GetPath().AppendChild(name))
            shape.CreateOffsetsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(delta[moving])))
            shape.CreatePointIndicesAttr(Vt.IntArray.FromNumpy(moving.astype(np.int32)))
            targets.append(shape.GetPath())
        binding.CreateBlendShapesAttr(list(ARKIT_BLENDSHAPES))
        binding.CreateBlendShapeTargetsRel().SetTargets(targets)
        stage.GetRootLayer().Save()
        del stage
    return path
