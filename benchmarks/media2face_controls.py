"""Media2Face controls, measured (issue 15): what a text prompt does to the upper face and the smile,
and whether a keyframe edit keeps the lips on the speech.

    .venv/bin/python benchmarks/media2face_controls.py --model media2face --data data/synth

Prompt control: for the first ``--clips`` clips of ``--split`` (sorted by id; held-out voices),
each clip is sampled with the same seed under prompt A and prompt B, and the per-clip means of
``browDown*`` + ``noseSneer*`` (the frown) and of ``mouthSmile*`` (the smile), in ARKit weight
units, are compared: the mean difference A - B over clips with its 95% interval (1.96 standard
errors). Pairs: "an angry person" / "a happy person" (the issue's), and unseen paraphrases
"a furious man yelling" / "a joyful woman laughing" (the corpus's 146 prompts say "angry ... frowning"
and "cheerful ... smiling"; "happy", "furious", "yelling", "joyful", "laughing" are unseen).

Keyframe edit: each clip's unprompted sample is edited (``Animator.edit``, strength 0.5) with an
"angry" keyframe at 1 s; prints the largest weight error at the key and the closure rate on
/p b m/ (forced alignment of the clip's text, ``facemotion.metrics.lipsync``) of the unedited and
the edited sample (the issue's acceptance: within 0.05).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facemotion.api import load_animator
from facemotion.audio.io import load_audio
from facemotion.data.native import read_manifest
from facemotion.face.arkit import ARKIT_BLENDSHAPES
from facemotion.face.keyframes import parse_keyframes
from facemotion.metrics.lipsync import SegmentCache, SpeechItem, aperture_from_motion, evaluate_real_speech

PAIRS = (("an angry person", "a happy person"), ("a furious man yelling", "a joyful woman laughing"))
FROWN = [i for i, n in enumerate(ARKIT_BLENDSHAPES) if n.startswith(("browDown", "noseSneer"))]
SMILE = [i for i, n in enumerate(ARKIT_BLENDSHAPES) if n.startswith("mouthSmile")]


def interval(values: list[float]) -> str:
    """``mean ± 1.96 standard errors`` of ``values``."""
    v = np.asarray(values, np.float64)
    return f"{v.mean():+.4f} ± {1.96 * v.std(ddof=1) / np.sqrt(len(v)):.4f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="media2face", help="'media2face' or a checkpoint of a prompt-taking model")
    p.add_argument("--data", type=Path, required=True, help="native dataset with text labels (e.g. data/synth)")
    p.add_argument("--split", default="test", help="manifest split (default: test, held-out voices)")
    p.add_argument("--clips", type=int, default=20, help="clips, the first by id (default: 20)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed of every clip (default: 0)")
    p.add_argument("--cache", type=Path, help="segment cache JSON (default ~/.cache/facemotion)")
    args = p.parse_args(argv)

    animator = load_animator(args.model)
    records = sorted(read_manifest(args.data, args.split), key=lambda r: str(r["id"]))[:args.clips]
    paths = [(args.data / r["audio"]).resolve() for r in records]
    features = {path: animator.audio_features(load_audio(path)) for path in paths}

    def weights(path: Path, prompt: str | None) -> np.ndarray:
        motion = animator.sample(features[path], seed=args.seed, prompt=prompt)
        return animator.space.to_arrays(motion)["blendshapes"]

    print(f"== prompt control: {args.model} on {args.data} [{args.split}], {len(paths)} clips, seed {args.seed}")
    print("per-clip mean weight difference A - B, mean ± 95% interval over clips")
    for a, b in PAIRS:
        frown, smile = [], []
        for path in paths:
            wa, wb = weights(path, a), weights(path, b)
            frown.append(wa[:, FROWN].mean() - wb[:, FROWN].mean())
            smile.append(wa[:, SMILE].mean() - wb[:, SMILE].mean())
        print(f"A {a!r} vs B {b!r}: browDown*+noseSneer* {interval(frown)}, mouthSmile* {interval(smile)}")

    key_frame = int(round(animator.fps))
    keys = [{"frame": key_frame, "expression": "angry"}]
    want = parse_keyframes(keys, animator.fps)[0].weights
    samples, key_errors = {}, []
    for path in paths:
        base = animator.to_animation(animator.sample(features[path], seed=args.seed), path, args.seed)
        edited = animator.edit(base, keyframes=keys, strength=0.5)
        key_errors.append(float(np.abs(edited.blendshapes[key_frame] - want).max()))
        samples[path] = {"unedited": base.motion, "edited": edited.motion}
    items = [SpeechItem(path, str(r["text"])) for path, r in zip(paths, records)]
    cache = SegmentCache(args.cache)
    closure = {}
    for name in ("unedited", "edited"):
        report = evaluate_real_speech(lambda path: aperture_from_motion(animator.space, samples[Path(path)][name]),
                                      items, animator.fps, cache)
        closure[name] = report.figures()["closure_rate"]
        print(f"== keyframe edit, {name}\n{report.summary()}")
    print(f"keyframe 'angry' at frame {key_frame}: max weight error {max(key_errors):.2e} (acceptance < 1e-3); "
          f"closure unedited {closure['unedited']:.3f}, edited {closure['edited']:.3f}, difference "
          f"{closure['edited'] - closure['unedited']:+.3f} (acceptance: |difference| <= 0.05)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
