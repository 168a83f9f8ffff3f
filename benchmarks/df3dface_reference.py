"""Reference control keeps the lips on the audio (DF-3DFace §3.6, issue 14): lip-sync figures of a
model that holds references on the synthetic test split, sampled freely and with each clip's own
identity and head pose given.

    .venv/bin/python benchmarks/df3dface_reference.py --model runs/df3dface/model.pt --data data/synth-vertex

For the first ``--clips`` clips of ``--split`` (sorted by id), the /p b m/ and open vowels come
from forced alignment of the clip's text (cached, ``facemotion.metrics.lipsync.SegmentCache``);
the model gets the audio alone, plus, in the second pass, the clip's neutral face
(``space.identity_from_arrays``) and head pose (the ground truth's) as references. Prints closure
rate, open/bilabial ratio and shut open vowels (definitions: ``facemotion.metrics.lipsync``;
aperture of the motion between the space's lip landmarks on its mean face,
``aperture_from_motion``, so the two passes differ only in what the references do to the lips)
for both, and the closure difference (the issue's acceptance: at most 0.05).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from facemotion.api import load_animator
from facemotion.audio.io import load_audio
from facemotion.data.native import load_motion, read_manifest
from facemotion.data.windows import motion_vectors
from facemotion.metrics.lipsync import SegmentCache, SpeechItem, aperture_from_motion, evaluate_real_speech


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a checkpoint of a model that holds references (df3dface)")
    p.add_argument("--data", type=Path, required=True, help="native dataset (e.g. data/synth-vertex)")
    p.add_argument("--split", default="test", help="manifest split (default: test, held-out voices)")
    p.add_argument("--clips", type=int, default=20, help="clips, the first by id (default: 20)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed of every clip (default: 0)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument("--cache", type=Path, help="segment cache JSON (default ~/.cache/facemotion)")
    args = p.parse_args(argv)

    animator = load_animator(args.model)
    recipe, space = animator.recipe, animator.space
    records = sorted(read_manifest(args.data, args.split), key=lambda r: str(r["id"]))[:args.clips]
    by_audio = {(args.data / r["audio"]).resolve(): r for r in records}
    items = [SpeechItem(path, str(r["text"])) for path, r in by_audio.items()]
    cache = SegmentCache(args.cache)

    def generate(given: bool):
        def aperture(path: Path) -> np.ndarray:
            rec = by_audio[Path(path).resolve()]
            features = animator.audio_features(load_audio(path))
            refs = {}
            if given:
                arrays = load_motion(args.data, rec)
                gt = torch.from_numpy(motion_vectors(space, arrays))[:len(features)]
                pose = space.head_pose(gt)
                refs = {"identity": space.identity_from_arrays(arrays),
                        "pose": torch.cat([pose, pose[-1:].expand(len(features) - len(pose), -1)])}
            with torch.inference_mode():
                motion = recipe.sample(features, steps=args.steps, generator=torch.Generator().manual_seed(args.seed),
                                       **refs)
            return aperture_from_motion(space, motion[0].numpy())
        return aperture

    reports = {name: evaluate_real_speech(generate(given), items, animator.fps, cache)
               for name, given in (("free", False), ("identity and pose given", True))}
    for name, report in reports.items():
        print(f"== {args.model} on {args.data} [{args.split}], {len(items)} clips, {name}\n{report.summary()}")
    free, held = (r.figures()["closure_rate"] for r in reports.values())
    print(f"closure difference (given - free): {held - free:+.3f} (acceptance: |difference| <= 0.05)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
