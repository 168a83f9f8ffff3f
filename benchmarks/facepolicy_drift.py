"""Drift of 3DFacePolicy's integrated actions (issue 16, 4): the mean distance (mm) of the generated
face from the neutral face during the last 10 s of silence after 60 s of speech, with the drift
control (``drift_control "observe"``: the policy observes the displacement from the neutral face)
and without it (``"none"``: it observes velocities only).

By default a tiny model of each kind is trained here, on the CPU, on synthetic clips (noise-burst
loudness drives the lower lip, the head sways; silence is the neutral face), so the figures compare
the two settings on equal footing. With ``--model`` a trained model (e.g. the shipped
``facepolicy``) animates 60 s of real speech (the examples and ``realval``) followed by 10 s of
digital silence, with its own drift control, without the drift leak λ, with the model's λ and
with ``--leak``.

    .venv/bin/python benchmarks/facepolicy_drift.py [--steps 400] [--seconds 60]
    .venv/bin/python benchmarks/facepolicy_drift.py --model facepolicy [--leak 0.05]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from facemotion.face.space import VertexSpace
from facemotion.recipes.base import config_from
from facemotion.recipes.facepolicy import FacePolicy, FacePolicyConfig

V, FPS = 8, 25
TINY = {"audio_encoder": {"name": "mel", "n_mels": 8}, "obs_dim": 32, "state_hidden": 32, "audio_hidden": 16,
        "down_dims": [64, 128], "step_embed_dim": 16, "steps": 4}


def clip(frames: int, rng: np.random.Generator, silent_tail: int = 0):
    """Features ``[T, 8]`` (channel 0 loudness) and vertex displacements ``[T, V, 3]`` m, head
    ``[T, 3]`` rad; the last ``silent_tail`` frames are silent and neutral."""
    env = []
    while len(env) < frames:
        env += [rng.uniform(0.3, 1.0) if rng.random() < 0.6 else 0.0] * int(rng.integers(2, 7))
    env = np.asarray(env[:frames], np.float32)
    if silent_tail:
        env[-silent_tail:] = 0
    feats = np.concatenate([env[:, None], rng.normal(0, 0.1, (frames, 7))], 1).astype(np.float32)
    disp = np.zeros((frames, V, 3), np.float32)
    disp[:, 1, 1] = -0.01 * env
    disp[:, 0, 1] = 0.002 * env
    head = np.zeros((frames, 3), np.float32)
    head[:, 1] = 0.05 * np.sin(np.arange(frames) / 10) * (env > 0)
    return feats, disp, head


def neutral_distance_mm(space, motion: torch.Tensor) -> torch.Tensor:
    """Mean distance of the face from the neutral face per frame ``[T]`` mm (expression only)."""
    verts = space.expression_vertices(motion)
    return 1e3 * (verts - space.template).norm(dim=-1).mean(-1)


def trained(model: str, seconds: float, leak: float) -> None:
    """Drift of a trained model on real speech followed by 10 s of silence."""
    from facemotion.api import load_animator
    from facepolicy_stream import speech

    animator = load_animator(model)
    recipe, fps = animator.recipe, animator.fps
    wave = np.concatenate([speech(seconds), np.zeros(160000, np.float32)])
    feats = animator.audio_features(wave)
    tail = int(round(10 * fps))
    for lam in sorted({0.0, recipe.config.drift_leak, leak}):
        recipe.config.drift_leak = lam
        motion = torch.from_numpy(animator.sample(feats, 0))
        dist = neutral_distance_mm(animator.space, motion)
        head = animator.space.head_pose(motion).abs().mean(-1).rad2deg()
        print(f"{model} (drift_control={recipe.config.drift_control}, drift_leak={lam}): distance from neutral in "
              f"the last 10 s of silence after {seconds:g} s of speech: mean {float(dist[-tail:].mean()):.2f} mm, "
              f"max {float(dist[-tail:].max()):.2f} mm (during speech mean {float(dist[:-tail].mean()):.2f} mm); "
              f"head |angle| in silence {float(head[-tail:].mean()):.2f} deg", flush=True)


def main() -> None:
    """Train one tiny model per drift setting (or load ``--model``), generate, print the drift figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400, help="training steps per model")
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds of speech before 10 s of silence")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--leak", type=float, default=0.05, help="drift_leak of the third run (observe + leak)")
    ap.add_argument("--model", help="a trained model (shipped name or checkpoint) instead of the tiny ones")
    args = ap.parse_args()
    if args.model:
        trained(args.model, args.seconds, args.leak)
        return
    torch.set_num_threads(args.threads)
    template = np.random.default_rng(0).normal(0, 0.05, (V, 3)).astype(np.float32)
    rng = np.random.default_rng(1)
    data = [clip(100, rng, silent_tail=int(rng.integers(0, 30))) for _ in range(16)]
    test_frames, tail = int(args.seconds * FPS) + 10 * FPS, 10 * FPS
    feats_test, _, _ = clip(test_frames, np.random.default_rng(7), silent_tail=tail)
    for control, leak in (("observe", 0.0), ("none", 0.0), ("observe", args.leak)):
        torch.manual_seed(0)
        space = VertexSpace(template, lip_landmarks=(0, 1), lips=[0, 1], head_pose=True)
        r = FacePolicy(config_from(FacePolicyConfig, {**TINY, "drift_control": control, "drift_leak": leak}),
                       space=space)
        motions = [torch.from_numpy(space.from_arrays({"displacements": d, "head_rotation": h})) for _, d, h in data]
        feats = [torch.from_numpy(f) for f, _, _ in data]
        m, a = torch.cat(motions), torch.cat(feats)
        act = torch.cat([r.actions(x) for x in motions])
        r.set_statistics({"motion_mean": m.mean(0), "motion_std": m.std(0), "audio_mean": a.mean(0),
                          "audio_std": a.std(0), "action_mean": act.mean(0), "action_std": act.std(0)})
        n, (before, after) = r.train_frames, r.train_padding
        items_a, items_m = [], []
        for f, x in zip(feats, motions):
            idx = (torch.arange(-before, len(x) - n + after + 1)[:, None] + torch.arange(n)).clamp(0, len(x) - 1)
            items_a.append(f[idx])
            items_m.append(x[idx])
        items_a, items_m = torch.cat(items_a), torch.cat(items_m)
        opt = torch.optim.AdamW(r.parameters(), lr=3e-3, weight_decay=1e-6)
        t0 = time.time()
        for _ in range(args.steps):
            pick = torch.randint(0, len(items_m), (128,))
            loss, _ = r.training_loss({"audio": items_a[pick], "motion": items_m[pick],
                                       "length": torch.full((128,), n)})
            opt.zero_grad()
            loss.backward()
            opt.step()
        r.eval()
        t1 = time.time()
        out = r.sample(torch.from_numpy(feats_test), generator=torch.Generator().manual_seed(0))[0]
        t2 = time.time()
        dist = neutral_distance_mm(space, out)
        head = out[:, -3:].abs().mean(-1).rad2deg()
        print(f"drift_control={control} drift_leak={leak}: loss {float(loss.detach()):.3f} after {args.steps} steps ({t1 - t0:.0f} s); "
              f"generated {test_frames} frames in {t2 - t1:.0f} s; distance from neutral in the last 10 s of "
              f"silence: mean {float(dist[-tail:].mean()):.2f} mm, max {float(dist[-tail:].max()):.2f} mm "
              f"(during speech mean {float(dist[:-tail].mean()):.2f} mm); head |angle| in silence "
              f"{float(head[-tail:].mean()):.2f} deg", flush=True)


if __name__ == "__main__":
    main()
