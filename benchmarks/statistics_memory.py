"""Peak memory of the normalisation statistics as the corpus grows (issue 13 acceptance).

Builds synthetic native datasets of 1,000 and 10,000 tiny clips (``--frames`` frames of ARKit
motion each, plus cached audio features of ``--channels`` channels), then, in a fresh process
per corpus, computes ``facemotion.data.windows.dataset_statistics`` over every clip and prints
the peak resident set size (``ru_maxrss``) before and after, and the growth. Streaming keeps the
growth flat; concatenating the clips (``--concat``, what the code did before) grows with the
corpus.

    .venv/bin/python benchmarks/statistics_memory.py [--clips 1000 10000] [--frames 50] [--concat]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_corpus(root: Path, clips: int, frames: int, channels: int, seed: int = 0) -> None:
    """A native dataset of ``clips`` clips (motion ``.npz`` + cached features ``.npy``, no audio)."""
    rng = np.random.default_rng(seed)
    feats = root / "features" / "bench"
    feats.mkdir(parents=True)
    with open(root / "manifest.jsonl", "w") as manifest:
        for i in range(clips):
            cid = f"c{i:05d}"
            np.savez(root / f"{cid}.npz", blendshapes=rng.random((frames, 52), np.float32),
                     head_rotation=(0.1 * rng.standard_normal((frames, 3))).astype(np.float32), fps=25)
            np.save(feats / f"{cid}.npy", rng.standard_normal((frames, channels)).astype(np.float32))
            manifest.write(json.dumps({"id": cid, "speaker": "s", "split": "train", "fps": 25, "audio": f"{cid}.wav",
                                       "motion": f"{cid}.npz", "duration": frames / 25}) + "\n")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(root: Path, concat: bool) -> None:
    """Compute the statistics of ``root`` and print one JSON line of figures."""
    from facemotion.data.native import read_manifest
    from facemotion.data.windows import ClipStore, dataset_statistics
    from facemotion.face.space import BlendshapeSpace

    space = BlendshapeSpace()
    records = read_manifest(root, "train")
    dirs = [root / "features" / "bench"]
    store = ClipStore(root, dirs, space, max_bytes=0)
    store.get(records[0])  # everything imported and loaded once before the baseline
    before = _peak_mib()
    start = time.perf_counter()
    if concat:  # the pre-streaming code: every clip kept, then concatenated in float64
        feats, motions = zip(*(store.get(r) for r in records))
        m, a = np.concatenate(motions).astype(np.float64), np.concatenate(feats).astype(np.float64)
        mean = m.mean(0)
        m.std(0), a.mean(0), a.std(0)
    else:
        mean = dataset_statistics(root, records, dirs, space, max_clips=None)["motion"].mean
    print(json.dumps({"clips": len(records), "peak_before_mib": before, "peak_after_mib": _peak_mib(),
                      "seconds": time.perf_counter() - start, "mean0": float(mean[0])}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--frames", type=int, default=50, help="frames per clip")
    ap.add_argument("--channels", type=int, default=131, help="audio feature channels")
    ap.add_argument("--concat", action="store_true", help="measure the old concatenating code instead")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.concat)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.clips:
            root = Path(tmp) / f"corpus{n}"
            make_corpus(root, n, args.frames, args.channels)
            out = subprocess.run([sys.executable, __file__, "--child", str(root)] + ["--concat"] * args.concat,
                                 check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            r = json.loads(out)
            print(f"{r['clips']:6d} clips x {args.frames} frames: peak RSS {r['peak_before_mib']:.1f} MiB before, "
                  f"{r['peak_after_mib']:.1f} MiB after statistics (+{r['peak_after_mib'] - r['peak_before_mib']:.1f} MiB)"
                  f", {r['seconds']:.1f} s{' (concatenating)' if args.concat else ''}")


if __name__ == "__main__":
    main()
