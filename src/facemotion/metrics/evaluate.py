"""``facemotion eval``: a trained recipe against the ground truth of a native dataset split.

For every clip of the split (sorted by id; the first ``max_clips``) the recipe draws K samples
for the clip's audio (style: none, or the clip's own ground truth), and the clip gets:

* on the first sample, against the ground truth: LVE, MVE, FDD and MOD on zero-head-pose
  vertices (as DiffPoseTalk Table 1, where methods without head motion are scored alike; head
  pose would otherwise dominate every vertex error) and BA on the head pose;
* on all K samples, for clips longer than one window of the recipe's sampler: the seam ratios
  (:func:`facemotion.metrics.motion.seam_ratio`) of expression and head speed where windows
  hand over (1.0 is seamless);
* across the K samples (K >= 2): the diversity score of DiffPoseTalk Table 2, separately for
  the upper-face expression and the head pose (:func:`facemotion.metrics.sample_diversity`),
  for the motion of the whole face and, for a model that generates identities (DF-3DFace), for
  the identity (the neutral faces it draws); and the lip aperture variation: mean over frames of
  the standard deviation across samples of the lip aperture, which should stay small next to
  the mean aperture (the lips follow the audio; only style, head motion and face should vary).

:func:`evaluate_multimodality` gives DF-3DFace's Table 3 for a model that holds references:
the multimodality of identity, motion, pose and mesh with the clip's own identity and head pose
given as references or not.

Pooling: each figure is the mean over clips (every clip weighs equally); clips where a figure
is undefined (BA when the ground truth has no head-motion beat, diversity with one sample) are
left out of that figure, and the number of clips that count is reported with it. With ``runs``
R > 1 every clip is sampled R times (seeds ``seed``, ``seed + 1``, ...): a clip's figure is its
mean over the runs, and the 95% interval is given over clips and over the R runs' means.

Another system's outputs (:func:`evaluate_predictions`: a folder of ``<clip id>.npy``, FaceFormer's
``[T, V * 3]`` metres) are scored on the vertex figures against a vertex dataset (VOCASET / BIWI
converted by ``facemotion convert``). :func:`write_tables` writes one row per model as Markdown,
CSV and JSON, naming each figure's convention (:data:`METRICS`).

Each clip is sampled with a generator seeded with ``seed``, so a clip's figures do not depend
on which other clips are evaluated. Clips are decoded one at a time (memory is bounded by the
longest clip).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from facemotion.audio.io import load_audio
from facemotion.data.features import feature_dirs, load_features
from facemotion.data.native import load_motion, read_manifest
from facemotion.data.windows import motion_vectors
from facemotion.errors import DataError, FacemotionError
from facemotion.metrics.motion import (beat_alignment, diversity, fdd, lve, mod, multimodality, mve, nldd,
                                       sample_diversity, seam_ratios)

METRICS: dict[str, tuple[str, str]] = {
    "lve_mm": ("LVE", "mm; lip vertex error, DiffPoseTalk convention: per frame the largest L2 error over the lip "
                      "vertices, mean over frames (lower is better)"),
    "lve_faceformer_1e-5m2": ("LVE (FaceFormer)", "1e-5 m^2; FaceFormer/CodeTalker convention: per frame the largest "
                                                  "squared L2 error over the lip vertices, mean over frames"),
    "mve_mm": ("MVE", "mm; mean vertex error (lower is better)"),
    "fdd_1e-5m2": ("FDD", "1e-5 m^2; upper-face dynamics deviation, CodeTalker convention (std over time of the "
                          "squared displacement from the template; lower is better)"),
    "nldd_mm": ("NLDD", "mm; non-lip dynamics deviation, DF-3DFace convention (std over time of the displacement "
                        "norm of every non-lip vertex; lower is better)"),
    "mod_mm": ("MOD", "mm; mouth opening difference, DiffPoseTalk (lower is better)"),
    "ba": ("BA", "head-motion beat alignment in [0, 1] (higher is better)"),
    "div_expression_mm": ("Diversity exp", "mm; upper-face expression diversity across samples"),
    "div_head_pose_deg": ("Diversity head", "degrees; head pose diversity across samples"),
    "div_motion_mm": ("Diversity motion", "mm; motion diversity across samples: displacement of every vertex "
                                          "(zero head pose, no identity), per frame"),
    "div_identity_mm": ("Diversity identity", "mm; diversity of the neutral faces a model draws across samples "
                                              "(per vertex; models that generate identities)"),
    "aperture_std_mm": ("Aperture std", "mm; mean over frames of the std of the lip aperture across "
                                        "samples (should stay small)"),
    "aperture_mean_mm": ("Aperture mean", "mm; mean lip aperture of the samples"),
    "seam_expression": ("Seam exp", "ratio; frame-to-frame change of the lip and upper-face vertices where "
                                    "windows hand over, over elsewhere (1 = seamless; clips longer than "
                                    "one window)"),
    "seam_head": ("Seam head", "ratio; head speed where windows hand over, over elsewhere (1 = seamless)"),
}
"""Per-clip figure → (short label, unit and meaning). Metrics on the first sample: LVE, MVE,
FDD, MOD (zero-head-pose vertices), BA (head pose)."""

POOLING = ("mean over clips (each clip weighs equally; with several runs a clip's figure is its mean over "
           "the runs); clips where a figure is undefined are left out of it; ci95 = 1.96 * std / sqrt(n) over "
           "clips, ci95_runs the same over the runs' means")


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


@torch.no_grad()
def clip_metrics(space, samples: torch.Tensor, gt: torch.Tensor,
                 boundaries: tuple[list[int], int] = ([], 2), identities: torch.Tensor | None = None) -> dict[str, float]:
    """Figures of one clip (see :data:`METRICS`).

    Args:
        space: the recipe's :class:`facemotion.face.space.FaceSpace`.
        samples: ``[K, T, D]`` motions sampled for the clip's audio, K >= 1.
        gt: ``[T, D]`` ground-truth motion in the same space.
        boundaries: (frames where the sampler's windows hand over, frames each hand-over
            spans), as the recipe's ``window_boundaries``; for the seam ratios.
        identities: ``[K, S]`` the identities a model drew with the samples (a vertex space's
            neutral-face offsets, metres), or None.
    Returns:
        dict keyed as :data:`METRICS`; diversity is NaN when K = 1 (identity diversity also
        without ``identities``), BA is NaN when the ground truth has no head-motion beat, the
        seam ratios are NaN without a hand-over.
    Raises:
        ValueError: the samples and the ground truth differ in length or width.
    """
    if samples.shape[1:] != gt.shape:
        raise ValueError(f"samples {tuple(samples.shape)} do not match ground truth {tuple(gt.shape)}")
    gt_v = _np(space.expression_vertices(gt))
    template = _np(space.expression_vertices(torch.zeros_like(gt[:1]))[0])
    apertures, motion_div = [], []
    for k in range(len(samples)):  # one sample's vertices [T, V, 3] at a time
        v = space.expression_vertices(samples[k])
        apertures.append(_np(space.lip_aperture(v)))
        if k == 0:
            first = _np(v)
        motion_div += [float((v - space.expression_vertices(samples[j])).norm(dim=-1).mean()) for j in range(k)]
    aperture = np.stack(apertures)  # [K, T] metres
    out = {
        **vertex_metrics(first, gt_v, np.asarray(space.lip_indices), np.asarray(space.upper_face_indices),
                         template, space.lip_landmarks),
        "ba": beat_alignment(_np(space.head_pose(samples[0])), _np(space.head_pose(gt))),
        "div_expression_mm": math.nan,
        "div_head_pose_deg": math.nan,
        "div_motion_mm": 1e3 * float(np.mean(motion_div)) if motion_div else math.nan,
        "div_identity_mm": math.nan,
        "aperture_std_mm": 1e3 * float(aperture.std(axis=0).mean()),
        "aperture_mean_mm": 1e3 * float(aperture.mean()),
    }
    seams = seam_ratios(space, samples, *boundaries)
    out["seam_expression"], out["seam_head"] = seams["expression"], seams["head_pose"]
    if len(samples) >= 2:
        div = sample_diversity(space, samples)
        out["div_expression_mm"] = 1e3 * div["expression"]
        out["div_head_pose_deg"] = math.degrees(div["head_pose"])
        if identities is not None:
            out["div_identity_mm"] = 1e3 * diversity(_np(identities).reshape(len(samples), -1, 3))
    return out


def vertex_metrics(pred, gt, lips, upper, template, lip_landmarks=None) -> dict[str, float]:
    """The vertex figures of one clip (keys of :data:`METRICS`): LVE in both conventions, MVE, FDD,
    NLDD and, with ``lip_landmarks``, MOD (else NaN).

    Args:
        pred, gt: vertices ``[T, V, 3]`` metres. lips, upper: lip and upper-face vertex indices.
        template: the neutral mesh ``[V, 3]`` metres. lip_landmarks: ``(upper, lower)`` lip midpoints.
    Raises:
        ValueError: the shapes differ.
    """
    return {"lve_mm": 1e3 * lve(pred, gt, lips),
            "lve_faceformer_1e-5m2": 1e5 * lve(pred, gt, lips, convention="faceformer"),
            "mve_mm": 1e3 * mve(pred, gt),
            "fdd_1e-5m2": 1e5 * fdd(pred, gt, upper, template),
            "nldd_mm": 1e3 * nldd(pred, gt, lips, template),
            "mod_mm": math.nan if lip_landmarks is None else 1e3 * mod(pred, gt, *lip_landmarks)}


def _ci95(vals: np.ndarray) -> float:
    return float(1.96 * vals.std(ddof=1) / math.sqrt(len(vals))) if len(vals) > 1 else math.nan


def pool(clips: list[dict], runs: list[list[dict]] | None = None, keys=METRICS) -> dict[str, dict[str, float]]:
    """Pool per-clip figures (see :data:`POOLING`).

    Args:
        clips: per-clip dicts holding the figures ``keys`` (default :data:`METRICS`; with several
            runs: each clip's mean over the runs).
        runs: the per-clip dicts of each run, for the interval over runs (None: one run).
    Returns:
        ``{metric: {"mean", "ci95", "clips", "ci95_runs", "runs"}}`` (NaN mean when no clip
        defines the metric; NaN intervals from fewer than two clips or runs).
    """
    pooled = {}
    for key in keys:
        vals = np.asarray([c[key] for c in clips], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        per_run = [np.asarray([c[key] for c in run], np.float64) for run in runs or []]
        means = np.asarray([v[np.isfinite(v)].mean() for v in per_run if np.isfinite(v).any()], np.float64)
        pooled[key] = {"mean": float(vals.mean()) if len(vals) else math.nan, "ci95": _ci95(vals),
                       "clips": len(vals), "ci95_runs": _ci95(means), "runs": len(runs or [clips])}
    return pooled


def _mean_over_runs(runs: list[list[dict]]) -> list[dict]:
    """Per clip: the figures' mean over the runs (NaN where no run defines one)."""
    out = []
    for per_run in zip(*runs):
        clip = {k: v for k, v in per_run[0].items() if k not in METRICS}
        for key in METRICS:
            vals = np.asarray([c[key] for c in per_run], np.float64)
            clip[key] = float(vals[np.isfinite(vals)].mean()) if np.isfinite(vals).any() else math.nan
        out.append(clip)
    return out


def _clip_inputs(recipe, root: Path, rec: dict, features_dirs: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio features ``[T, C]`` and ground-truth motion ``[T, D]`` of one clip, same length."""
    motion_path = root / rec["motion"]
    if abs(float(rec["fps"]) - recipe.fps) > 1e-6:
        raise DataError(f"{motion_path}: clip is at {rec['fps']} fps, the model at {recipe.fps:g} fps")
    gt = motion_vectors(recipe.space, load_motion(root, rec), str(motion_path))
    if features_dirs and all((d / f"{rec['id']}.npy").is_file() for d in features_dirs):
        feats = torch.from_numpy(load_features(features_dirs, rec))
    else:
        feats = recipe.audio_features(load_audio(root / rec["audio"], level_warnings=False))
    if abs(len(feats) - len(gt)) > 1:
        raise DataError(f"{motion_path}: {len(gt)} motion frames but {len(feats)} audio feature frames")
    t = min(len(feats), len(gt))
    return feats[:t].float(), torch.from_numpy(gt[:t])


def evaluate(recipe, data: str | os.PathLike, split: str = "test", max_clips: int | None = None,
             num_samples: int = 5, seed: int = 0, steps: int | None = None, style_from_gt: bool = False,
             progress: bool = True, runs: int = 1) -> dict:
    """Evaluate ``recipe`` on the clips of one split of a native dataset.

    Audio features come from the dataset's feature cache
    (:func:`facemotion.data.features.feature_dirs` of the recipe's encoder and fps) when the clip
    has one, else from ``recipe.audio_features``.

    Args:
        recipe: a loaded recipe (``space``, ``fps``, ``audio_encoder``, ``audio_features``,
            ``sample``, ``encode_style``), e.g. from :func:`facemotion.recipes.load_checkpoint`.
        data: native dataset directory.
        split: manifest split to evaluate (held-out speakers: ``"test"``).
        max_clips: evaluate only the first clips (sorted by id); None = all.
        num_samples: K samples per clip (diversity and aperture variation need K >= 2).
        seed: seed of every clip's sampling generator.
        steps: sampler steps (None: the recipe's default).
        style_from_gt: condition on the style of the clip's own ground truth
            (``recipe.encode_style``) instead of no style.
        progress: show a progress bar.
        runs: R repeated samplings of every clip, run r seeded ``seed + r`` (intervals over runs).
    Returns:
        JSON-ready dict: ``data``, ``split``, ``num_clips``, ``num_speakers``, ``speakers``,
        ``num_samples``, ``seed``, ``runs``, ``steps``, ``style``, ``pooling`` (text), ``units``,
        ``pooled`` (:func:`pool`) and ``clips`` (per clip: ``id``, ``speaker``, ``frames`` and
        the figures of :func:`clip_metrics`, averaged over the runs).
    Raises:
        FacemotionError: ``num_samples``, ``max_clips`` or ``runs`` < 1.
        DataError: no clip in the split, a clip at another fps than the model, mismatched
            audio/motion lengths, missing files. AudioError: unreadable audio.
    """
    from rich.progress import track

    if num_samples < 1:
        raise FacemotionError(f"num_samples must be >= 1, got {num_samples}")
    if max_clips is not None and max_clips < 1:
        raise FacemotionError(f"max_clips must be >= 1, got {max_clips}")
    if runs < 1:
        raise FacemotionError(f"runs must be >= 1, got {runs}")
    root = Path(data)
    records = _split_records(root, split, max_clips)
    # a fine-tuned encoder's features are never cached (the cache key is its settings, not its weights)
    features_dirs = [] if recipe.audio_encoder.is_trainable() else feature_dirs(root, recipe.audio_encoder.config(),
                                                                                 recipe.fps)
    per_run = [[] for _ in range(runs)]
    joint = {"return_identity": True} if getattr(recipe, "generates_identity", False) else {}
    for rec in track(records, description=f"eval {split}", disable=not progress, transient=True):
        feats, gt = _clip_inputs(recipe, root, rec, features_dirs)
        for r in range(runs):
            with torch.inference_mode():
                style = recipe.encode_style(gt) if style_from_gt else None
                samples = recipe.sample(feats, num_samples=num_samples, style=style, steps=steps,
                                        generator=torch.Generator().manual_seed(seed + r), **joint)
            samples, ids = samples if joint else (samples, None)
            per_run[r].append({"id": str(rec["id"]), "speaker": str(rec["speaker"]), "frames": len(gt),
                               **clip_metrics(recipe.space, samples.float(), gt.to(samples.device),
                                              recipe.window_boundaries(len(gt)), ids)})
    clips = _mean_over_runs(per_run)
    return {**_report_head(root, split, clips), "num_samples": num_samples, "seed": seed, "runs": runs,
            "steps": steps or recipe.default_sampling["steps"],
            "style": "ground_truth" if style_from_gt else "none", "pooled": pool(clips, per_run), "clips": clips}


MULTIMODALITY: dict[str, tuple[str, str]] = {
    "mult_id_mm": ("Mult id", "mm; neutral faces, per vertex"),
    "mult_motion_mm": ("Mult motion", "mm; displacement of every vertex (zero head pose, no identity), per frame"),
    "mult_pose_deg": ("Mult pose", "degrees; head pose (pitch, yaw, roll), per frame"),
    "mult_mesh_mm": ("Mult mesh", "mm; posed vertices with the identity, per vertex and frame"),
}
"""DF-3DFace Table 3 figures (higher: more varied) → (label, unit). Each is
:func:`facemotion.metrics.multimodality` of K samples of one clip (the mean distance between
paired samples ``i`` and ``K/2 + i``, point by point: vertices, or one head pose per frame), pooled
as :data:`POOLING` says."""

REFERENCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("aud, id, pose", ("identity", "pose")), ("aud, pose", ("pose",)), ("aud, id", ("identity",)), ("aud", ()))
"""Table 3's rows: the inputs (audio and the references given, the clip's own) and the references."""


def evaluate_multimodality(recipe, data: str | os.PathLike, split: str = "test", max_clips: int | None = None,
                           num_samples: int = 10, seed: int = 0, steps: int | None = None,
                           progress: bool = True) -> dict:
    """DF-3DFace Table 3 on one split: the multimodality (:data:`MULTIMODALITY`) of identity,
    motion, pose and mesh across ``num_samples`` samples of each clip, with the clip's own
    identity (``space.identity_from_arrays``, the template face when it has none) and head pose
    given as references or not (:data:`REFERENCES`; a model that holds neither gets the ``aud``
    row only). A given component should have zero multimodality, the rest vary.

    Args:
        recipe: a loaded recipe; one that generates identities (``generates_identity``) and holds
            a head pose (``holds_pose``), e.g. DF-3DFace, gets every row.
        data, split, max_clips, seed, steps, progress: as :func:`evaluate`.
        num_samples: K per clip and row, even (the paper: 2 x 100).
    Returns:
        JSON-ready dict: :func:`evaluate`'s head, ``num_samples``, ``seed``, ``steps``, ``units``
        and ``rows``: ``{inputs: {metric: {"mean", "ci95", "clips"}}}`` (identity figures are
        NaN for a model that draws none).
    Raises:
        FacemotionError: ``num_samples`` odd or < 2, ``max_clips`` < 1. DataError, AudioError: as
            :func:`evaluate`.
    """
    from rich.progress import track

    if num_samples < 2 or num_samples % 2:
        raise FacemotionError(f"multimodality needs an even number of samples (>= 2), got {num_samples}")
    if max_clips is not None and max_clips < 1:
        raise FacemotionError(f"max_clips must be >= 1, got {max_clips}")
    root = Path(data)
    records = _split_records(root, split, max_clips)
    space = recipe.space
    joint = bool(getattr(recipe, "generates_identity", False))
    rows = [(name, refs) for name, refs in REFERENCES
            if (joint or "identity" not in refs) and (getattr(recipe, "holds_pose", False) or "pose" not in refs)]
    features_dirs = [] if recipe.audio_encoder.is_trainable() else feature_dirs(root, recipe.audio_encoder.config(),
                                                                                 recipe.fps)
    figures = {name: [] for name, _ in rows}
    for rec in track(records, description=f"multimodality {split}", disable=not progress, transient=True):
        feats, gt = _clip_inputs(recipe, root, rec, features_dirs)
        own = space.identity_from_arrays(load_motion(root, rec)) if joint else None
        own = np.zeros(recipe.shape_size, np.float32) if joint and own is None else own
        for name, refs in rows:
            given = {"identity": own} if "identity" in refs else {}
            if "pose" in refs:
                given["pose"] = space.head_pose(gt)
            with torch.inference_mode():
                out = recipe.sample(feats, num_samples=num_samples, steps=steps,
                                    generator=torch.Generator().manual_seed(seed), **given,
                                    **({"return_identity": True} if joint else {}))
            motion, ids = out if joint else (out, None)
            figures[name].append(_clip_multimodality(space, motion.float(), ids))
    return {**_report_head(root, split, [{"speaker": r["speaker"]} for r in records]), "num_samples": num_samples,
            "seed": seed, "steps": steps or recipe.default_sampling["steps"],
            "units": {k: unit for k, (_, unit) in MULTIMODALITY.items()},
            "rows": {name: pool(clips, keys=MULTIMODALITY) for name, clips in figures.items()}}


@torch.no_grad()
def _clip_multimodality(space, samples: torch.Tensor, identities: torch.Tensor | None) -> dict[str, float]:
    """:data:`MULTIMODALITY` figures of K samples ``[K, T, D]`` (and their identities ``[K, S]``)
    of one clip; the meshes are decoded one pair at a time."""
    k = len(samples) // 2
    shape = lambda i: None if identities is None else identities[i]  # noqa: E731
    motion, mesh = [], []
    for i in range(k):  # pair (i, k + i): multimodality of the pair alone is their point-wise distance
        pair = samples[[i, k + i]]
        motion.append(multimodality(_np(space.expression_vertices(pair)), 3))
        mesh.append(multimodality(_np(torch.stack([space.decode(samples[j], shape(j))[0] for j in (i, k + i)])), 3))
    out = {"mult_motion_mm": 1e3 * float(np.mean(motion)), "mult_mesh_mm": 1e3 * float(np.mean(mesh)),
           "mult_pose_deg": math.degrees(multimodality(_np(space.head_pose(samples)), 3)), "mult_id_mm": math.nan}
    if identities is not None:
        out["mult_id_mm"] = 1e3 * multimodality(_np(identities).reshape(len(identities), -1, 3), 3)
    return out


def _split_records(root: Path, split: str, max_clips: int | None) -> list[dict]:
    records = sorted(read_manifest(root, split), key=lambda r: str(r["id"]))[:max_clips]
    if not records:
        splits = sorted({r["split"] for r in read_manifest(root)})
        raise DataError(f"{root / 'manifest.jsonl'}: no clips in split {split!r} (splits: {splits})")
    return records


def _report_head(root: Path, split: str, clips: list[dict]) -> dict:
    speakers = sorted({c["speaker"] for c in clips})
    return {"data": str(root), "split": split, "num_clips": len(clips), "num_speakers": len(speakers),
            "speakers": speakers, "pooling": POOLING, "units": {k: unit for k, (_, unit) in METRICS.items()}}


def evaluate_predictions(predictions: str | os.PathLike, data: str | os.PathLike, split: str = "test",
                         max_clips: int | None = None, regions: str | os.PathLike | None = None) -> dict:
    """Score another system's outputs (e.g. FaceFormer's or CodeTalker's ``result/*.npy``) against
    the vertex clips of a native dataset split, on the vertex figures (:func:`vertex_metrics`; MOD,
    BA, diversity and seams are NaN: no landmarks, head pose or samples).

    Args:
        predictions: a folder of ``<clip id>.npy``, each ``[T, V * 3]`` or ``[T, V, 3]`` metres
            (T may differ from the ground truth's by one frame; the shorter length counts).
        data: native dataset whose clips hold ``vertices [T, V, 3]`` and ``template [V, 3]``
            (``facemotion convert --from vocaset|biwi``).
        split, max_clips: as :func:`evaluate`.
        regions: a folder with ``lve.txt`` (lips) and ``fdd.txt`` (upper face) for this topology
            (default: the shared FLAME/VOCASET files when V is 5023).
    Returns:
        the report of :func:`evaluate` (``num_samples`` 1, ``runs`` 1, ``steps`` and ``seed`` None,
        ``style`` "n/a").
    Raises:
        DataError: a missing or malformed prediction (named), a clip without vertices, or no
            regions for this topology.
    """
    from facemotion.face.flame import SHARED_REGIONS, read_index_file

    root, predictions = Path(data), Path(predictions)
    clips = []
    lips = upper = None
    for rec in _split_records(root, split, max_clips):
        arrays = load_motion(root, rec)
        if "vertices" not in arrays or "template" not in arrays:
            raise DataError(f"{root / rec['motion']}: no 'vertices' and 'template' to score predictions against")
        gt, template = np.asarray(arrays["vertices"], np.float64), np.asarray(arrays["template"], np.float64)
        path = predictions / f"{rec['id']}.npy"
        if not path.is_file():
            raise DataError(f"{path}: no prediction for clip {rec['id']} (expected <clip id>.npy, [T, V * 3] metres)")
        pred = np.load(path, allow_pickle=False)
        if pred.size % (3 * gt.shape[1]) or abs(pred.size // (3 * gt.shape[1]) - len(gt)) > 1:
            raise DataError(f"{path}: shape {pred.shape}, expected [{len(gt)}, {3 * gt.shape[1]}] (ground truth "
                            f"{len(gt)} frames of {gt.shape[1]} vertices)")
        pred = pred.reshape(-1, gt.shape[1], 3)
        t = min(len(pred), len(gt))
        if lips is None:
            folder = Path(regions) if regions is not None else SHARED_REGIONS if gt.shape[1] == 5023 else None
            if folder is None:
                raise DataError(f"{root}: {gt.shape[1]}-vertex clips; give --regions DIR (lve.txt, fdd.txt)")
            lips, upper = read_index_file(folder / "lve.txt"), read_index_file(folder / "fdd.txt")
        figures = dict.fromkeys(METRICS, math.nan)
        figures.update(vertex_metrics(pred[:t], gt[:t], lips, upper, template))
        clips.append({"id": str(rec["id"]), "speaker": str(rec["speaker"]), "frames": t, **figures})
    return {**_report_head(root, split, clips), "num_samples": 1, "seed": None, "runs": 1, "steps": None,
            "style": "n/a", "pooled": pool(clips), "clips": clips}


def _json_safe(x):
    """NaN/inf → None (strict JSON), recursively."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return x


def write_report(report: dict, path: str | os.PathLike) -> Path:
    """Write ``report`` as JSON (NaN → null), atomically. Returns the path."""
    from facemotion.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_json_safe(report), indent=1) + "\n")
    return path


def _cell(p: dict) -> str:
    """``mean ± ci95`` (over clips), with `` (runs ± ci95_runs)`` when there were several runs."""
    fmt = lambda v: "n/a" if v is None or not math.isfinite(v) else f"{v:.4g}"  # noqa: E731
    if p["mean"] is None or not math.isfinite(p["mean"]):
        return "n/a"
    cell = f"{fmt(p['mean'])} ± {fmt(p['ci95'])}"
    return cell + (f" (runs ± {fmt(p['ci95_runs'])})" if p.get("runs", 1) > 1 else "")


def _title(report: dict) -> str:
    seed = f", seed {report['seed']}" if report.get("seed") is not None else ""
    steps = f", {report['steps']} steps" if report.get("steps") is not None else ""
    return (f"{report.get('model', 'model')} on {report['data']}, split {report['split']}: {report['num_clips']} "
            f"clips, {report['num_speakers']} speakers, {report['num_samples']} samples/clip, "
            f"{report.get('runs', 1)} run(s), style {report['style']}{seed}{steps}")


def markdown_table(reports: list[dict]) -> str:
    """The comparison table: one row per report (model), a column per figure of :data:`METRICS`
    that some model defines (``mean ± ci95`` over clips, and over runs when there were several),
    then the legend naming each figure's convention and the pooling."""
    keys = [k for k in METRICS if any(r["pooled"][k]["clips"] for r in reports)]
    lines = ["| model | " + " | ".join(METRICS[k][0] for k in keys) + " |",
             "|---|" + "---:|" * len(keys)]
    lines += [f"| {r.get('model', 'model')} | " + " | ".join(_cell(r["pooled"][k]) for k in keys) + " |"
              for r in reports]
    lines += [""] + [f"- {_title(r)}" for r in reports]
    lines += [""] + [f"- **{METRICS[k][0]}** (`{k}`): {METRICS[k][1]}" for k in keys]
    lines += ["", f"Pooling: {POOLING}.", ""]
    return "\n".join(lines + [multimodality_table(r) for r in reports if r.get("multimodality")])


def multimodality_table(report: dict) -> str:
    """DF-3DFace Table 3 of one model's report (``report["multimodality"]``, from
    :func:`evaluate_multimodality`) as Markdown: one row per set of inputs, ``mean ± ci95``."""
    mm = report["multimodality"]
    lines = [f"Multimodality (DF-3DFace Table 3) of {report.get('model', 'model')} on {mm['data']}, split "
             f"{mm['split']}: {mm['num_clips']} clips, {mm['num_samples']} samples/clip (pairs i, K/2 + i), "
             f"seed {mm['seed']}, {mm['steps']} steps", "",
             "| input | " + " | ".join(label for label, _ in MULTIMODALITY.values()) + " |",
             "|---|" + "---:|" * len(MULTIMODALITY)]
    lines += [f"| {name} | " + " | ".join(_cell(row[k]) for k in MULTIMODALITY) + " |" for name, row in mm["rows"].items()]
    lines += [""] + [f"- **{label}** (`{k}`): {unit}" for k, (label, unit) in MULTIMODALITY.items()]
    return "\n".join(lines + [""])


def write_tables(reports: list[dict], prefix: str | os.PathLike) -> list[Path]:
    """Write the comparison of ``reports`` (one per model, from :func:`evaluate` or
    :func:`evaluate_predictions` with ``model`` set) as ``PREFIX.md`` (:func:`markdown_table`),
    ``PREFIX.csv`` (one row per model and figure: ``model, metric, label, mean, ci95, clips,
    ci95_runs, runs, convention``) and ``PREFIX.json`` (``{"models": reports}``, NaN as null),
    each atomically. Returns the three paths."""
    import csv
    import io

    from facemotion.atomic import atomic_path

    prefix = Path(prefix)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "metric", "label", "mean", "ci95", "clips", "ci95_runs", "runs", "convention"])
    for r in reports:
        for key, (label, convention) in METRICS.items():
            p = r["pooled"][key]
            w.writerow([r.get("model", "model"), key, label, p["mean"], p["ci95"], p["clips"], p["ci95_runs"],
                        p["runs"], convention])
    paths = [prefix.with_name(prefix.name + ext) for ext in (".md", ".csv", ".json")]
    texts = [markdown_table(reports), buf.getvalue(), json.dumps(_json_safe({"models": reports}), indent=1) + "\n"]
    for path, text in zip(paths, texts):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return paths


