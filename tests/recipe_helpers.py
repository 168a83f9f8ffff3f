"""Small stand-ins for the recipe tests: a linear face space and a tiny native dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from facemotion.audio.io import SAMPLE_RATE


class TinySpace:
    """Linear 'rig': 4 expression weights + pitch/yaw/roll, 12 vertices (lips are 0 and 1)."""

    dim = 7
    names = ["a", "b", "c", "d", "pitch", "yaw", "roll"]
    lip_indices = [0, 1]
    lip_landmarks = (0, 1)
    upper_face_indices = [10, 11]

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.neutral = torch.randn(12, 3, generator=g) * 0.05
        self.neutral[0] = torch.tensor([0.0, 0.01, 0.1])
        self.neutral[1] = torch.tensor([0.0, -0.01, 0.1])
        self.deltas = torch.randn(4, 12, 3, generator=g) * 0.01
        self.deltas[0, 1] = torch.tensor([0.0, -0.02, 0.0])  # weight "a" opens the mouth

    def from_arrays(self, arrays):
        return np.concatenate([arrays["blendshapes"][:, :4], arrays["head_rotation"]], axis=1).astype(np.float32)

    def to_arrays(self, x):
        x = np.asarray(x, np.float32)
        bs = np.zeros((len(x), 52), np.float32)
        bs[:, :4] = x[:, :4]
        return {"blendshapes": bs, "head_rotation": x[:, 4:7]}

    def settings(self):
        return {}

    def expression_vertices(self, x, indices=None, shape=None):
        v = self.neutral.to(x) + torch.einsum("...k,kvc->...vc", x[..., :4], self.deltas.to(x))
        return v if indices is None else v[..., indices, :]

    def decode(self, x, shape=None):
        return self.expression_vertices(x), self.head_pose(x)  # head pose not applied by the stand-in

    def head_pose(self, x):
        return x[..., 4:7]

    def lip_aperture(self, v):
        return (v[..., 0, :] - v[..., 1, :]).norm(dim=-1)


TINY_CONFIG = {
    "space": "recipe_helpers:TinySpace",
    "audio_encoder": {"name": "mel", "n_mels": 8},
    "window": 20, "n_prev_motions": 4, "d_model": 32, "n_layers": 2, "n_heads": 2, "ff_mult": 2,
    "dropout": 0.0, "style_dim": 16, "style_layers": 1, "style_heads": 2, "style_steps": 2,
    "warmup": 1, "lr": 1e-3, "num_workers": 0, "feature_workers": 1, "val_every": 4, "val_clips": 1,
    "ckpt_every": 1, "steps": 5, "batch_size": 4,
}


def burst_clips(root: Path, clips: int, seconds: float, fps: int, motion) -> Path:
    """Write a native dataset of ``clips`` noise-burst recordings (clip ``i`` bursts at 1.5 + i Hz;
    the last is the val split) and ``motion(i, frame_env [T], rng) -> dict`` of arrays per clip,
    where ``frame_env`` is 1 in the frames with sound, else 0."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(clips):
        n = int(seconds * SAMPLE_RATE)
        env = (np.sin(np.arange(n) / SAMPLE_RATE * 2 * np.pi * (1.5 + i)) > 0).astype(np.float32)
        sf.write(root / f"c{i}.wav", env * rng.normal(0, 0.3, n).astype(np.float32), SAMPLE_RATE)
        t = int(seconds * fps)
        frame_env = env[((np.arange(t) + 0.5) / fps * SAMPLE_RATE).astype(int)]
        np.savez(root / f"c{i}.npz", fps=fps, **motion(i, frame_env, rng))
        lines.append({"id": f"c{i}", "speaker": f"s{i}", "split": "val" if i == clips - 1 else "train",
                      "fps": fps, "audio": f"c{i}.wav", "motion": f"c{i}.npz", "duration": seconds})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return root


def make_dataset(root: Path, clips: int = 3, seconds: float = 2.0, fps: int = 25) -> Path:
    """A native dataset whose jaw weight 'a' follows the loudness of a noise-burst signal."""
    def motion(i, frame_env, rng):
        t = len(frame_env)
        bs = np.zeros((t, 52), np.float32)
        bs[:, 0] = frame_env
        bs[:, 1] = 0.3 * i
        head = np.zeros((t, 3), np.float32)
        head[:, 1] = 0.05 * np.sin(np.arange(t) / fps)
        return {"blendshapes": bs, "head_rotation": head}
    return burst_clips(root, clips, seconds, fps, motion)


@pytest.fixture
def one_thread():
    """Tiny models: one torch thread (two threads on a shared, loaded CPU can be 50x slower). Import
    it into a test module with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def overfit_ratio(recipe, batch: dict, params, steps: int = 150, lr: float = 3e-3) -> float:
    """``recipe.training_loss(batch)`` at fixed noise (seed 123) after ``steps`` Adam steps on the one
    batch, over the same before them."""
    opt = torch.optim.Adam(params, lr=lr)

    def fixed_loss():
        torch.manual_seed(123)
        return float(recipe.training_loss(batch)[0].detach())

    before = fixed_loss()
    for _ in range(steps):
        loss, _ = recipe.training_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return fixed_loss() / before
