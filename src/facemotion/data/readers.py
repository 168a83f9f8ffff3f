"""Readers of the field's datasets into the native format (DESIGN.md, "Native dataset format").

- ``vocaset`` and ``biwi`` in the FaceFormer / CodeTalker layout: ``SRC/vertices_npy/<clip>.npy``
  ``[T, V * 3]`` metres (VOCASET: 5023 FLAME vertices at 60 fps; BIWI: 23,370 vertices at 25 fps),
  ``SRC/wav/<clip>.wav``, ``SRC/templates.pkl`` (a pickled dict subject -> ``[V, 3]``). A clip
  ``<subject>_<sentence>`` (e.g. ``FaceTalk_170725_00137_TA_sentence01``, ``F2_e01``) belongs to
  the subject before its last ``_``; its sentence number is the name's last two digits. Clips go
  into FaceFormer's standard splits (:data:`FACEFORMER_SPLITS`); clips outside them get split
  ``unused`` (BIWI's unseen subjects: ``test_b``, FaceFormer's BIWI-Test-B).
  Each clip becomes a :class:`~facemotion.face.space.VertexSpace` clip: ``vertices [T, V, 3]``
  float32 metres and the subject's ``template [V, 3]``.
- ``diffposetalk-lmdb``: DiffPoseTalk's HDTF/TFHP LMDB (Sun et al. 2024; the folder its
  ``--data_root`` names, built by its ``scripts_for_dataset/make_combined_dataset.py``). Keys
  (UTF-8): ``metadata`` -> pickled ``{"seg_len": S}`` (100); per clip ``<person>/<video NNN>``:
  ``<clip>/metadata`` -> ``{"n_frames": T}`` and segments ``<clip>/000``, ``<clip>/001``, ... of S
  frames (the last shorter) -> ``{"audio": FLAC bytes (16 kHz mono), "coef": {"shape" [n, 100],
  "exp" [n, 50], "pose" [n, 6] (global then jaw axis-angle, radians)}}`` at 25 fps (640 audio
  samples a frame). Clips are listed by ``keys.txt`` beside ``data.mdb`` (else found by their
  ``/metadata`` keys); splits come from its ``train.txt`` / ``val.txt`` / ``test.txt`` (a clip in
  none is ``unused``; no split files: all ``train``). Each clip becomes a
  :class:`~facemotion.face.flame.FlameSpace` clip (``exp``, ``pose``, ``shape`` as stored,
  float32) with its audio as one FLAC, speaker ``<person>``, id ``<person>-<video NNN>``.
- ``livelink-csv``: Live Link Face CSVs (:func:`facemotion.export.arkit_csv.read_arkit_csv`) each
  with a recording of the same name (``.wav``, ``.flac``, ``.ogg``, ``.mp3``) beside it, into
  blendshape clips (``blendshapes [T, 52]`` ARKit order, ``blendshape_names``, ``head_rotation``).

Every reader streams: one clip is read, written (motion ``.npz``, audio copied) and appended to the
manifest before the next is read; nothing holds the whole corpus.
"""
from __future__ import annotations

import io
import re
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np

from facemotion.data.native import MANIFEST, append_manifest
from facemotion.errors import DataError, OutputError

