"""Training the bilabial detector (:mod:`facemotion.audio.bilabial`) on synthetic corpora:
``facemotion train-bilabial``.

The detector learns which 20 ms frames of Whisper's encoder states are /p b m/ from the known
phones of the data engine's clips (``phones`` of each motion ``.npz``), never from real speech.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from facemotion.audio.bilabial import BILABIALS, CONTEXT, RATE, BilabialDetector, load_detector, stack_context
from facemotion.audio.io import SAMPLE_RATE
from facemotion.errors import DataError


def training_frames(corpora: Sequence[str | os.PathLike], hours: float, model_dir: str | os.PathLike | None = None,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Encoder states and /p b m/ labels of the ``train`` clips of synthetic corpora, at most
    ``hours`` in all.

    The clips of all corpora (in a seeded random order) are joined into stretches of up to 29.5 s, each clip padded
    to whole 20 ms frames, and encoded as one audio (:func:`~facemotion.audio.whisper.encoder_states`);
    a frame's label is 1 where the clip's stored phones (``phones`` of its motion ``.npz``) hold
    a /p b m/.

    Returns:
        ``([F, d] float32 states, [F] float32 labels)``.
    Raises:
        DataError: a corpus manifest is missing or malformed, or a clip cannot be read.
    """
    from tqdm import tqdm

    from facemotion.audio.io import load_audio
    from facemotion.audio.phones import normalize_phone
    from facemotion.audio.whisper import encoder_states, load_whisper
    from facemotion.data.native import load_motion, read_manifest

    rows = [(Path(corpus), row) for corpus in corpora for row in read_manifest(corpus, split="train")]
    np.random.default_rng(seed).shuffle(rows)
    model = load_whisper(model_dir)
    states, labels, waves, marks = [], [], [], []

    def flush():
        if waves:
            encoded = encoder_states(model, np.concatenate(waves))
            mark = np.concatenate(marks)[: len(encoded)]
            states.append(encoded[: len(mark)])
            labels.append(mark)
            waves.clear()
            marks.clear()

    total, limit = 0.0, hours * 3600.0
    with tqdm(total=round(limit), unit="s", desc="encoder states") as bar:
        for corpus, row in rows:
            if total >= limit:
                break
            wave = load_audio(corpus / row["audio"])
            motion = load_motion(corpus, row)
            if "phones" not in motion:
                raise DataError(f"{corpus / row['motion']}: no phones (not a facemotion synth clip)")
            per_frame = int(SAMPLE_RATE / RATE)
            count = int(np.ceil(len(wave) / per_frame))
            mark = np.zeros(count, np.float32)
            for phone, start, end in json.loads(str(motion["phones"])):
                if normalize_phone(phone) in BILABIALS:
                    mark[int(round(start * RATE)) : int(round(end * RATE))] = 1.0
            if sum(map(len, waves)) + count * per_frame > 29.5 * SAMPLE_RATE:
                flush()
            waves.append(np.pad(wave, (0, count * per_frame - len(wave))))
            marks.append(mark)
            total += len(wave) / SAMPLE_RATE
            bar.update(round(total) - bar.n)
    flush()
    if not states:
        raise DataError(f"{', '.join(map(str, corpora))}: no train clips to learn the bilabial detector from")
    return np.concatenate(states), np.concatenate(labels)


HIDDEN = 256
"""Hidden units of each network :func:`train_detector` makes."""


def train_detector(states: np.ndarray, labels: np.ndarray, hidden: int = HIDDEN, epochs: int = 6,
                   seed: int = 0) -> BilabialDetector:
    """Fit the detector on ``[F, d]`` states and ``[F]`` 0/1 labels: binary cross-entropy, AdamW
    (lr 1e-3, weight decay 0.01), batches of 1024 frames, dropout 0.2 on the hidden layer."""
    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    mean, std = states.mean(0), states.std(0) + 1e-5
    x = torch.from_numpy(stack_context((states - mean) / std).astype(np.float32))
    y = torch.from_numpy(labels.astype(np.float32))
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                              torch.nn.Linear(hidden, 1))
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-2)
    for _ in tqdm(range(epochs), desc="bilabial detector", unit="epoch"):
        for batch in torch.randperm(len(x)).split(1024):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[batch])[:, 0], y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    first, last = net[0], net[3]
    return BilabialDetector(mean[None].astype(np.float32), std[None].astype(np.float32),
                            first.weight.detach().numpy().T[None].copy(), first.bias.detach().numpy()[None].copy(),
                            last.weight.detach().numpy().copy(), last.bias.detach().numpy().copy())


def train_bilabial_command(data: Sequence[str | os.PathLike], out: str | os.PathLike, hours: float = 1.5,
                           asr_model_dir: str | os.PathLike | None = None, seed: int = 0,
                           overwrite: bool = False, join: str | os.PathLike | None = None) -> Path:
    """``facemotion train-bilabial``: :func:`training_frames` then :func:`train_detector`, saved to
    ``out`` (checked, and its folder locked, before any work; with ``join``, that detector file
    is read first and the new network joins its ensemble, :meth:`BilabialDetector.joined`).
    Returns ``out``.

    Raises:
        OutputError: ``out`` exists (without ``overwrite``) or cannot be written.
        DataError: see :func:`training_frames` and :func:`load_detector` (``join``); ``join``'s
            networks are not of the new one's hidden size and context.
    """
    from facemotion.export.outputs import check_output, output_folder

    with output_folder(Path(out).parent):
        out = check_output(out, overwrite=overwrite)
        previous = load_detector(join) if join is not None else None
        if previous is not None and (previous.w1.shape[2] != HIDDEN or previous.context != CONTEXT):
            raise DataError(f"{join}: its networks (hidden {previous.w1.shape[2]}, context {previous.context}) "
                            f"cannot join one of hidden {HIDDEN}, context {CONTEXT}")
        states, labels = training_frames(data, hours, asr_model_dir, seed)
        detector = train_detector(states, labels, seed=seed)
        (detector if previous is None else previous.joined(detector)).save(out)
    return out
