"""The ``facemotion`` command line: argument parsing only; the work lives in the packages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facemotion import __version__

EXPORT_FORMATS = ("npz", "glb", "usd", "csv", "obj", "ply", "mp4")
OVERWRITE_HELP = "replace outputs that already exist (default: refuse)"
ASR_MODEL_HELP = ("local CTranslate2 Whisper directory (any faster-whisper model) for models that use Whisper "
                  "(default: the bundled tiny.en)")
FLAME_MODEL_HELP = ("your FLAME model file (FLAME 2020 generic_model.pkl, FLAME 2023 .pkl or .npz) for a model in "
                    "the flame face space (default: the path the checkpoint was trained with)")


def _export(args) -> int:
    from facemotion.api import export_file

    out = export_file(args.input, to=args.to, output=args.output, audio=args.audio,
                      with_vertices=args.with_vertices, size=args.size, overwrite=args.overwrite,
                      csv_fps=args.csv_fps)
    print(out)
    return 0


def _retarget(args) -> int:
    from facemotion.animation import Animation
    from facemotion.export.retarget import retarget_glb

    report = retarget_glb(Animation.load(args.input), args.avatar, args.output, mapping=args.mapping,
                          overwrite=args.overwrite)
    total = len(report.matched) + len(report.unmatched)
    print(f"matched {len(report.matched)}/{total} ARKit blendshapes; unmatched: {', '.join(report.unmatched) or 'none'}")
    print(f"avatar targets not driven: {', '.join(report.ignored) or 'none'}; "
          f"head rotation on node: {report.head_node or 'none (no head or neck node)'}")
    print(report.path)
    return 0


def _render(args) -> int:
    args.to = "mp4"
    return _export(args)


def _synth(args) -> int:
    from facemotion.synth import generate_corpus

    spontaneous = {} if args.spontaneous is None else {"spontaneous": args.spontaneous}
    generate_corpus(out=args.out, hours=args.hours, workers=args.workers, seed=args.seed,
                    fps=args.fps, **spontaneous)
    return 0


def _train(args) -> int:
    from facemotion.recipes import train

    train(recipe=args.recipe, data=args.data, out=args.out, max_steps=args.max_steps,
          batch_size=args.batch_size, resume=not args.no_resume, config=args.config,
          audio_model_dir=args.audio_model_dir, accelerator=args.accelerator,
          devices=args.devices, init=args.init, asr_model_dir=args.asr_model_dir, space_name=args.space,
          flame_model=args.flame_model)
    return 0


def _train_bilabial(args) -> int:
    from facemotion.data.bilabial import train_bilabial_command

    print(train_bilabial_command(args.data, args.out, hours=args.hours, asr_model_dir=args.asr_model_dir,
                                 seed=args.seed, overwrite=args.overwrite, join=args.join))
    return 0


def _generate(args) -> int:
    from facemotion.api import generate_command

    return generate_command(args)


def _style(args) -> int:
    from facemotion.api import style_command

    return style_command(args)


def _bench(args) -> int:
    from facemotion.bench import bench_command

    return bench_command(args)


def _eval(args) -> int:
    from facemotion.metrics.evaluate import eval_command

    return eval_command(args)


def _convert(args) -> int:
    if args.source == "synth":  # the data engine's own corpus (synth depends on data, not the reverse)
        from facemotion.synth.vertices import write_vertex_corpus

        print(f"{len(write_vertex_corpus(args.src, args.out, overwrite=args.overwrite))} clips -> {args.out}")
        return 0
    from facemotion.data.readers import convert

    records = convert(args.source, args.src, args.out, stride=args.stride, fps=args.fps, split=args.split,
                      overwrite=args.overwrite, flame_model=args.flame_model)
    print(f"{len(records)} clips -> {args.out}")
    return 0


def _serve(args) -> int:
    from facemotion.studio import serve

    serve(host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``facemotion`` command (all subcommands)."""
    p = argparse.ArgumentParser(
        prog="facemotion",
        description="Speech in, 3D facial animation out (blendshapes, head pose, meshes, video).",
    )
    p.add_argument("--version", action="version", version=f"facemotion {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser("generate", help="animate a speech recording with a trained model",
                       description="Animate SPEECH (wav, flac, ogg, mp3) and write every requested "
                                   "format into OUTDIR. The seed is printed so a run can be repeated.")
    g.add_argument("speech", type=Path, help="speech recording")
    g.add_argument("-o", "--out", type=Path, default=Path("out"), help="output directory (default: out)")
    g.add_argument("--model", default="default",
                   help="'default' (shipped model) or a checkpoint path (.pt)")
    g.add_argument("--style", type=Path, help="style vector (.npz from `facemotion style`)")
    g.add_argument("--style-clip", type=Path,
                   help="reference motion (.npz in the model's face space, e.g. blendshapes/head_rotation) to take the style from")
    g.add_argument("--seed", type=int, help="random seed (default: drawn and printed)")
    g.add_argument("--identity", metavar="SEED|FILE.npy",
                   help="face shape: an integer draws identity coefficients ~ N(0, 1) with that seed, "
                        "a .npy file holds them ([K]); default: the mean face")
    g.add_argument("--pose-from", type=Path, metavar="REF.npz",
                   help="hold the head pose of this animation .npz (models that generate pose with "
                        "references, e.g. df3dface); default: generated")
    g.add_argument("--prompt", help="text prompt for the talking style, e.g. 'an angry man shouting' "
                                    "(models that take prompts: media2face)")
    g.add_argument("--prompt-schedule", type=Path, metavar="SCHEDULE.json",
                   help="per-time prompts, JSON [{\"start\": s, \"end\": s, \"prompt\": text}, ...], "
                        "blended where they hand over (media2face)")
    g.add_argument("--keyframes", type=Path, metavar="KEYS.json",
                   help="keyframes to hold, JSON [{\"frame\" or \"time\", \"blendshapes\": {name: weight} "
                        "or \"expression\": name, \"head_rotation\": [3]}, ...] (media2face)")
    g.add_argument("--num-samples", type=int, default=1, help="samples to draw (default: 1)")
    g.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    g.add_argument("--w-audio", type=float, help="audio guidance scale w_a (DiffPoseTalk eq. 10)")
    g.add_argument("--w-style", type=float, help="style guidance scale w_s (DiffPoseTalk eq. 10; "
                                                 "media2face: the prompt scale s_P of eq. 9)")
    g.add_argument("--lip-closure", type=float, metavar="THRESHOLD",
                   help="shut the lips where Whisper's phones give /p b m/ at least this evidence "
                        "(0 to 1; 0: off; default: the model's; diffposetalk models with Whisper's phones)")
    g.add_argument("--formats", default=None,
                   help="comma-separated output formats out of " + ",".join(EXPORT_FORMATS)
                   + " (default: npz,glb,csv,usd,mp4; npz,mp4 for a model whose face space has no blendshapes)")
    g.add_argument("--with-vertices", action="store_true",
                   help="also store vertices, faces and landmarks in the .npz")
    g.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    g.add_argument("--audio-model-dir", type=Path,
                   help="local directory of a wav2vec2/HuBERT model (models that use one)")
    g.add_argument("--asr-model-dir", type=Path, help=ASR_MODEL_HELP)
    g.add_argument("--flame-model", type=Path, help=FLAME_MODEL_HELP)
    g.set_defaults(func=_generate)

    e = sub.add_parser("export", help="convert an animation .npz to another format",
                       description="Convert INPUT.npz (as written by `facemotion generate`) to "
                                   "npz, glb, usd, csv (ARKit Live Link Face), obj/ply sequences or mp4.")
    e.add_argument("input", type=Path, help="animation .npz")
    e.add_argument("--to", required=True, choices=EXPORT_FORMATS, help="output format")
    e.add_argument("-o", "--output", type=Path, help="output path (default: INPUT with the new suffix)")
    e.add_argument("--audio", type=Path, help="speech to mux into the video")
    e.add_argument("--with-vertices", action="store_true",
                   help="npz: also store vertices, faces and landmarks")
    e.add_argument("--size", type=int, default=512, help="video size in pixels (default: 512)")
    e.add_argument("--csv-fps", type=float, choices=(30.0, 60.0), metavar="{30,60}",
                   help="csv: timecode rate, the motion resampled to it (default: the animation's if it is 30 "
                        "or 60, else 60, which every version of Unreal's Live Link Face importer reads right)")
    e.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    e.set_defaults(func=_export)

    r = sub.add_parser("render", help="render an animation .npz to mp4 (same as export --to mp4)")
    r.add_argument("input", type=Path, help="animation .npz")
    r.add_argument("-o", "--output", type=Path, help="output .mp4 (default: INPUT.mp4)")
    r.add_argument("--audio", type=Path, help="speech to mux into the video")
    r.add_argument("--size", type=int, default=512, help="video size in pixels (default: 512)")
    r.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    r.set_defaults(func=_render, with_vertices=False, csv_fps=None)

    rt = sub.add_parser("retarget", help="drive your own ARKit-rigged avatar (.glb) with an animation .npz",
                        description="Add the animation of INPUT.npz to a copy of AVATAR.glb: its morph targets "
                                    "driven by name (Apple's ARKit names, with _L/_R or Left/Right, any case, "
                                    "snake_case or a prefix such as blendShape1.), its head or neck node turned "
                                    "by the head rotation; materials, skeleton and the rest kept. Prints which "
                                    "ARKit names matched.")
    rt.add_argument("input", type=Path, help="animation .npz with blendshapes")
    rt.add_argument("--avatar", type=Path, required=True, help="avatar .glb with ARKit-like morph targets")
    rt.add_argument("-o", "--output", type=Path, required=True, help="animated .glb to write")
    rt.add_argument("--mapping", type=Path,
                    help='JSON file {"avatar target": "arkitName" or null} overriding the name matching')
    rt.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    rt.set_defaults(func=_retarget)

    s = sub.add_parser("synth", help="generate a synthetic talking-face corpus from text (TTS)",
                       description="Generate paired speech/animation clips for the built-in head "
                                   "into a native dataset. Resumes where an interrupted run stopped.")
    s.add_argument("--hours", type=float, required=True, help="hours of speech to generate")
    s.add_argument("--out", type=Path, required=True, help="dataset directory")
    s.add_argument("--workers", type=int, default=None, help="parallel workers (default: CPU count)")
    s.add_argument("--seed", type=int, default=0, help="corpus seed (default: 0)")
    s.add_argument("--fps", type=float, default=25.0, help="motion frame rate (default: 25)")
    s.add_argument("--spontaneous", type=float, default=None, metavar="FRACTION",
                   help="fraction of clips spoken spontaneously: fillers (um, uh, mm, hm, mm-hm), "
                        "hesitations, breaths, some whispered, creaky or falsetto "
                        "(default: 0.3; 0 gives the corpus of the shipped models)")
    s.set_defaults(func=_synth)

    t = sub.add_parser("train", help="train a recipe on a native dataset (resumes from the last checkpoint)")
    t.add_argument("--recipe", default="diffposetalk", help="recipe name (default: diffposetalk)")
    t.add_argument("--data", type=Path, required=True, help="native dataset directory")
    t.add_argument("--space", help="face space (blendshape, vertex, flame; default: the recipe's config)")
    t.add_argument("--flame-model", type=Path,
                   help="--space flame: your FLAME model file (FLAME 2020 generic_model.pkl, FLAME 2023 .pkl or "
                        ".npz); read at run time, never put into the checkpoint")
    t.add_argument("--out", type=Path, default=Path("runs/train"), help="run directory")
    t.add_argument("--max-steps", type=int, default=None, help="optimizer steps")
    t.add_argument("--batch-size", type=int, default=None, help="batch size")
    t.add_argument("--config", type=Path, help="JSON file overriding the recipe's config")
    t.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    t.add_argument("--init", type=Path,
                   help="checkpoint (.pt) whose weights start the run (fine-tuning; new audio channels start at 0)")
    t.add_argument("--audio-model-dir", type=Path, help="local wav2vec2/HuBERT directory")
    t.add_argument("--asr-model-dir", type=Path, help=ASR_MODEL_HELP)
    t.add_argument("--accelerator", default="auto", help="Lightning accelerator (cpu, gpu, auto)")
    t.add_argument("--devices", default="auto", help="Lightning devices")
    t.set_defaults(func=_train)

    tb = sub.add_parser("train-bilabial", help="train the bilabial detector of the asr phone search",
                        description="Learn which frames of Whisper's encoder states are /p b m/ from a synthetic "
                                    "corpus's train clips (facemotion synth), for the asr phone search.")
    tb.add_argument("--data", type=Path, nargs="+", required=True,
                    help="synthetic corpus directories (facemotion synth); their train clips are mixed")
    tb.add_argument("--out", type=Path, default=Path("runs/bilabial.npz"), help="detector .npz to write")
    tb.add_argument("--hours", type=float, default=1.5, help="hours of train clips to learn from, in all (default: 1.5)")
    tb.add_argument("--seed", type=int, default=0, help="seed of the clip order and the weights (default: 0)")
    tb.add_argument("--join", type=Path, metavar="DETECTOR",
                    help="a detector .npz whose networks the new one joins (an ensemble: probabilities averaged)")
    tb.add_argument("--asr-model-dir", type=Path, help=ASR_MODEL_HELP)
    tb.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    tb.set_defaults(func=_train_bilabial)

    st = sub.add_parser("style", help="extract a speaking-style vector from a reference clip")
    st.add_argument("clip", type=Path, help="reference motion .npz in the model's face space (e.g. blendshapes, head_rotation)")
    st.add_argument("-o", "--output", type=Path, required=True, help="style .npz to write")
    st.add_argument("--model", default="default", help="'default' or a checkpoint path")
    st.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    st.set_defaults(func=_style)

    b = sub.add_parser("bench", help="real-time factor of generation for 10 s and 60 s of speech")
    b.add_argument("--model", default="default", help="'default' or a checkpoint path")
    b.add_argument("--durations", default="10,60", help="comma-separated seconds (default: 10,60)")
    b.add_argument("--formats", help="formats to export in the timing (default: those of npz,glb,csv,usd,mp4 "
                                     "that the model's face space can express)")
    b.add_argument("--speech", type=Path,
                   help="recording to loop to each duration (default: the CMU ARCTIC example)")
    b.add_argument("--long-audio", choices=("overlapped", "autoregressive"),
                   help="how a model that has both ways (media2face) covers audio longer than a window: "
                        "overlapped windows denoised in one batch, or windows one after another "
                        "(default: the model's)")
    b.set_defaults(func=_bench)

    ev = sub.add_parser("eval", help="evaluate models on a dataset split (LVE, MVE, FDD, NLDD, MOD, BA, diversity)",
                        description="Sample every clip of a split (default: test, held-out speakers) with each "
                                    "model, or read another system's predictions, and compare with the ground "
                                    "truth; prints the figures pooled over clips (mean ± 95%% interval) and "
                                    "optionally writes per-clip JSON and a comparison table (Markdown, CSV, JSON).")
    ev.add_argument("--model", action="append",
                    help="'default' (shipped model), a checkpoint path (.pt), or a folder of another system's "
                         "predictions (<clip id>.npy, [T, V*3] metres, FaceFormer style); repeat for a comparison "
                         "table with one row per model (default: default)")
    ev.add_argument("--data", type=Path, required=True, help="native dataset directory")
    ev.add_argument("--split", default="test", help="manifest split to evaluate (default: test)")
    ev.add_argument("--max-clips", type=int, help="evaluate only the first N clips, sorted by id (default: all)")
    ev.add_argument("--num-samples", type=int, default=5, help="samples per clip, for diversity (default: 5)")
    ev.add_argument("--seed", type=int, default=0, help="sampling seed of every clip (default: 0)")
    ev.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    ev.add_argument("--style-from-gt", action="store_true",
                    help="condition on the style of each clip's own ground truth (default: no style)")
    ev.add_argument("--runs", type=int, default=1,
                    help="sample every clip this many times (seeds SEED, SEED+1, ...): intervals over runs too")
    ev.add_argument("--multimodality", type=int, default=0, metavar="K",
                    help="also DF-3DFace's Table 3: multimodality of identity, motion, pose and mesh over K samples "
                         "(even) per clip, with the clip's identity and head pose given as references or not "
                         "(default: 0, off)")
    ev.add_argument("--json", type=Path, help="write the per-clip and pooled figures to this JSON file")
    ev.add_argument("--out", type=Path, metavar="PREFIX",
                    help="write the comparison table (one row per --model, mean ± 95%% interval, each metric's "
                         "convention) as PREFIX.md, PREFIX.csv and PREFIX.json")
    ev.add_argument("--regions", type=Path,
                    help="predictions folders: lve.txt/fdd.txt region files of their topology (default: the "
                         "shared FLAME/VOCASET files for 5023 vertices)")
    ev.add_argument("--audio-model-dir", type=Path, help="local wav2vec2/HuBERT directory (models that use one)")
    ev.add_argument("--asr-model-dir", type=Path, help=ASR_MODEL_HELP)
    ev.add_argument("--flame-model", type=Path, help=FLAME_MODEL_HELP)
    ev.set_defaults(func=_eval)

    from facemotion.data.readers import READERS

    cv = sub.add_parser("convert", help="convert a dataset (VOCASET, BIWI, DiffPoseTalk LMDB, Live Link Face CSV) "
                                        "into the native format",
                        description="Read SRC (VOCASET or BIWI in the FaceFormer/CodeTalker layout: vertices_npy/, "
                                    "wav/, templates.pkl, with FaceFormer's splits; DiffPoseTalk's HDTF/TFHP LMDB "
                                    "folder with its split files; Live Link Face CSVs with "
                                    "their audio; or a corpus of `facemotion synth`, decoded onto the built-in "
                                    "head's face region with each pseudo-speaker's face) clip by clip into a "
                                    "native dataset OUT.")
    cv.add_argument("--from", dest="source", required=True,
                    choices=(*READERS, "synth"), help="source layout")
    cv.add_argument("src", type=Path, help="source folder (or one CSV)")
    cv.add_argument("-o", "--out", type=Path, required=True, help="native dataset folder to write")
    cv.add_argument("--stride", type=int, default=1,
                    help="vocaset/biwi: keep every N-th frame (FaceFormer trains VOCASET at 60/2 = 30 fps)")
    cv.add_argument("--fps", type=float, help="livelink-csv: frame rate (default: from the timecodes)")
    cv.add_argument("--split", default="train", help="livelink-csv: split of every clip (default: train)")
    cv.add_argument("--flame-model", type=Path,
                    help="diffposetalk-lmdb: check every clip's shape/expression sizes against this FLAME model")
    cv.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    cv.set_defaults(func=_convert)

    sv = sub.add_parser("serve", help="run the local web studio (upload or record speech, watch, download)",
                        description="Serve the facemotion studio: upload or record speech, pick model, seed and "
                                    "samples, watch the head in the browser and download npz, glb, usd, csv, mp4.")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default: 127.0.0.1, this machine only; the studio has no authentication)")
    sv.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    sv.set_defaults(func=_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``facemotion`` console script; returns the exit status.

    Exit status: 0 done; 1 an error the user can fix (a missing file, a file that is not audio,
    an output that exists, ...: raised by the packages as
    :class:`facemotion.errors.FacemotionError` and printed as one line
    ``facemotion: error: ...``); 2 bad arguments; 130 / 143 interrupted by SIGINT / SIGTERM
    (one line ``facemotion: interrupted``, after temporary files and child processes are
    cleaned up). Warnings of facemotion's own print as ``facemotion: warning: ...``.
    """
    from facemotion.errors import FacemotionError, show_warnings_as_one_line
    from facemotion.processes import Interrupted, stop_on_signals

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    show_warnings_as_one_line()
    with stop_on_signals() as received:
        try:
            return int(args.func(args) or 0)
        except FacemotionError as exc:
            print(f"facemotion: error: {exc}", file=sys.stderr)
            return 1
        except Interrupted as exc:
            print("facemotion: interrupted" + (f"; {exc.hint}" if exc.hint else ""), file=sys.stderr)
            return exc.exit_status
        except Exception:
            if received.signum is None:
                raise
            # the Interrupted was raised inside a C call and came out wrapped (ctypes.ArgumentError)
            print("facemotion: interrupted", file=sys.stderr)
            return 128 + received.signum


if __name__ == "__main__":
    sys.exit(main())
