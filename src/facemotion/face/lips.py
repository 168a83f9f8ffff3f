"""Lip geometry: the one lip aperture and the one lip vertex error of the package, and the one
rule that shuts the lips on /p b m/.

The training losses and validation of the recipes, the face spaces, the evaluation metrics
(:mod:`facemotion.metrics`) and the real-speech lip-sync check all call the first two; each
takes numpy arrays or torch tensors (differentiable) and returns the same type. The data
engine's animator and the samplers' lip closure call :func:`close_lips`.
"""

from __future__ import annotations

import numpy as np


def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def lip_aperture(vertices, upper, lower):
    """Mouth opening: the distance between upper- and lower-lip vertices.

    Args:
        vertices: ``[..., V, 3]`` metres (numpy or torch).
        upper, lower: one vertex index each (e.g. the ``upper_lip_mid`` / ``lower_lip_mid``
            landmarks), or equally long index lists ``[P]`` of vertically opposite vertices
            (their distances are averaged).
    Returns:
        ``[...]`` metres, same type as ``vertices`` (torch: differentiable).
    Raises:
        IndexError: an index outside ``[0, V)``.
    """
    if _is_torch(vertices):
        import torch

        up = torch.as_tensor(upper, device=vertices.device).reshape(-1)
        lo = torch.as_tensor(lower, device=vertices.device).reshape(-1)
        return torch.linalg.vector_norm(vertices[..., up, :] - vertices[..., lo, :], dim=-1).mean(-1)
    v = np.asarray(vertices)
    up, lo = np.atleast_1d(upper), np.atleast_1d(lower)
    return np.linalg.norm(v[..., up, :] - v[..., lo, :], axis=-1).mean(-1)


LVE_CONVENTIONS = ("diffposetalk", "faceformer")


def lip_vertex_error(pred, gt, lip_idx, convention: str = "diffposetalk"):
    """Lip vertex error (LVE; MeshTalk, FaceFormer, CodeTalker, DiffPoseTalk Table 1): per frame
    the largest error over the lip vertices, averaged over frames.

    Conventions: ``"diffposetalk"`` (default) takes the plain L2 norm of each lip vertex's error,
    so LVE is a length (DiffPoseTalk reports it in mm); ``"faceformer"`` takes the *squared* L2
    norm, as FaceFormer's and CodeTalker's evaluation code do (``max_l |v_l - v_l'|^2`` per frame,
    then the mean; FaceFormer's tables print it scaled by 1e5 for VOCASET and 1e4 for BIWI).

    Args:
        pred, gt: vertices ``[..., T, V, 3]`` metres (numpy or torch, same shape).
        lip_idx: lip vertex indices ``[L]``.
        convention: ``"diffposetalk"`` or ``"faceformer"``.
    Returns:
        ``[...]`` metres (``"diffposetalk"``) or square metres (``"faceformer"``); a scalar for
        ``[T, V, 3]``, same type as ``pred``.
    Raises:
        ValueError: an unknown convention.
    """
    if convention not in LVE_CONVENTIONS:
        raise ValueError(f"LVE convention {convention!r}: use one of {LVE_CONVENTIONS}")
    power = 2 if convention == "faceformer" else 1
    if _is_torch(pred):
        import torch

        idx = torch.as_tensor(lip_idx, device=pred.device).reshape(-1)
        return ((pred[..., idx, :] - gt[..., idx, :]).norm(dim=-1) ** power).amax(-1).mean(-1)
    idx = np.atleast_1d(lip_idx)
    err = np.linalg.norm(np.asarray(pred)[..., idx, :] - np.asarray(gt)[..., idx, :], axis=-1)
    return (err ** power).max(-1).mean(-1)



CLOSURE_JAW = 0.08
"""At /p b m/ the jaw opens at most this much (ARKit ``jawOpen``); ``mouthClose`` matches it."""
CLOSURE_LIP_RAISE = 0.1
"""At /p b m/ the channels that lift the upper lip (an emotion's sneer) are held at most at this."""
CLOSURE_LIP_ROLL = 0.05
"""At /p b m/ the lips roll in at most this much (``mouthRollLower``, ``mouthRollUpper``): on the
ICT head a lower-lip roll of 0.26 alone parts the lips by ~3 mm."""
_OPEN_LIPS = ("mouthFunnel", "mouthLowerDown", "mouthUpperUp", "tongueOut")
_ROLL_LIPS = ("mouthRollLower", "mouthRollUpper")
_RAISE_LIP = ("mouthShrugUpper", "noseSneer")


