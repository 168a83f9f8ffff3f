"""The Python entry point (:class:`Animator`) and the handlers of ``facemotion generate``,
``facemotion style`` and ``facemotion bench``.

>>> from facemotion import Animator
>>> anim = Animator.from_pretrained("default")
>>> res = anim.generate("speech.wav", seed=0)[0]     # a list of Animations, one per sample
>>> res.save("out/", formats=["npz", "glb", "csv"])
"""

from __future__ import annotations

import os
import secrets
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from facemotion.animation import Animation
from facemotion.errors import DataError, FacemotionError

EXAMPLE_SPEECH = Path(__file__).resolve().parents[2] / "examples" / "cmu_arctic_slt_a0009.wav"
"""The CMU ARCTIC example recording of a source checkout (used by ``facemotion bench``)."""


DEFAULT_GENERATE_FORMATS = "npz,glb,csv,usd,mp4"
"""``facemotion generate``'s formats unless ``--formats`` is given (for a model whose face space
has no blendshapes, the blendshape formats glb, csv and usd are left out)."""


def draw_seed() -> int:
    """A fresh random seed in ``[0, 2**31)`` (from :mod:`secrets`)."""
    return secrets.randbelow(2**31)


class Animator:
    """Speech in, :class:`~facemotion.animation.Animation` out, with a trained recipe.

    Build it with :meth:`from_pretrained` (a model shipped in the package) or
    :meth:`from_checkpoint` (a file written by ``facemotion train``). Any face space works:
    results are :class:`~facemotion.animation.Animation` s in the model's space.

    Attributes:
        recipe: the loaded recipe (``space``, ``fps``, ``default_sampling``, ``audio_features``,
            ``sample``, ``encode_style``; see :mod:`facemotion.recipes`).
        checkpoint: the checkpoint file it came from.
    """

    def __init__(self, recipe, checkpoint: Path | None = None):
        self.recipe = recipe
        self.checkpoint = checkpoint

    @classmethod
    def from_pretrained(cls, name: str = "default", audio_model_dir: str | Path | None = None,
                        asr_model_dir: str | Path | None = None) -> "Animator":
        """Load a model shipped in the package, ``facemotion/pretrained/<name>.pt``
        (``audio_model_dir``, ``asr_model_dir``: see :meth:`from_checkpoint`).

        Raises:
            DataError: no such model in the installed package.
        """
        folder = resources.files("facemotion") / "pretrained"
        entry = folder / f"{name}.pt"
        if not entry.is_file():
            shipped = sorted(p.name[:-3] for p in folder.iterdir() if p.name.endswith(".pt")) \
                if folder.is_dir() else []
            raise DataError(f"{entry}: no pretrained model named {name!r} in this installation "
                            f"(shipped: {shipped or 'none'}); train one with `facemotion train` "
                            "and pass its checkpoint path instead")
        with resources.as_file(entry) as path:
            return cls.from_checkpoint(path, audio_model_dir, asr_model_dir)

    @classmethod
    def from_checkpoint(cls, path: str | Path, audio_model_dir: str | Path | None = None,
                        asr_model_dir: str | Path | None = None, flame_model: str | Path | None = None) -> "Animator":
        """Load a recipe checkpoint (weights, config and normalisation in one ``.pt`` file).

        Args:
            path: checkpoint file.
            audio_model_dir: local wav2vec2/HuBERT directory, for models whose audio encoder
                needs one.
            asr_model_dir: CTranslate2 Whisper directory, for models whose audio encoder uses
                Whisper (default: the model the checkpoint names, else the bundled tiny.en).
            flame_model: the FLAME model file, for a model in the ``flame`` face space (default:
                the path it was trained with).
        Raises:
            DataError: the file is missing or is not a facemotion checkpoint, its Whisper
                model is missing or altered, or its FLAME model is missing.
        """
        from facemotion.recipes import load_checkpoint

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: checkpoint not found")
        return cls(load_checkpoint(path, audio_model_dir, asr_model_dir, flame_model=flame_model), path)

    @property
    def fps(self) -> float:
        """Frame rate of the generated motion (frames per second)."""
        return float(self.recipe.fps)

    def audio_features(self, wave: np.ndarray):
        """Audio features ``[T, C]`` (torch) at :attr:`fps` of a 16 kHz waveform ``[N]`` (numpy);
        audio over a minute is encoded in pieces cut in pauses (:func:`facemotion.audio.stream.encode_in_pieces`)."""
        import torch

        from facemotion.audio.stream import encode_in_pieces

        with torch.inference_mode():
            return encode_in_pieces(self.recipe.audio_features, np.asarray(wave, np.float32), self.fps)

    @property
    def space(self):
        """The model's face space (:class:`facemotion.face.space.FaceSpace`)."""
        return self.recipe.space

    def sample(self, features, seed, steps: int | None = None, style=None,
               w_audio: float | None = None, w_style: float | None = None, identity=None, pose=None,
               return_identity: bool = False, prompt=None, keyframes=None, lip_closure: float | None = None):
        """Motions for features ``[T, C]`` in one batched pass, each fully determined by its seed.

        Args:
            features: audio features ``[T, C]`` (torch, from :meth:`audio_features`).
            seed: an ``int`` (one motion ``[T, D]``) or a sequence of S ints (``[S, T, D]``):
                sample ``i`` is drawn with its own ``torch.Generator`` seeded ``seed[i]``, so it
                is the same whichever batch it is drawn in.
            steps, style, w_audio, w_style: see :meth:`generate`.
            identity: the shape input held by a model that generates identities (DF-3DFace), or
                None; pose: head pose ``[T, 3]`` radians held by a model that can (DF-3DFace).
            return_identity: also return the identities a model generates (None for other models).
            prompt, keyframes, lip_closure: see :meth:`generate`.
        Returns:
            numpy float32 ``[T, D]`` (int seed) or ``[S, T, D]`` (seeds), face-space motion; with
            ``return_identity`` a pair (motion, identities ``[S, I]`` or ``[I]``, or None).
        Raises:
            FacemotionError: a pose for a model that cannot hold one, a prompt or keyframes for
                a model that takes none, or ``lip_closure`` for a model without it.
        """
        import torch

        seeds = [int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        if style is not None:
            style = torch.as_tensor(np.asarray(style, np.float32))
        refs, joint = {}, bool(getattr(self.recipe, "generates_identity", False))
        if pose is not None:
            if not getattr(self.recipe, "holds_pose", False):
                raise FacemotionError(f"the {type(self.recipe).__name__} model cannot hold a given head pose")
            refs["pose"] = torch.as_tensor(np.asarray(pose, np.float32))
        if joint:
            refs.update(identity=identity, return_identity=True)
        refs.update(self._prompt_refs(prompt, keyframes))
        if lip_closure is not None:
            if "lip_closure" not in self.recipe.default_sampling:
                raise FacemotionError(f"the {type(self.recipe).__name__} model has no lip closure setting")
            refs["lip_closure"] = float(lip_closure)
        with torch.inference_mode():
            motion = self.recipe.sample(features, num_samples=len(seeds), style=style, steps=steps,
                                        w_audio=w_audio, w_style=w_style,
                                        generator=generators[0] if len(generators) == 1 else generators, **refs)
        motion, ids = motion if joint else (motion, None)
        one = isinstance(seed, (int, np.integer))
        motion = motion.float().cpu().numpy()
        motion = motion[0] if one else motion
        if not return_identity:
            return motion
        ids = None if ids is None else ids.float().cpu().numpy()
        return motion, (ids[0] if one and ids is not None else ids)

    def to_animation(self, motion: np.ndarray, audio: Path | None = None,
                     seed: int | None = None, identity: np.ndarray | None = None) -> Animation:
        """Wrap a motion ``[T, D]`` of the model's space as an Animation (brought into the space's
        valid range by ``space.constrain``: blendshape weights clipped to [0, 1]), with the shape
        input ``identity`` (None: the mean face; see :meth:`generate`)."""
        return Animation(self.space.constrain(np.asarray(motion, np.float32)), self.space, self.fps,
                         audio=audio, seed=seed, identity=identity)

    def generate(self, audio: str | Path | np.ndarray, seed: int | None = None,
                 num_samples: int = 1, steps: int | None = None, style=None,
                 w_audio: float | None = None, w_style: float | None = None,
                 identity=None, pose=None, prompt=None, keyframes=None,
                 lip_closure: float | None = None) -> list[Animation]:
        """Animate speech: ``num_samples`` animations drawn in one batched pass.

        Sample ``i`` is drawn with its own generator seeded ``seed + i``, so any sample of a run
        can be repeated with ``generate(audio, seed=seed + i)[0]`` (the same up to floating-point
        rounding of the batched network, ~1e-6).

        Args:
            audio: speech file (any format :func:`facemotion.audio.io.load_audio` reads) or a
                16 kHz mono float32 waveform ``[N]``.
            seed: random seed; drawn from :mod:`secrets` when None. Stored in each result.
            num_samples: number of animations to draw (>= 1).
            steps: sampler steps (default: the model's ``default_sampling``).
            style: style vector ``[d_s]`` (from :meth:`extract_style`), or None for the
                unconditional style.
            w_audio, w_style: classifier-free guidance scales (DiffPoseTalk eq. 10).
            identity: the face shape, shared by every sample (the space's shape input,
                ``space.shape_coefficients``): None (the mean face); for the blendshape space an
                ``int`` seed (coefficients drawn ~ N(0, 1)) or ``[K]`` coefficients of the
                built-in head's identity modes
                (:meth:`facemotion.face.rig.HeadRig.identity_coefficients`); for a vertex space a
                template offset ``[V, 3]`` metres. A model that generates identities (DF-3DFace)
                holds it as a reference, and draws one per sample when None.
            pose: head pose ``[T', 3]`` radians to hold (a model that can: DF-3DFace, §3.6), fitted
                to the speech's frames (cut, or its last frame repeated); None: generated.
            prompt: a model that takes prompts (Media2Face): a text, a prompt schedule
                ``[(start_s, end_s, text)]`` (blended per frame) or an embedding ``[P]``.
            keyframes: such a model's keyframes to hold: a JSON file, its parsed list, or
                :class:`facemotion.face.keyframes.Keyframe` s (:mod:`facemotion.face.keyframes`).
            lip_closure: a DiffPoseTalk model's threshold on Whisper's /p b m/ above which the
                lips are shut while sampling (0: none; default the model's; see
                :meth:`facemotion.recipes.diffposetalk.DiffPoseTalk.sample`).
        Returns:
            a list of ``num_samples`` :class:`Animation` s (``motion [T, D]`` in the model's
            space, ``fps``, ``audio``, ``seed``, ``identity``; ``blendshapes [T, 52]`` and
            ``head_rotation [T, 3]`` radians for the blendshape space).
        Raises:
            AudioError: the speech file is missing, not audio, empty or too short.
            FacemotionError: ``num_samples < 1``, an ``identity`` the space cannot take, or a
                ``pose`` the model cannot hold.
        """
        from facemotion.audio.io import load_audio

        path = None
        if isinstance(audio, (str, os.PathLike)):
            path = Path(audio)
            audio = load_audio(path)
        return self._generate(audio, path, seed, num_samples, steps, style, w_audio, w_style, identity, pose,
                              prompt, keyframes, lip_closure)

    def _generate(self, wave, path, seed, num_samples, steps, style, w_audio, w_style,
                  identity=None, pose=None, prompt=None, keyframes=None, lip_closure=None) -> list[Animation]:
        from facemotion.audio.vad import detect_speech
        from facemotion.face.arkit import HEAD_POSE_NAMES
        from facemotion.face.gate import gate_motion
        if num_samples < 1:
            raise FacemotionError(f"num_samples must be >= 1, got {num_samples}")
        try:
            identity = self.space.shape_coefficients(identity)
        except ValueError as exc:
            raise FacemotionError(str(exc)) from exc
        seed = draw_seed() if seed is None else int(seed)
        features = self.audio_features(wave)
        activity = detect_speech(wave, len(features), self.fps, path)  # the mouth rests where nobody speaks
        seeds = [seed + i for i in range(num_samples)]
        if pose is not None:  # fitted to the speech's frames: cut, or the last frame held
            pose = np.asarray(pose, np.float32).reshape(-1, 3)
            pose = pose[np.minimum(np.arange(len(features)), len(pose) - 1)]
        motions, ids = self.sample(features, seeds, steps, style, w_audio, w_style, identity, pose,
                                   return_identity=True, prompt=prompt, keyframes=keyframes,
                                   lip_closure=lip_closure)
        head = [i for i, n in enumerate(self.space.names) if n in HEAD_POSE_NAMES]
        out = []
        for i, (s, motion) in enumerate(zip(seeds, motions)):
            gated = gate_motion(motion, activity, self.recipe.space.names, fps=self.fps,
                                rng=np.random.default_rng(s))
            if pose is not None and len(head) == 3:
                gated[:, head] = motion[:, head]  # a given pose stays as given
            out.append(self.to_animation(gated, path, s, identity if ids is None else ids[i]))
        return out

    def _prompt_refs(self, prompt, keyframes) -> dict:
        """The ``prompt`` / ``keyframes`` keyword arguments of the recipe's ``sample`` (keyframes
        parsed at the model's fps).

        Raises:
            FacemotionError: either one for a model that takes none. DataError: bad keyframes.
        """
        from facemotion.face.keyframes import Keyframe, parse_keyframes, read_keyframes

        refs = {}
        if prompt is not None or keyframes:
            if not getattr(self.recipe, "takes_prompts", False):
                raise FacemotionError(f"the {type(self.recipe).__name__} model takes no prompt or keyframes")
            refs["prompt"] = prompt
        if keyframes:
            if isinstance(keyframes, (str, os.PathLike)):
                keyframes = read_keyframes(keyframes, self.fps)
            elif not all(isinstance(k, Keyframe) for k in keyframes):
                keyframes = parse_keyframes(list(keyframes), self.fps)
            refs["keyframes"] = keyframes
        return refs

    def edit(self, animation: Animation, keyframes=None, prompt=None, strength: float = 0.5,
             steps: int | None = None, seed: int | None = None, audio=None) -> Animation:
        """Edit an animation (Media2Face §4.2): resample it part-way (SDEdit from the animation
        noised ``strength`` of the way up the schedule) with ``keyframes`` held by inpainting and
        an optional ``prompt``, so the keys blend in while the rest stays close to the original
        and lip-synced to its speech.

        Args:
            animation: an animation of this model's space (or with ARKit blendshapes, encoded into
                it), e.g. from :meth:`generate` or :meth:`facemotion.animation.Animation.load`.
            keyframes, prompt: as in :meth:`generate`.
            strength: in (0, 1]; 1 resamples from scratch (keys and prompt still hold).
            steps: sampler steps; seed: default the animation's (else drawn).
            audio: the speech (file or 16 kHz waveform) when the animation has no ``audio``.
        Returns:
            the edited :class:`Animation` (same speech, seed and identity).
        Raises:
            FacemotionError: no speech, a model without prompts/keyframes, or ``strength`` out of
                range. DataError: an animation that does not fit the model's space.
        """
        import torch

        from facemotion.audio.io import load_audio

        speech = audio if audio is not None else animation.audio
        if speech is None:
            raise FacemotionError("edit needs the animation's speech: pass audio=")
        wave = load_audio(speech) if isinstance(speech, (str, os.PathLike)) else np.asarray(speech, np.float32)
        if tuple(animation.space.names) == tuple(self.space.names):
            motion = animation.motion
        else:
            try:
                motion = self.space.from_arrays(animation.space.to_arrays(animation.motion))
            except ValueError as exc:
                raise DataError(f"the animation does not fit the model's {type(self.space).__name__}: {exc}") from None
        features = self.audio_features(wave)
        frames = min(len(features), len(motion))
        seed = (animation.seed if animation.seed is not None else draw_seed()) if seed is None else int(seed)
        refs = self._prompt_refs(prompt, keyframes)
        with torch.inference_mode():
            out = self.recipe.sample(features[:frames], steps=steps, generator=torch.Generator().manual_seed(seed),
                                     init=torch.from_numpy(np.asarray(motion[:frames], np.float32)),
                                     strength=strength, **refs)
        return self.to_animation(out[0].float().cpu().numpy(), animation.audio, seed, animation.identity)

    def stream(self, chunks: Iterable[np.ndarray], seed: int | None = None,
               steps: int | None = None, threads: int | None = 1) -> Iterator[Animation]:
        """Streaming generation (3DFacePolicy): audio chunks in as they arrive, motion frames out as
        soon as the audio they need has arrived (the recipe's ``stream``: past audio plus a bounded
        lookahead, see :attr:`facemotion.recipes.facepolicy.FacePolicy.lookahead_frames`).

        The features are computed chunk by chunk (the audio encoder's ``stream``: the log-mel
        spectrogram without per-utterance normalisation) and equal the offline ones, so the frames
        equal those of :meth:`sample` on :meth:`audio_features` of the whole audio with the same
        seed, to float rounding. The speech-activity gate of :meth:`generate` is not applied.

        Args:
            chunks: 16 kHz mono float32 waveform pieces ``[N_i]`` (any sizes), in order.
            seed: random seed (drawn when None; stored in each piece).
            steps: sampler steps (default: the model's).
            threads: torch intra-op threads while streaming (restored at the end; None: unchanged).
                One is fastest for the batch-1 steps of a stream (on 2 busy cores, 60 s of speech
                took 5.5× real time with 2 threads and 0.9× with 1).
        Yields:
            :class:`Animation` pieces of k ≥ 1 frames each, in order, in the model's space.
        Raises:
            FacemotionError: a model or audio encoder that cannot stream.
        """
        import torch

        if not hasattr(self.recipe, "stream"):
            raise FacemotionError(f"the {type(self.recipe).__name__} model cannot stream "
                                  "(3DFacePolicy models can: --recipe facepolicy)")
        encoder = self.recipe.audio_encoder
        if not hasattr(encoder, "stream"):
            raise FacemotionError(f"the {encoder.name} audio encoder cannot stream (the mel encoder can)")
        features = encoder.stream(self.fps)
        seed = draw_seed() if seed is None else int(seed)

        def feature_chunks():
            for chunk in chunks:
                yield torch.from_numpy(features.push(chunk))
            yield torch.from_numpy(features.finish())

        before = torch.get_num_threads()
        try:
            if threads is not None:
                torch.set_num_threads(int(threads))
            with torch.inference_mode():
                for motion in self.recipe.stream(feature_chunks(), steps=steps,
                                                 generator=torch.Generator().manual_seed(seed)):
                    yield self.to_animation(motion[0].float().cpu().numpy(), seed=seed)
        finally:
            torch.set_num_threads(before)

    def extract_style(self, clip_npz: str | Path) -> np.ndarray:
        """Speaking-style vector of a reference motion clip (DiffPoseTalk's style encoder).

        Args:
            clip_npz: animation ``.npz`` in the layout of the model's space (e.g.
                ``blendshapes [T,52]``, ``head_rotation [T,3]``, ``fps``); resampled linearly to
                the model's fps if needed.
        Returns:
            ``[d_s]`` float32.
        Raises:
            DataError: the clip is missing or malformed, or not in the model's space.
        """
        import torch

        clip = Animation.load(clip_npz)
        try:
            motion = self.space.from_arrays(clip.to_arrays())
        except ValueError as exc:
            raise DataError(f"{clip_npz}: not a motion of the model's {type(self.space).__name__} ({exc})") from exc
        if abs(clip.fps - self.fps) > 1e-6:
            t_new = np.arange(round(clip.duration * self.fps)) / self.fps
            t_old = np.arange(clip.num_frames) / clip.fps
            motion = np.stack([np.interp(t_new, t_old, col) for col in motion.T], axis=1)
        with torch.inference_mode():
            style = self.recipe.encode_style(torch.from_numpy(motion.astype(np.float32)))
        return style.float().cpu().numpy()


def export_file(input: str | Path, to: str, output: str | Path | None = None,
                audio: str | Path | None = None, with_vertices: bool = False,
                size: int = 512, overwrite: bool = False, csv_fps: float | None = None) -> Path:
    """Convert an animation ``.npz`` to format ``to`` (the ``facemotion export`` command; it lives
    here, not in :mod:`facemotion.export`, which must not import :mod:`facemotion.animation`).

    The output is checked first (:func:`facemotion.export.outputs.check_output`) and its folder held for the run
    (:func:`facemotion.export.outputs.output_folder`), before the input is read.

    Args:
        input: animation ``.npz`` (see :meth:`facemotion.animation.Animation.load`).
        to: one of :data:`facemotion.export.FORMATS`.
        output: output path (default: :func:`facemotion.export.default_output`).
        audio: speech to mux into an mp4 (default: the audio recorded in the ``.npz``, if any).
        with_vertices: npz: also store vertices, faces and landmarks.
        size: mp4 frame size in pixels.
        overwrite: replace an existing output instead of refusing.
        csv_fps: csv: 30 or 60 fps (default: :func:`facemotion.export.arkit_csv.csv_rate`).

    Returns:
        The path written.

    Raises:
        DataError: ``input`` is missing or malformed, ``to`` is unknown or cannot express the
            animation's space, ``csv_fps`` is not 30 or 60.
        AudioError: the speech file cannot be read.
        OutputError: the output cannot be written there, exists (without ``overwrite``), or
            another run is writing into its folder.
    """
    from facemotion.export import FORMATS, default_output, write
    from facemotion.export.outputs import check_output, output_folder

    if to not in FORMATS:
        raise DataError(f"unknown export format {to!r}; choose from {list(FORMATS)}")
    output = Path(output) if output is not None else default_output(input, to)
    with output_folder(output.parent):
        check_output(output, directory=not FORMATS[to], overwrite=overwrite)
        anim = Animation.load(input)
        if audio is not None:
            anim.audio = Path(audio)
        return write(anim, to, output, with_vertices=with_vertices, size=size, csv_fps=csv_fps)


def load_animator(model: str, audio_model_dir: str | Path | None = None,
                  asr_model_dir: str | Path | None = None, flame_model: str | Path | None = None) -> Animator:
    """``model`` is a shipped model's name (e.g. ``"default"``) or a checkpoint path
    (``audio_model_dir``, ``asr_model_dir``, ``flame_model``: see :meth:`Animator.from_checkpoint`)."""
    if model.endswith(".pt") or os.sep in model or Path(model).is_file():
        return Animator.from_checkpoint(model, audio_model_dir, asr_model_dir, flame_model)
    if flame_model is not None:
        raise DataError(f"--flame-model {flame_model}: the shipped model {model!r} is not in the flame face space")
    return Animator.from_pretrained(model, audio_model_dir, asr_model_dir)


def parse_formats(text: str) -> list[str]:
    """Split a ``--formats`` value (``"npz,glb"``) into format names.

    Raises:
        FacemotionError: an empty list or a name not in :data:`facemotion.export.FORMATS`.
    """
    from facemotion.export import FORMATS

    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise FacemotionError(f"--formats: unknown format(s) {unknown or [text]}; "
                              f"choose from {','.join(FORMATS)}")
    return formats


def parse_identity(text: str | None):
    """``--identity``: None, an ``int`` seed, or the ``[K]`` coefficients read from a ``.npy`` file.

    Raises:
        DataError: ``text`` is neither an integer nor a readable ``.npy`` vector (names the file).
    """
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    path = Path(text)
    try:
        beta = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: --identity needs an integer seed or a .npy file of coefficients ({exc})") from exc
    if beta.ndim != 1:
        raise DataError(f"{path}: identity coefficients must be a vector [K], got shape {beta.shape}")
    return beta


def load_pose(path: str | Path, fps: float) -> np.ndarray:
    """``--pose-from``: the head rotation ``[T, 3]`` radians of an animation ``.npz`` (any face space
    with head pose), resampled linearly to ``fps`` (frames per second).

    Raises:
        DataError: the file is missing or malformed, or its animation has no head rotation.
    """
    clip = Animation.load(path)
    try:
        pose = np.asarray(clip.head_rotation, np.float32)
    except Exception as exc:  # the space has no head pose
        raise DataError(f"{path}: --pose-from needs an animation with a head rotation ({exc})") from exc
    if abs(clip.fps - fps) > 1e-6:
        t_new = np.arange(max(1, round(clip.duration * fps))) / fps
        t_old = np.arange(clip.num_frames) / clip.fps
        pose = np.stack([np.interp(t_new, t_old, col) for col in pose.T], axis=1).astype(np.float32)
    return pose


def _load_style(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z["style"], np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a style file from `facemotion style` ({exc})") from exc


def generate_command(args) -> int:
    """``facemotion generate``: animate ``args.speech`` and write ``args.formats`` into ``args.out``.

    Before the speech is decoded or the model loaded, the output folder is taken for the run
    (:func:`facemotion.export.outputs.output_folder`) and every output path checked (refused if
    it exists, unless ``args.overwrite``). The seed is printed; with several samples the stems
    are ``<speech>_<i>``. Every file is written atomically.

    Raises:
        AudioError: bad speech file. DataError: bad model, style or clip. OutputError: bad or
            existing output, or another run writing into ``args.out``. FacemotionError: bad options.
    """
    from facemotion.audio.io import load_audio
    from facemotion.export import BLENDSHAPE_FORMATS, FORMATS, check_format, output_paths
    from facemotion.export.outputs import check_output, output_folder

    formats = parse_formats(args.formats or DEFAULT_GENERATE_FORMATS)
    if args.num_samples < 1:
        raise FacemotionError(f"--num-samples must be >= 1, got {args.num_samples}")
    identity = parse_identity(args.identity)
    prompt = getattr(args, "prompt", None)
    if getattr(args, "prompt_schedule", None) is not None:
        from facemotion.prompts import read_schedule

        if prompt is not None:
            raise FacemotionError("give --prompt or --prompt-schedule, not both")
        prompt = read_schedule(args.prompt_schedule)
    stems = [args.speech.stem] if args.num_samples == 1 else \
        [f"{args.speech.stem}_{i}" for i in range(args.num_samples)]
    with output_folder(args.out):
        for stem in stems:
            for fmt, path in output_paths(args.out, stem, formats).items():
                check_output(path, directory=not FORMATS[fmt], overwrite=args.overwrite)
        wave = load_audio(args.speech)
        animator = load_animator(args.model, args.audio_model_dir, args.asr_model_dir,
                                 getattr(args, "flame_model", None))
        probe = Animation(np.zeros((1, animator.space.dim), np.float32), animator.space, animator.fps)
        if args.formats is None:  # the default formats the model's space can express
            formats = [f for f in formats if f not in BLENDSHAPE_FORMATS or probe.provides("blendshapes")]
        for fmt in formats:  # a format the model's space cannot take is refused before sampling
            check_format(probe, fmt)
        style = None
        if args.style is not None:
            style = _load_style(args.style)
        elif args.style_clip is not None:
            style = animator.extract_style(args.style_clip)
        seed = draw_seed() if args.seed is None else args.seed
        print(f"seed: {seed}")
        pose = None
        if getattr(args, "pose_from", None) is not None:
            pose = load_pose(args.pose_from, animator.fps)
        results = animator._generate(wave, Path(args.speech), seed, args.num_samples, args.steps,
                                     style, args.w_audio, args.w_style, identity, pose, prompt,
                                     getattr(args, "keyframes", None), getattr(args, "lip_closure", None))
        for stem, anim in zip(stems, results):
            for path in anim.save(args.out, formats, stem=stem, with_vertices=args.with_vertices).values():
                print(path)
    return 0


def style_command(args) -> int:
    """``facemotion style``: write the style vector of ``args.clip`` to ``args.output`` (.npz
    with array ``style [d_s]``), atomically; an existing output is refused unless
    ``args.overwrite`` (checked before the model is loaded).

    Raises:
        DataError: bad clip or model. OutputError: bad or existing output.
    """
    from facemotion.export.atomic import atomic_path
    from facemotion.export.outputs import check_output, output_folder

    output = Path(args.output).with_suffix(".npz")
    with output_folder(output.parent):
        check_output(output, overwrite=args.overwrite)
        animator = load_animator(args.model)
        style = animator.extract_style(args.clip)
        with atomic_path(output) as tmp:
            np.savez(tmp, style=style)
    print(output)
    return 0