#: FaceFormer's subject and sentence splits (Fan et al. 2022; EvelynFan/FaceFormer ``main.py`` and
#: ``data_loader.py``: VOCASET train sentences 1-40, val/test 21-40; BIWI train 1-32, val 33-36,
#: test 37-40 on the six seen subjects, CodeTalker uses the same). BIWI's eight unseen subjects
#: (FaceFormer's BIWI-Test-B, ``biwi/demo.py``'s ``test_subjects``) are written as ``test_b``.
FACEFORMER_SPLITS = {
    "vocaset": {
        "fps": 60.0,
        "subjects": {
            "train": ("FaceTalk_170728_03272_TA", "FaceTalk_170904_00128_TA", "FaceTalk_170725_00137_TA",
                      "FaceTalk_170915_00223_TA", "FaceTalk_170811_03274_TA", "FaceTalk_170913_03279_TA",
                      "FaceTalk_170904_03276_TA", "FaceTalk_170912_03278_TA"),
            "val": ("FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA"),
            "test": ("FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA"),
        },
        "sentences": {"train": range(1, 41), "val": range(21, 41), "test": range(21, 41)},
    },
    "biwi": {
        "fps": 25.0,
        "subjects": {
            "train": ("F2", "F3", "F4", "M3", "M4", "M5"),
            "val": ("F2", "F3", "F4", "M3", "M4", "M5"),
            "test": ("F2", "F3", "F4", "M3", "M4", "M5"),
            "test_b": ("F1", "F5", "F6", "F7", "F8", "M1", "M2", "M6"),
        },
        "sentences": {"train": range(1, 33), "val": range(33, 37), "test": range(37, 41), "test_b": range(1, 41)},
    },
}
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def faceformer_split(dataset: str, clip: str) -> tuple[str, str]:
    """``(subject, split)`` of a FaceFormer-layout clip name (e.g. ``F2_e37`` -> ``("F2", "test")``).

    Raises:
        DataError: a name without ``<subject>_<..NN>`` (two trailing digits).
    """
    subject, _, rest = clip.rpartition("_")
    m = re.search(r"(\d\d)$", rest)
    if not subject or m is None:
        raise DataError(f"{clip}: not a {dataset} clip name '<subject>_<sentence NN>'")
    sentence = int(m.group(1))
    table = FACEFORMER_SPLITS[dataset]
    for split, subjects in table["subjects"].items():
        if subject in subjects and sentence in table["sentences"][split]:
            return subject, split
    return subject, "unused"


