"""Streaming 3DFacePolicy on this CPU (issue 16): does it keep up with real time, and how long from
an audio chunk in to its motion frames out?

Speech (the examples and ``realval`` recordings, joined to ``--seconds``) is fed to
``Animator.stream`` in chunks of ``--chunk-ms``, twice:

- **as fast as possible**: the real-time factor (processing time / audio duration);
- **paced at real time** (chunk i is handed over when its last sample would have been recorded):
  the latency of each motion frame, from the moment the chunk holding the end of that frame's
  audio arrived to the moment the frame came out (median, 95th percentile, max). It includes the
  model's audio lookahead (``FacePolicy.lookahead_frames``) and the wait for the rest of a chunk.

    .venv/bin/python benchmarks/facepolicy_stream.py [--model facepolicy] [--seconds 60] [--chunk-ms 100]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from facemotion.api import load_animator
from facemotion.audio.io import SAMPLE_RATE, load_audio

ROOT = Path(__file__).resolve().parents[1]


def speech(seconds: float) -> np.ndarray:
    """``seconds`` of real speech ``[N]`` at 16 kHz: the example and the realval recordings, in
    order, repeated as needed."""
    files = sorted((ROOT / "examples").glob("*.wav")) + sorted((ROOT.parent / "shared" / "audio" / "realval").rglob("*.wav"))
    waves, total = [], 0
    while total < seconds * SAMPLE_RATE:
        for f in files:
            waves.append(load_audio(f))
            total += len(waves[-1])
            if total >= seconds * SAMPLE_RATE:
                break
    return np.concatenate(waves)[:int(seconds * SAMPLE_RATE)]


def run(animator, wave: np.ndarray, chunk: int, paced: bool) -> tuple[float, np.ndarray, int]:
    """Stream ``wave`` in chunks of ``chunk`` samples. Returns (wall seconds, per-frame latency in
    seconds (paced) or an empty array, frames)."""
    arrival: list[float] = []
    start = time.perf_counter()

    def chunks():
        for i in range(0, len(wave), chunk):
            due = start + min(i + chunk, len(wave)) / SAMPLE_RATE
            if paced and time.perf_counter() < due:
                time.sleep(due - time.perf_counter())
            arrival.append(time.perf_counter())
            yield wave[i:i + chunk]

    latency, frames = [], 0
    for piece in animator.stream(chunks(), seed=0):
        now = time.perf_counter()
        for n in range(frames, frames + piece.num_frames):
            end = min(len(wave), int(np.ceil((n + 1) / animator.fps * SAMPLE_RATE))) - 1
            latency.append(now - arrival[min(end // chunk, len(arrival) - 1)])
        frames += piece.num_frames
    return time.perf_counter() - start, np.asarray(latency if paced else []), frames


def main() -> None:
    """Print the real-time factor and the latency figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="facepolicy", help="shipped model name or checkpoint (default: facepolicy)")
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds of speech (default 60)")
    ap.add_argument("--chunk-ms", type=float, default=100.0, help="audio chunk length, ms (default 100)")
    args = ap.parse_args()
    animator = load_animator(args.model)
    wave = speech(args.seconds)
    chunk = int(round(args.chunk_ms / 1e3 * SAMPLE_RATE))
    run(animator, wave[:SAMPLE_RATE], chunk, paced=False)  # warm-up
    wall, _, frames = run(animator, wave, chunk, paced=False)
    duration = len(wave) / SAMPLE_RATE
    print(f"{args.model}: {duration:.0f} s of speech, {frames} frames at {animator.fps:g} fps, chunks of "
          f"{args.chunk_ms:g} ms, lookahead {animator.recipe.lookahead_frames} frame(s), "
          f"{animator.recipe.default_sampling['steps']} DDIM steps")
    print(f"as fast as possible: {wall:.1f} s, real-time factor {wall / duration:.3f}")
    wall, lat, _ = run(animator, wave, chunk, paced=True)
    print(f"paced at real time: {wall:.1f} s for {duration:.1f} s of audio; latency chunk in -> frame out: "
          f"median {1e3 * np.median(lat):.0f} ms, 95th percentile {1e3 * np.percentile(lat, 95):.0f} ms, "
          f"max {1e3 * lat.max():.0f} ms")


if __name__ == "__main__":
    main()