def print_report(report: dict, console=None) -> None:
    """Print the pooled figures of :func:`evaluate` as a rich table."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    table = Table(title=escape(_title(report)), caption=escape(f"pooling: {report['pooling']}"))
    for col in ("metric", "mean ± ci95", "clips", "unit"):
        table.add_column(col, justify="left" if col in ("metric", "unit") else "right")
    for key, (label, unit) in METRICS.items():
        p = report["pooled"][key]
        table.add_row(label, _cell(p), str(p["clips"]), unit)
    console.print(table)


def eval_command(args) -> int:
    """``facemotion eval``: evaluate each ``args.model`` (a shipped model's name, a checkpoint, or a
    folder of another system's ``.npy`` predictions: :func:`evaluate_predictions`) on ``args.data``
    [``args.split``], ``args.runs`` times, and with ``args.multimodality`` K the DF-3DFace Table 3 of
    each model (:func:`evaluate_multimodality`); print each pooled table, write the reports to
    ``args.json`` and the comparison tables to ``args.out`` (``.md``, ``.csv``, ``.json``) when given.

    Raises:
        DataError: bad model, predictions or dataset. AudioError: unreadable audio.
        FacemotionError: bad options.
    """
    from facemotion.api import load_animator

    read_manifest(args.data, check_files=True)  # a bad clip is named before a model loads
    reports = []
    for model in args.model or ["default"]:
        if Path(model).is_dir():
            report = evaluate_predictions(model, args.data, args.split, args.max_clips, args.regions)
        else:
            recipe = load_animator(model, args.audio_model_dir, args.asr_model_dir, args.flame_model).recipe
            report = evaluate(recipe, args.data, args.split, args.max_clips, args.num_samples, args.seed, args.steps,
                              args.style_from_gt, runs=args.runs)
        reports.append({"model": str(model), **report})
        print_report(reports[-1])
        if args.multimodality and not Path(model).is_dir():
            reports[-1]["multimodality"] = evaluate_multimodality(recipe, args.data, args.split, args.max_clips,
                                                                  args.multimodality, args.seed, args.steps)
            print(multimodality_table(reports[-1]))
    if args.json is not None:
        print(write_report(reports[0] if len(reports) == 1 else {"models": reports}, args.json))
    if args.out is not None:
        for path in write_tables(reports, args.out):
            print(path)
    return 0