def _prepare_output(out: Path, overwrite: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST
    if manifest.exists():
        if not overwrite:
            raise OutputError(f"{manifest}: already there (use --overwrite to convert again)")
        manifest.unlink()
    (out / "motion").mkdir(exist_ok=True)
    (out / "audio").mkdir(exist_ok=True)


def _audio_duration(path: Path) -> float:
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except Exception as exc:  # soundfile raises its own error types
        raise DataError(f"{path}: not a readable audio file ({exc})") from None


def _write_clip(out: Path, clip_id: str, arrays: dict, audio: Path | tuple[np.ndarray, int],
                record: dict) -> dict:
    """Write one clip's motion ``.npz`` and audio (a file copied, or ``(wave [N], rate)`` written
    as FLAC), then append its manifest line."""
    from facemotion.atomic import atomic_path

    motion = Path("motion") / f"{clip_id}.npz"
    suffix = audio.suffix.lower() if isinstance(audio, Path) else ".flac"
    target_audio = Path("audio") / f"{clip_id}{suffix}"
    with atomic_path(out / motion) as tmp:
        np.savez(tmp, **arrays)
    if isinstance(audio, Path):
        shutil.copyfile(audio, out / target_audio)
    else:
        import soundfile as sf

        with atomic_path(out / target_audio) as tmp:
            sf.write(str(tmp), audio[0], audio[1], format="FLAC", subtype="PCM_16")
    rec = {"id": clip_id, "audio": target_audio.as_posix(), "motion": motion.as_posix(),
           "duration": _audio_duration(out / target_audio), "text": "", **record}
    append_manifest(out, [rec])
    return rec


def _templates(path: Path) -> dict:
    from facemotion.face.flame import read_data_pickle

    what = "templates.pkl (a pickled dict subject -> [V, 3])"
    templates = read_data_pickle(path, what)
    if not isinstance(templates, dict):
        raise DataError(f"{path}: holds a {type(templates).__name__}, expected {what}")
    return templates


def iter_faceformer(src, dataset: str) -> Iterator[tuple[str, str, str, Path, Path]]:
    """The clips of a FaceFormer-layout corpus, one at a time, sorted by name (the folders are
    checked at once, the clips listed lazily).

    Returns:
        an iterator of ``(clip, subject, split, vertices .npy path, .wav path)`` of every clip
        with both files.
    Raises:
        DataError: no ``vertices_npy`` / ``wav`` folder under ``src``.
    """
    src = Path(src)
    npy_dir, wav_dir = src / "vertices_npy", src / "wav"
    for d in (npy_dir, wav_dir):
        if not d.is_dir():
            raise DataError(f"{d}: no such folder; expected the FaceFormer {dataset} layout "
                            "(vertices_npy/*.npy, wav/*.wav, templates.pkl)")

    def clips():
        for npy in sorted(npy_dir.glob("*.npy")):
            wav = wav_dir / f"{npy.stem}.wav"
            if wav.is_file():
                subject, split = faceformer_split(dataset, npy.stem)
                yield npy.stem, subject, split, npy, wav

    return clips()


def convert_faceformer(src, out, dataset: str, stride: int = 1, overwrite: bool = False) -> list[dict]:
    """Convert VOCASET or BIWI in the FaceFormer / CodeTalker layout (module docstring).

    Args:
        src: the corpus folder (``vertices_npy/``, ``wav/``, ``templates.pkl``).
        out: the native dataset folder to write.
        dataset: ``"vocaset"`` (60 fps) or ``"biwi"`` (25 fps).
        stride: keep every ``stride``-th frame (FaceFormer trains VOCASET with 2: 30 fps).
        overwrite: replace a dataset already in ``out``.
    Returns:
        the manifest records written.
    Raises:
        DataError: missing folders or templates, a clip whose subject has no template, or a
            ``.npy`` that is not ``[T, V * 3]`` for the template's V (messages name the file).
        OutputError: ``out`` already holds a dataset and ``overwrite`` is False.
    """
    src, out = Path(src), Path(out)
    if dataset not in FACEFORMER_SPLITS:
        raise DataError(f"{dataset}: not a FaceFormer-layout dataset (use one of {sorted(FACEFORMER_SPLITS)})")
    if int(stride) < 1:
        raise DataError(f"--stride {stride}: must be a whole number >= 1")
    templates = _templates(src / "templates.pkl")
    clips = iter_faceformer(src, dataset)
    _prepare_output(out, overwrite)
    fps = FACEFORMER_SPLITS[dataset]["fps"] / stride
    records = []
    for clip, subject, split, npy, wav in clips:
        if subject not in templates:
            raise DataError(f"{src / 'templates.pkl'}: no template for subject {subject} (clip {npy})")
        template = np.asarray(templates[subject], np.float32).reshape(-1, 3)
        verts = np.load(npy, mmap_mode="r", allow_pickle=False)
        if verts.ndim != 2 or verts.shape[1] != template.size or len(verts) < 1:
            raise DataError(f"{npy}: shape {verts.shape}, expected [T, {template.size}] ({len(template)} vertices x 3)")
        verts = np.asarray(verts[::stride], np.float32).reshape(-1, len(template), 3)
        arrays = {"vertices": verts, "template": template, "fps": np.float64(fps)}
        records.append(_write_clip(out, clip, arrays, wav, {"speaker": subject, "split": split, "fps": fps,
                                                            "source": dataset}))
    if not records:
        raise DataError(f"{src}: no clip with both vertices_npy/NAME.npy and wav/NAME.wav")
    return records


def convert_livelink(src, out, split: str = "train", speaker: str | None = None, fps: float | None = None,
                     overwrite: bool = False) -> list[dict]:
    """Convert Live Link Face CSV recordings (each with its audio beside it) into blendshape clips.

    Args:
        src: a folder of ``NAME.csv`` + ``NAME.wav`` (or ``.flac``, ``.ogg``, ``.mp3``), or one CSV.
        out: the native dataset folder to write.
        split: the split of every clip. speaker: default the name of the CSVs' folder.
        fps: frame rate, default from the timecodes (:func:`~facemotion.export.arkit_csv.read_arkit_csv`).
        overwrite: replace a dataset already in ``out``.
    Returns:
        the manifest records written.
    Raises:
        DataError: no CSV, a CSV without its audio or malformed (messages name the file).
        OutputError: ``out`` already holds a dataset and ``overwrite`` is False.
    """
    from facemotion.export.arkit_csv import read_arkit_csv
    from facemotion.face.arkit import ARKIT_BLENDSHAPES

    src, out = Path(src), Path(out)
    csvs = [src] if src.is_file() else sorted(src.glob("*.csv"))
    if not csvs:
        raise DataError(f"{src}: no Live Link Face .csv files")
    _prepare_output(out, overwrite)
    records = []
    for path in csvs:
        audio = next((path.with_suffix(s) for s in AUDIO_SUFFIXES if path.with_suffix(s).is_file()), None)
        if audio is None:
            raise DataError(f"{path}: no recording beside it (expected {path.stem} with one of {AUDIO_SUFFIXES})")
        blendshapes, head, clip_fps = read_arkit_csv(path, fps)
        arrays = {"blendshapes": blendshapes, "blendshape_names": np.array(ARKIT_BLENDSHAPES),
                  "head_rotation": head, "fps": np.float64(clip_fps)}
        records.append(_write_clip(out, path.stem, arrays, audio, {
            "speaker": speaker or path.parent.name, "split": split, "fps": clip_fps, "source": "livelink-csv"}))
    return records


#: DiffPoseTalk's motion frame rate (``--fps 25``) and audio samples per frame at 16 kHz
DIFFPOSETALK_FPS, DIFFPOSETALK_AUDIO_UNIT = 25.0, 640
#: the coefficient arrays of a DiffPoseTalk LMDB segment (``entry["coef"]``)
DIFFPOSETALK_COEFS = ("shape", "exp", "pose")
DIFFPOSETALK_SPLITS = ("train", "val", "test")


def _lmdb_value(txn, key: str, src: Path, what: str):
    from facemotion.face.flame import loads_data_pickle

    raw = txn.get(key.encode())
    if raw is None:
        raise DataError(f"{src}: no key {key!r}; expected {what} (DiffPoseTalk's LMDB layout)")
    value = loads_data_pickle(raw, f"{src} [{key}]", what)
    if not isinstance(value, dict):
        raise DataError(f"{src} [{key}]: holds a {type(value).__name__}, expected {what}")
    return value


def _lmdb_clip_keys(env, src: Path) -> list[str]:
    """``keys.txt``'s clip keys, else every ``<clip>/metadata`` key of the database, sorted."""
    listed = src / "keys.txt"
    if listed.is_file():
        return sorted({k.strip() for k in listed.read_text().splitlines() if k.strip()})
    with env.begin() as txn:
        return sorted(k.decode()[:-len("/metadata")] for k in txn.cursor().iternext(values=False)
                      if k.endswith(b"/metadata"))


def iter_diffposetalk_lmdb(src) -> Iterator[tuple[str, str, dict, np.ndarray]]:
    """The clips of a DiffPoseTalk HDTF/TFHP LMDB (module docstring), one at a time: only one
    clip's segments are held at once.

    Returns:
        an iterator of ``(clip key <person>/<NNN>, split, coef {"shape", "exp", "pose"} [T, ...]
        float32, audio [T * 640] float32 at 16 kHz)``.
    Raises:
        DataError: no LMDB in ``src``, a missing key, a segment that is not the layout, audio not
            at 16 kHz, or coefficients whose frame counts disagree (messages name the key).
        MissingExtra: the ``lmdb`` package is not installed.
    """
    import soundfile as sf

    from facemotion.errors import require

    lmdb = require("lmdb", "convert --from diffposetalk-lmdb")
    src = Path(src)
    if not (src / "data.mdb").is_file():
        raise DataError(f"{src}: no data.mdb; expected DiffPoseTalk's LMDB folder (data.mdb, keys.txt, "
                        "train.txt, val.txt, test.txt)")
    split_of = {}
    for split in DIFFPOSETALK_SPLITS:
        if (src / f"{split}.txt").is_file():
            split_of.update((k.strip(), split) for k in (src / f"{split}.txt").read_text().splitlines() if k.strip())
    env = lmdb.open(str(src), readonly=True, lock=False, readahead=False, meminit=False)

    def clips():
        try:
            with env.begin() as txn:
                seg_len = int(_lmdb_value(txn, "metadata", src, "{'seg_len': S}")["seg_len"])
            for key in _lmdb_clip_keys(env, src):
                with env.begin() as txn:
                    n = int(_lmdb_value(txn, f"{key}/metadata", src, "{'n_frames': T}")["n_frames"])
                    coef, audio = {k: [] for k in DIFFPOSETALK_COEFS}, []
                    for i in range(-(-n // seg_len)):
                        what = "{'audio': FLAC bytes, 'coef': {'shape', 'exp', 'pose'}}"
                        entry = _lmdb_value(txn, f"{key}/{i:03d}", src, what)
                        try:
                            wave, rate = sf.read(io.BytesIO(entry["audio"]), dtype="float32", always_2d=True)
                            for k in DIFFPOSETALK_COEFS:
                                coef[k].append(np.asarray(entry["coef"][k], np.float32))
                        except (KeyError, TypeError, sf.LibsndfileError) as exc:
                            raise DataError(f"{src} [{key}/{i:03d}]: not {what} ({exc})") from None
                        if rate != 16000:
                            raise DataError(f"{src} [{key}/{i:03d}]: audio at {rate} Hz, expected 16000")
                        audio.append(wave.mean(1))
                coef = {k: np.concatenate(v) for k, v in coef.items()}
                if any(len(v) != n for v in coef.values()):
                    raise DataError(f"{src} [{key}]: n_frames {n} but coefficients of "
                                    f"{ {k: len(v) for k, v in coef.items()} } frames")
                yield key, split_of.get(key, "unused" if split_of else "train"), coef, np.concatenate(audio)
        finally:
            env.close()

    return clips()


def convert_diffposetalk_lmdb(src, out, flame_model=None, overwrite: bool = False) -> list[dict]:
    """Convert DiffPoseTalk's HDTF/TFHP LMDB (module docstring) into FLAME clips at 25 fps.

    Args:
        src: the LMDB folder (``data.mdb``, ``keys.txt``, split files).
        out: the native dataset folder to write.
        flame_model: a FLAME model file (:func:`facemotion.face.flame.load_flame_model`); when
            given, every clip's ``shape`` and ``exp`` widths are checked against its components.
        overwrite: replace a dataset already in ``out``.
    Returns:
        the manifest records written.
    Raises:
        DataError: see :func:`iter_diffposetalk_lmdb`; more coefficients than the FLAME model has.
        OutputError: ``out`` already holds a dataset and ``overwrite`` is False.
        MissingExtra: the ``lmdb`` package is not installed.
    """
    src, out = Path(src), Path(out)
    sizes = None
    if flame_model is not None:
        from facemotion.face.flame import load_flame_model

        model = load_flame_model(flame_model)
        n_exp = model["n_expression_in_file"]
        sizes = {"shape": model["shapedirs"].shape[2] - n_exp, "exp": n_exp}
    clips = iter_diffposetalk_lmdb(src)
    _prepare_output(out, overwrite)
    records = []
    for key, split, coef, audio in clips:
        for k, n in (sizes or {}).items():
            if coef[k].shape[-1] > n:
                raise DataError(f"{src} [{key}]: {coef[k].shape[-1]} {k} coefficients, but {flame_model} "
                                f"has {n}")
        person = key.rpartition("/")[0]
        arrays = {**coef, "fps": np.float64(DIFFPOSETALK_FPS)}
        records.append(_write_clip(out, key.replace("/", "-"), arrays, (audio, 16000), {
            "speaker": person, "split": split, "fps": DIFFPOSETALK_FPS, "source": "diffposetalk-lmdb"}))
    if not records:
        raise DataError(f"{src}: no clips (keys.txt or '<clip>/metadata' keys)")
    return records


#: ``facemotion convert --from`` names -> what they read
READERS = {"vocaset": "VOCASET, FaceFormer layout", "biwi": "BIWI, FaceFormer layout",
           "diffposetalk-lmdb": "DiffPoseTalk's HDTF/TFHP LMDB", "livelink-csv": "Live Link Face CSV + audio"}


def convert(source: str, src, out, stride: int = 1, fps: float | None = None, split: str = "train",
            overwrite: bool = False, flame_model=None) -> list[dict]:
    """``facemotion convert --from SOURCE SRC -o OUT``: dispatch to the reader of ``source``
    (:data:`READERS`); ``stride`` applies to VOCASET/BIWI, ``fps`` and ``split`` to Live Link CSVs,
    ``flame_model`` to the DiffPoseTalk LMDB (its sizes checked against that FLAME model).

    Raises:
        DataError: unknown source, or the reader's errors. OutputError: see the readers.
    """
    if source in FACEFORMER_SPLITS:
        return convert_faceformer(src, out, source, stride=stride, overwrite=overwrite)
    if source == "diffposetalk-lmdb":
        return convert_diffposetalk_lmdb(src, out, flame_model=flame_model, overwrite=overwrite)
    if source == "livelink-csv":
        return convert_livelink(src, out, split=split, fps=fps, overwrite=overwrite)
    raise DataError(f"--from {source}: unknown (use one of {sorted(READERS)})")