def close_lips(weights: np.ndarray, names, closure: np.ndarray, hold: np.ndarray) -> np.ndarray:
    """Shut the lips of ARKit blendshape weights where a bilabial is spoken, in place.

    In the ARKit rig the lips meet when ``mouthClose`` equals ``jawOpen`` (aperture ~
    jawOpen - mouthClose) and nothing parts them: where ``closure`` is c, the jaw is eased
    towards at most :data:`CLOSURE_JAW`, ``mouthClose`` towards the jaw, the lip-parting shapes
    (funnel, lower-lip down, upper-lip up, tongue out) scaled by 1 - c, the upper-lip raisers
    towards at most :data:`CLOSURE_LIP_RAISE`, the lip rolls towards at most
    :data:`CLOSURE_LIP_ROLL`, and ``mouthPress`` raised to at least 0.3 c; on
    the ``hold`` frames all of it holds exactly. Not from the four papers: the data engine's
    viseme rule (:mod:`facemotion.synth.animate`), which the samplers' lip closure also applies.

    Args:
        weights: ``[T, D]`` float, channels named by ``names`` (ARKit names; others untouched).
        names: ``D`` channel names.
        closure: ``[T]`` weight in [0, 1] (1 on a bilabial, easing off around it).
        hold: ``[T]`` bool, or frame indices, where the lips must be shut.
    Returns:
        ``weights`` (changed in place).
    Raises:
        KeyError: ``names`` lacks ``jawOpen`` or ``mouthClose``.
    """
    index = {n: i for i, n in enumerate(names)}

    def channels(prefixes) -> list[int]:
        return [i for n, i in index.items() if any(n.startswith(p) for p in prefixes)]

    jaw, close = index["jawOpen"], index["mouthClose"]
    open_lips, raise_lip, press = channels(_OPEN_LIPS), channels(_RAISE_LIP), channels(("mouthPress",))
    roll = channels(_ROLL_LIPS)
    c = np.asarray(closure)[:, None]
    weights[:, jaw] = weights[:, jaw] * (1 - c[:, 0]) + np.minimum(weights[:, jaw], CLOSURE_JAW) * c[:, 0]
    weights[:, close] = weights[:, close] * (1 - c[:, 0]) + weights[:, jaw] * c[:, 0]
    weights[:, open_lips] *= 1 - c
    weights[:, raise_lip] = weights[:, raise_lip] * (1 - c) + np.minimum(weights[:, raise_lip], CLOSURE_LIP_RAISE) * c
    weights[:, roll] = weights[:, roll] * (1 - c) + np.minimum(weights[:, roll], CLOSURE_LIP_ROLL) * c
    weights[:, press] = np.maximum(weights[:, press], 0.3 * c)
    f = np.flatnonzero(hold) if np.asarray(hold).dtype == bool else np.asarray(hold, int)
    weights[f, jaw] = np.minimum(weights[f, jaw], CLOSURE_JAW)
    weights[f, close] = weights[f, jaw]
    weights[np.ix_(f, open_lips)] = 0.0
    weights[np.ix_(f, raise_lip)] = np.minimum(weights[np.ix_(f, raise_lip)], CLOSURE_LIP_RAISE)
    weights[np.ix_(f, roll)] = np.minimum(weights[np.ix_(f, roll)], CLOSURE_LIP_ROLL)
    return weights


CLOSURE_EASE = 40.0
"""Closure weight ``exp(-CLOSURE_EASE · d)`` at distance d (s) from a bilabial (the animator's)."""


def closure_from_track(track: np.ndarray, fps: float, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Where and how much :func:`close_lips` shuts the lips, from a per-frame bilabial track.

    Args:
        track: ``[T]`` evidence of /p b m/ per frame in [0, 1] (e.g. the bilabial viseme channel
            of the ``phonetic`` audio features).
        fps: frames per second.
        threshold: frames with ``track >= threshold`` hold the lips shut.
    Returns:
        ``closure [T]`` in [0, 1] (1 on held frames, ``exp(-40 d)`` at d seconds from the nearest)
        and ``hold [T]`` bool.
    """
    track = np.asarray(track, np.float64)
    hold = track >= threshold
    if not hold.any():
        return np.zeros(len(track)), hold
    times = np.arange(len(track)) / fps
    held = times[hold]
    k = np.clip(np.searchsorted(held, times), 1, len(held) - 1) if len(held) > 1 else np.zeros(len(times), int)
    d = np.abs(times - held[k])
    if len(held) > 1:
        d = np.minimum(d, np.abs(times - held[k - 1]))
    return np.exp(-CLOSURE_EASE * d), hold


__all__ = ["CLOSURE_EASE", "CLOSURE_JAW", "CLOSURE_LIP_RAISE", "CLOSURE_LIP_ROLL", "LVE_CONVENTIONS", "close_lips",
           "closure_from_track", "lip_aperture", "lip_vertex_error"]
