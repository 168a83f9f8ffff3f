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
  and the lip aperture variation: mean over frames of the standard deviation across samples of
  the lip aperture, which should stay small next to the mean aperture (the lips follow the
  audio; only style and head motion should vary).

Pooling: each figure is the mean over clips (every clip weighs equally); clips where a figure
is undefined (BA when the ground truth has no head-motion beat, diversity with one sample) are
left out of that figure, and the number of clips that count is reported with it.

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
from facemotion.metrics.motion import beat_alignment, fdd, lve, mod, mve, sample_diversity, seam_ratios

METRICS: dict[str, tuple[str, str]] = {
    "lve_mm": ("LVE", "mm; lip vertex error, max over lip vertices, mean over frames (lower is better)"),
    "mve_mm": ("MVE", "mm; mean vertex error (lower is better)"),
    "fdd_1e-5m2": ("FDD", "1e-5 m^2; upper-face dynamics deviation (lower is better)"),
    "mod_mm": ("MOD", "mm; mouth opening difference (lower is better)"),
    "ba": ("BA", "head-motion beat alignment in [0, 1] (higher is better)"),
    "div_expression_mm": ("Diversity exp", "mm; upper-face expression diversity across samples"),
    "div_head_pose_deg": ("Diversity head", "degrees; head pose diversity across samples"),
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

POOLING = ("mean over clips (each clip weighs equally); clips where a figure is undefined are "
           "left out of it; ci95 = 1.96 * std / sqrt(n) over clips")


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


@torch.no_grad()
def clip_metrics(space, samples: torch.Tensor, gt: torch.Tensor,
                 boundaries: tuple[list[int], int] = ([], 2)) -> dict[str, float]:
    """Figures of one clip (see :data:`METRICS`).

    Args:
        space: the recipe's :class:`facemotion.face.space.FaceSpace`.
        samples: ``[K, T, D]`` motions sampled for the clip's audio, K >= 1.
        gt: ``[T, D]`` ground-truth motion in the same space.
        boundaries: (frames where the sampler's windows hand over, frames each hand-over
            spans), as the recipe's ``window_boundaries``; for the seam ratios.
    Returns:
        dict keyed as :data:`METRICS`; diversity is NaN when K = 1, BA is NaN when the ground
        truth has no head-motion beat, the seam ratios are NaN without a hand-over.
    Raises:
        ValueError: the samples and the ground truth differ in length or width.
    """
    if samples.shape[1:] != gt.shape:
        raise ValueError(f"samples {tuple(samples.shape)} do not match ground truth {tuple(gt.shape)}")
    gt_v = _np(space.expression_vertices(gt))
    template = _np(space.expression_vertices(torch.zeros_like(gt[:1]))[0])
    apertures = []
    for k in range(len(samples)):  # one sample's vertices [T, V, 3] at a time
        v = space.expression_vertices(samples[k])
        apertures.append(_np(space.lip_aperture(v)))
        if k == 0:
            first = _np(v)
    aperture = np.stack(apertures)  # [K, T] metres
    up, lo = space.lip_landmarks
    out = {
        "lve_mm": 1e3 * lve(first, gt_v, np.asarray(space.lip_indices)),
        "mve_mm": 1e3 * mve(first, gt_v),
        "fdd_1e-5m2": 1e5 * fdd(first, gt_v, np.asarray(space.upper_face_indices), template),
        "mod_mm": 1e3 * mod(first, gt_v, up, lo),
        "ba": beat_alignment(_np(space.head_pose(samples[0])), _np(space.head_pose(gt))),
        "div_expression_mm": math.nan,
        "div_head_pose_deg": math.nan,
        "aperture_std_mm": 1e3 * float(aperture.std(axis=0).mean()),
        "aperture_mean_mm": 1e3 * float(aperture.mean()),
    }
    seams = seam_ratios(space, samples, *boundaries)
    out["seam_expression"], out["seam_head"] = seams["expression"], seams["head_pose"]
    if len(samples) >= 2:
        div = sample_diversity(space, samples)
        out["div_expression_mm"] = 1e3 * div["expression"]
        out["div_head_pose_deg"] = math.degrees(div["head_pose"])
    return out


def pool(clips: list[dict]) -> dict[str, dict[str, float]]:
    """Pool per-clip figures (see :data:`POOLING`).

    Args:
        clips: per-clip dicts holding the keys of :data:`METRICS`.
    Returns:
        ``{metric: {"mean", "ci95", "clips"}}`` (NaN mean when no clip defines the metric).
    """
    pooled = {}
    for key in METRICS:
        vals = np.asarray([c[key] for c in clips], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        n = len(vals)
        pooled[key] = {"mean": float(vals.mean()) if n else math.nan,
                       "ci95": float(1.96 * vals.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
                       "clips": n}
    return pooled


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
             progress: bool = True) -> dict:
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
    Returns:
        JSON-ready dict: ``data``, ``split``, ``num_clips``, ``num_speakers``, ``speakers``,
        ``num_samples``, ``seed``, ``steps``, ``style``, ``pooling`` (text), ``units``,
        ``pooled`` (:func:`pool`) and ``clips`` (per clip: ``id``, ``speaker``, ``frames`` and
        the figures of :func:`clip_metrics`).
    Raises:
        FacemotionError: ``num_samples`` or ``max_clips`` < 1.
        DataError: no clip in the split, a clip at another fps than the model, mismatched
            audio/motion lengths, missing files. AudioError: unreadable audio.
    """
    from rich.progress import track

    if num_samples < 1:
        raise FacemotionError(f"num_samples must be >= 1, got {num_samples}")
    if max_clips is not None and max_clips < 1:
        raise FacemotionError(f"max_clips must be >= 1, got {max_clips}")
    root = Path(data)
    records = sorted(read_manifest(root, split), key=lambda r: str(r["id"]))[:max_clips]
    if not records:
        splits = sorted({r["split"] for r in read_manifest(root)})
        raise DataError(f"{root / 'manifest.jsonl'}: no clips in split {split!r} (splits: {splits})")
    # a fine-tuned encoder's features are never cached (the cache key is its settings, not its weights)
    features_dirs = [] if recipe.audio_encoder.is_trainable() else feature_dirs(root, recipe.audio_encoder.config(),
                                                                                 recipe.fps)
    clips = []
    for rec in track(records, description=f"eval {split}", disable=not progress, transient=True):
        feats, gt = _clip_inputs(recipe, root, rec, features_dirs)
        with torch.inference_mode():
            style = recipe.encode_style(gt) if style_from_gt else None
            samples = recipe.sample(feats, num_samples=num_samples, style=style, steps=steps,
                                    generator=torch.Generator().manual_seed(seed))
        clips.append({"id": str(rec["id"]), "speaker": str(rec["speaker"]), "frames": len(gt),
                      **clip_metrics(recipe.space, samples.float(), gt.to(samples.device),
                                     recipe.window_boundaries(len(gt)))})
    speakers = sorted({c["speaker"] for c in clips})
    return {"data": str(root), "split": split, "num_clips": len(clips), "num_speakers": len(speakers),
            "speakers": speakers, "num_samples": num_samples, "seed": seed,
            "steps": steps or recipe.default_sampling["steps"],
            "style": "ground_truth" if style_from_gt else "none", "pooling": POOLING,
            "units": {k: unit for k, (_, unit) in METRICS.items()}, "pooled": pool(clips), "clips": clips}


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


def print_report(report: dict, console=None) -> None:
    """Print the pooled figures of :func:`evaluate` as a rich table."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    table = Table(title=escape(f"{report.get('model', 'model')} on {report['data']}, split {report['split']}: "
                               f"{report['num_clips']} clips, {report['num_speakers']} speakers, "
                               f"{report['num_samples']} samples/clip, style {report['style']}, "
                               f"seed {report['seed']}, {report['steps']} steps"),
                  caption=escape(f"pooling: {report['pooling']}"))
    for col in ("metric", "mean", "± ci95", "clips", "unit"):
        table.add_column(col, justify="left" if col in ("metric", "unit") else "right")
    fmt = lambda v: "n/a" if not math.isfinite(v) else f"{v:.4g}"  # noqa: E731
    for key, (label, unit) in METRICS.items():
        p = report["pooled"][key]
        table.add_row(label, fmt(p["mean"]), fmt(p["ci95"]), str(p["clips"]), unit)
    console.print(table)


def eval_command(args) -> int:
    """``facemotion eval``: evaluate ``args.model`` on ``args.data`` [``args.split``], print the
    pooled table and write the JSON report to ``args.json`` (if given).

    Raises:
        DataError: bad model or dataset. AudioError: unreadable audio. FacemotionError: bad options.
    """
    from facemotion.api import load_animator

    read_manifest(args.data, check_files=True)  # a bad clip is named before the model loads
    recipe = load_animator(args.model, args.audio_model_dir, args.asr_model_dir).recipe
    report = {"model": str(args.model), **evaluate(
        recipe, args.data, args.split, args.max_clips, args.num_samples, args.seed, args.steps,
        args.style_from_gt)}
    print_report(report)
    if args.json is not None:
        print(write_report(report, args.json))
    return 0
