"""Motion metrics of the speech-driven 3D facial animation literature (numpy, pure functions).

Every function takes arrays (numpy, or anything ``np.asarray`` accepts, e.g. CPU torch tensors)
and returns a Python float. Vertices are in metres; the unit of each result is stated.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema

from facemotion.face.lips import lip_aperture, lip_vertex_error


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    return pred, gt


def lve(pred, gt, lip_idx, convention: str = "diffposetalk") -> float:
    """Lip vertex error: per frame, the largest error over the lip vertices, averaged over frames.

    Richard et al. 2021 (MeshTalk), as used by FaceFormer, CodeTalker and DiffPoseTalk (Table 1,
    in mm). ``convention="diffposetalk"`` takes the plain L2 norm (a length);
    ``"faceformer"`` the maximum of the *squared* error, as FaceFormer's and CodeTalker's code.
    Computed by :func:`facemotion.face.lips.lip_vertex_error` (the one LVE of the package).

    Args:
        pred, gt: vertices ``[T, V, 3]`` in metres.
        lip_idx: lip vertex indices ``[L]`` (e.g. ``HeadRig.regions["lips"]``).
        convention: ``"diffposetalk"`` or ``"faceformer"``.
    Returns:
        metres (``"diffposetalk"``) or square metres (``"faceformer"``).
    Raises:
        ValueError: if the shapes differ, or an unknown convention.
    """
    return float(lip_vertex_error(*_pair(pred, gt), lip_idx, convention))


def mve(pred, gt) -> float:
    """Mean vertex error: the L2 error averaged over all vertices and frames.

    Args:
        pred, gt: vertices ``[T, V, 3]`` in metres.
    Returns:
        metres.
    Raises:
        ValueError: if the shapes differ.
    """
    pred, gt = _pair(pred, gt)
    return float(np.linalg.norm(pred - gt, axis=-1).mean())


def _region_dynamics(vertices: np.ndarray, template: np.ndarray, idx, squared: bool = True) -> float:
    """Mean over the ``idx`` vertices of the temporal std of their displacement from the template
    (squared L2 norm as CodeTalker's FDD, or the L2 norm as DF-3DFace's NLDD)."""
    motion = vertices[:, idx] - template[idx]  # [T, U, 3]
    magnitude = np.sum(motion**2, axis=-1)  # [T, U] squared displacement
    if not squared:
        magnitude = np.sqrt(magnitude)
    return float(magnitude.std(axis=0).mean())


def fdd(pred, gt, upper_idx, template) -> float:
    """Upper-face dynamics deviation (Xing et al. 2023, CodeTalker; DiffPoseTalk Table 1).

    For each upper-face vertex, the motion magnitude per frame is the squared distance from the
    template (as in CodeTalker's evaluation code); its standard deviation over time measures
    how much that vertex moves. FDD is the absolute difference between the ground truth's and
    the prediction's mean (over upper-face vertices) of those standard deviations.

    Args:
        pred, gt: vertices ``[T, V, 3]`` in metres.
        upper_idx: upper-face vertex indices ``[U]`` (e.g. ``HeadRig.regions["upper_face"]``).
        template: neutral vertices ``[V, 3]`` in metres.
    Returns:
        square metres (a std of squared distances).
    Raises:
        ValueError: if the shapes differ.
    """
    pred, gt = _pair(pred, gt)
    template = np.asarray(template, dtype=np.float64)
    return abs(_region_dynamics(gt, template, upper_idx) - _region_dynamics(pred, template, upper_idx))


def nldd(pred, gt, lip_idx, template) -> float:
    """Non-lip dynamics deviation (DF-3DFace, Park et al. 2023, Sec. "Evaluation Metrics", after
    CodeTalker's FDD): for every vertex outside the lips, the L2 norm of its displacement from the
    template per frame; its standard deviation over time; the mean over those vertices; NLDD is the
    absolute difference of that mean between ground truth and prediction.

    Args:
        pred, gt: vertices ``[T, V, 3]`` in metres.
        lip_idx: lip vertex indices ``[L]``; every other vertex counts.
        template: neutral vertices ``[V, 3]`` in metres.
    Returns:
        metres (a std of distances).
    Raises:
        ValueError: if the shapes differ, or no vertex is outside the lips.
    """
    pred, gt = _pair(pred, gt)
    template = np.asarray(template, dtype=np.float64)
    others = np.setdiff1d(np.arange(gt.shape[1]), np.asarray(lip_idx).reshape(-1))
    if not len(others):
        raise ValueError("nldd: every vertex is a lip vertex")
    return abs(_region_dynamics(gt, template, others, squared=False)
               - _region_dynamics(pred, template, others, squared=False))


def mouth_aperture(vertices, upper_idx, lower_idx) -> np.ndarray:
    """Mouth opening per frame: distance between paired upper- and lower-lip vertices, averaged
    (:func:`facemotion.face.lips.lip_aperture`, the one lip aperture of the package).

    Args:
        vertices: ``[T, V, 3]`` in metres.
        upper_idx, lower_idx: one vertex index each, or equally long index lists ``[P]`` of
            vertically opposite upper/lower lip vertices.
    Returns:
        ``[T]`` metres.
    """
    return lip_aperture(np.asarray(vertices, dtype=np.float64), upper_idx, lower_idx)


def mod(pred, gt, upper_idx, lower_idx) -> float:
    """Mouth opening difference (DiffPoseTalk, Sec. 4.2): mean over frames of the absolute
    difference between the predicted and ground-truth mouth openings (:func:`mouth_aperture`).

    Args:
        pred, gt: vertices ``[T, V, 3]`` in metres.
        upper_idx, lower_idx: upper/lower lip vertex index (or paired index lists).
    Returns:
        metres.
    Raises:
        ValueError: if the shapes differ.
    """
    pred, gt = _pair(pred, gt)
    return float(np.abs(mouth_aperture(pred, upper_idx, lower_idx)
                        - mouth_aperture(gt, upper_idx, lower_idx)).mean())


def head_motion_beats(head_pose, smooth: float = 1.0) -> np.ndarray:
    """Kinematic beats of head motion: frames where the angular speed has a local minimum.

    As the motion beats of Li et al. 2022 (Bailando): speed = norm of the frame-to-frame change
    of the pose, Gaussian-smoothed (``smooth`` frames), beats = its strict local minima.

    Args:
        head_pose: ``[T, 3]`` radians (pitch, yaw, roll).
        smooth: standard deviation of the Gaussian smoothing, frames (0 = none).
    Returns:
        beat frame indices ``[B]`` (int).
    """
    pose = np.asarray(head_pose, dtype=np.float64)
    speed = np.linalg.norm(np.diff(pose, axis=0), axis=-1)  # speed[t] between frames t and t+1
    if smooth > 0:
        speed = gaussian_filter1d(speed, smooth)
    return argrelextrema(speed, np.less)[0] + 1


def beat_alignment(pred_pose, gt_pose, sigma: float = 3.0, smooth: float = 1.0) -> float:
    """Beat alignment (BA) of head motion, DiffPoseTalk's variant of Li et al. 2022.

    Bailando's BA scores motion beats against music beats; DiffPoseTalk instead scores the beats
    of the predicted head motion against those of the ground-truth head motion:
    ``BA = mean over ground-truth beats b of exp(-min_p (p - b)^2 / (2 sigma^2))`` with ``p`` the
    predicted beats (:func:`head_motion_beats`), distances in frames.

    Args:
        pred_pose, gt_pose: head rotation ``[T, 3]`` radians.
        sigma: tolerance in frames (Bailando uses 3).
        smooth: beat-detection smoothing in frames.
    Returns:
        score in [0, 1] (1 = every ground-truth beat matched exactly); 0 if the prediction has
        no beat; NaN if the ground truth has none.
    Raises:
        ValueError: if the shapes differ.
    """
    pred, gt = _pair(pred_pose, gt_pose)
    gt_beats = head_motion_beats(gt, smooth)
    pred_beats = head_motion_beats(pred, smooth)
    if len(gt_beats) == 0:
        return float("nan")
    if len(pred_beats) == 0:
        return 0.0
    dist = np.abs(gt_beats[:, None] - pred_beats[None, :]).min(axis=1)
    return float(np.exp(-(dist**2) / (2 * sigma**2)).mean())


def diversity(samples) -> float:
    """Diversity of K samples generated from the same input (DiffPoseTalk Table 2, after
    Ren et al. 2022): the distance between two samples is the per-frame L2 distance averaged over
    frames; the score is its mean over all K(K-1)/2 pairs.

    DiffPoseTalk reports it separately for expression and head pose: pass upper-face expression
    vertices ``[K, T, U, 3]`` and head rotations ``[K, T, 3]`` in two calls (see
    :func:`sample_diversity`).

    Args:
        samples: ``[K, T, ...]`` (trailing dimensions are flattened per frame), K >= 2.
    Returns:
        mean pairwise distance, in the unit of the samples.
    Raises:
        ValueError: if K < 2.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.shape[0] < 2:
        raise ValueError(f"diversity needs at least 2 samples, got {x.shape[0]}")
    x = x.reshape(x.shape[0], x.shape[1], -1)
    return float(np.mean([np.linalg.norm(x[i] - x[j], axis=-1).mean()
                          for i, j in combinations(range(len(x)), 2)]))


def multimodality(samples, point_size: int | None = None) -> float:
    """Multimodality (Guo et al. 2020, Action2Motion; DF-3DFace Table 3): K samples generated for
    one input are split into two subsets of K/2 (first half, second half); the score is the mean
    L2 distance between paired samples ``i`` and ``K/2 + i``, each sample flattened whole
    (all frames and trailing dimensions as one vector), or with ``point_size`` P the mean L2
    distance between their points of P coordinates (e.g. P = 3: vertices, frame by frame), which
    does not grow with the number of frames or vertices.

    Args:
        samples: ``[K, ...]`` with K even and >= 2 (DF-3DFace: 2 x 100), any unit.
        point_size: None (whole samples) or P (the trailing size must divide by it).
    Returns:
        mean paired distance, in the unit of the samples.
    Raises:
        ValueError: K odd or < 2.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.shape[0] < 2 or x.shape[0] % 2:
        raise ValueError(f"multimodality needs an even number (>= 2) of samples, got {x.shape[0]}")
    x = x.reshape(x.shape[0], -1, point_size or x[0].size)
    half = x.shape[0] // 2
    return float(np.linalg.norm(x[:half] - x[half:], axis=-1).mean())


def sample_diversity(space, motions) -> dict[str, float]:
    """Expression and head-pose diversity of K motions sampled for the same audio.

    Args:
        space: a :class:`facemotion.face.space.FaceSpace`.
        motions: ``[K, T, D]`` torch tensor in that space.
    Returns:
        ``{"expression": metres (upper-face vertices, zero head pose), "head_pose": radians}``.
    """
    import torch

    with torch.no_grad():
        expr = space.expression_vertices(motions, space.upper_face_indices)
        pose = space.head_pose(motions)
    return {"expression": diversity(expr.cpu().numpy()), "head_pose": diversity(pose.cpu().numpy())}


def seam_ratio(samples, boundaries, width: int = 2) -> float:
    """Seam ratio of motion generated window by window: the mean frame-to-frame change at the
    window boundaries over the mean change elsewhere (1.0 = seamless; a jump at every hand-over
    gives > 1).

    The change at frame ``t`` is ``|x_t - x_{t-1}|`` (L2 over the trailing dimensions). Frames
    ``b .. b + width - 1`` of every boundary ``b`` count as "at the boundary"; frames 1 .. T-1 not
    among them as "elsewhere". Measured for facemotion's long-audio issue (a jump of about two
    frames where DiffPoseTalk's autoregressive windows hand over, §3.2.1).

    Args:
        samples: ``[K, T, ...]`` motion of K samples, any unit.
        boundaries: frame indices where a new window starts (``0 < b < T``; others are ignored).
        width: frames per boundary that count as the seam.
    Returns:
        the ratio (unitless), NaN when there is no boundary inside ``(0, T)``.
    """
    x = np.asarray(samples, dtype=np.float64)
    x = x.reshape(x.shape[0], x.shape[1], -1)
    change = np.linalg.norm(np.diff(x, axis=1), axis=-1)  # [K, T-1], change[:, t-1] = |x_t - x_{t-1}|
    seam = np.zeros(x.shape[1], dtype=bool)
    for b in boundaries:
        seam[max(int(b), 1):min(int(b) + width, x.shape[1])] = True
    seam = seam[1:]
    if not seam.any() or seam.all():
        return float("nan")
    return float(change[:, seam].mean() / max(change[:, ~seam].mean(), 1e-12))


def seam_ratios(space, motions, boundaries, width: int = 2) -> dict[str, float]:
    """Seam ratio (:func:`seam_ratio`) of expression and of head pose for K motions of one input.

    Args:
        space: a :class:`facemotion.face.space.FaceSpace`.
        motions: ``[K, T, D]`` torch tensor in that space.
        boundaries: frames where a window starts.
    Returns:
        ``{"expression": ratio of the lip and upper-face vertex change (zero head pose),
        "head_pose": ratio of the head speed (radians per frame)}``.
    """
    import torch

    with torch.no_grad():
        index = torch.cat([space.lip_indices, space.upper_face_indices])
        expr = space.expression_vertices(motions, index)
        pose = space.head_pose(motions)
    return {"expression": seam_ratio(expr.cpu().numpy(), boundaries, width),
            "head_pose": seam_ratio(pose.cpu().numpy(), boundaries, width)}
