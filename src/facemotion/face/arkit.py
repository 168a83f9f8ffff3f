"""The 52 ARKit blendshape names in Apple's order (as in Live Link Face CSV files).

The order is the one of ``ARFaceAnchor.BlendShapeLocation`` as written by Apple's
Live Link Face app (eyes, jaw, mouth, brows, cheeks, nose, tongue).  Every array
with a trailing dimension of 52 in facemotion uses this order.
"""

ARKIT_BLENDSHAPES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawRight", "jawLeft", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthRight", "mouthLeft",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
assert len(ARKIT_BLENDSHAPES) == 52

#: name -> column index
ARKIT_INDEX: dict[str, int] = {n: i for i, n in enumerate(ARKIT_BLENDSHAPES)}


def mirror_name(name: str) -> str:
    """Return the name of the left/right mirror of blendshape ``name``.

    ``"eyeBlinkLeft" -> "eyeBlinkRight"``, ``"jawLeft" -> "jawRight"``,
    ``"mouthLeft" -> "mouthRight"``; unpaired names (``"jawOpen"``) map to themselves.

    Raises:
        KeyError: ``name`` is not one of :data:`ARKIT_BLENDSHAPES`.
    """
    if name not in ARKIT_INDEX:
        raise KeyError(f"not an ARKit blendshape name: {name!r}")
    if name.endswith("Left"):
        return name[:-4] + "Right"
    if name.endswith("Right"):
        return name[:-5] + "Left"
    return name


#: head rotation channels in Live Link Face's names (radians in facemotion: pitch, yaw, roll)
HEAD_POSE_NAMES: tuple[str, ...] = ("headPitch", "headYaw", "headRoll")

#: index i -> index of its mirror (itself for unpaired shapes), shape [52]
ARKIT_MIRROR: tuple[int, ...] = tuple(ARKIT_INDEX[mirror_name(n)] for n in ARKIT_BLENDSHAPES)
