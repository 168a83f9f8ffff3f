"""Offscreen rendering: stills for a person to inspect; MP4s with muxed, length-matched audio."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from facemotion.animation import Animation
from facemotion.errors import AudioError
from facemotion.face.arkit import ARKIT_INDEX
from facemotion.render.video import render_still
from test_export import SPEECH, scripted_animation

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def probe(path: Path) -> dict[str, dict]:
    """Streams of a media file by codec type, via Debian's ffprobe (counting video frames)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                          "stream=codec_type,codec_name,pix_fmt,width,height,r_frame_rate,"
                          "nb_read_frames,duration", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return {s["codec_type"]: s for s in json.loads(out)["streams"]}


def test_stills_of_neutral_and_open_smiling_mouth():
    ARTIFACTS.mkdir(exist_ok=True)
    from PIL import Image

    smile = np.zeros((1, 52), np.float32)
    smile[0, ARKIT_INDEX["jawOpen"]] = 0.7
    smile[0, ARKIT_INDEX["mouthSmileLeft"]] = smile[0, ARKIT_INDEX["mouthSmileRight"]] = 0.5
    images = {}
    for name, bs in (("neutral", np.zeros((1, 52), np.float32)), ("jaw_open_smile", smile)):
        anim = Animation.from_blendshapes(bs, np.zeros((1, 3)), 25.0)
        for yaw in (0, 30):
            path = render_still(anim, ARTIFACTS / f"{name}_yaw{yaw}.png", yaw_deg=yaw, size=256)
            images[name, yaw] = np.asarray(Image.open(path).convert("RGB"), np.float32)
    background = images["neutral", 0][0, 0]
    for image in images.values():
        assert image.shape == (256, 256, 3)
        head = np.abs(image - background).sum(axis=2) > 30
        assert 0.15 < head.mean() < 0.9  # the head fills the frame without being cut off
        assert head[:, 0].mean() < 0.5 and head[0, :].mean() < 0.5
    for yaw in (0, 30):  # the expression changes the lower face, not the whole picture
        diff = np.abs(images["jaw_open_smile", yaw] - images["neutral", yaw]).sum(axis=2) > 30
        assert 0.002 < diff.mean() < 0.3
    assert np.abs(images["neutral", 30] - images["neutral", 0]).mean() > 2


def test_open_mouth_shows_teeth_and_the_eyes_have_irises(tmp_path):
    from PIL import Image

    talk = np.zeros((1, 52), np.float32)
    for name, w in (("jawOpen", 0.45), ("mouthUpperUpLeft", 0.3), ("mouthUpperUpRight", 0.3),
                    ("mouthLowerDownLeft", 0.4), ("mouthLowerDownRight", 0.4)):
        talk[0, ARKIT_INDEX[name]] = w
    counts = {}
    for name, bs in (("neutral", np.zeros((1, 52), np.float32)), ("talk", talk)):
        path = render_still(Animation.from_blendshapes(bs, np.zeros((1, 3)), 25.0), tmp_path / f"{name}.png", size=256)
        im = np.asarray(Image.open(path).convert("RGB")).astype(int)
        r, g, b = im[..., 0], im[..., 1], im[..., 2]
        face = np.abs(im - im[0, 0]).sum(axis=2) > 30               # not the background
        lower, upper = np.arange(256)[:, None] >= 128, np.arange(256)[:, None] < 128
        teeth = face & lower & (g > 140) & (r - b < 30) & (np.abs(r - g) < 20)   # ivory, unlike skin
        iris = face & upper & (r < 110) & (r > b + 10) & (r > 40)                # brown
        pupil = face & upper & (im.max(axis=2) < 50)                             # near black
        counts[name] = teeth.sum(), iris.sum(), pupil.sum()
    assert counts["neutral"][0] == 0 and counts["talk"][0] > 40, counts
    for name in counts:
        assert counts[name][1] > 40 and counts[name][2] > 4, counts


def test_cli_render_scripted_video_with_trimmed_audio(tmp_path):
    import imageio_ffmpeg

    from facemotion.cli import main

    ARTIFACTS.mkdir(exist_ok=True)
    anim = scripted_animation()                # 2.0 s; the speech is 3.1 s long
    npz = anim.save(tmp_path, formats=["npz"])["npz"]
    out = ARTIFACTS / "scripted.mp4"
    assert main(["render", str(npz), "-o", str(out), "--audio", str(SPEECH), "--size", "256",
                 "--overwrite"]) == 0  # a picture kept for inspection, replaced on every run
    streams = probe(out)
    video, audio = streams["video"], streams["audio"]
    assert (video["codec_name"], video["pix_fmt"], video["width"], video["height"]) == \
        ("h264", "yuv420p", 256, 256)
    assert video["r_frame_rate"] == "25/1" and int(video["nb_read_frames"]) == anim.num_frames
    assert audio["codec_name"] == "aac"
    assert abs(float(audio["duration"]) - float(video["duration"])) <= 1 / anim.fps
    assert abs(float(video["duration"]) - anim.duration) <= 1 / anim.fps

    reader = imageio_ffmpeg.read_frames(str(out))
    next(reader)
    frames = np.stack([np.frombuffer(f, np.uint8) for f in reader]).astype(np.float32)
    assert len(frames) == anim.num_frames
    assert np.abs(frames[25] - frames[0]).mean() > 1.0  # the head turned and the jaw moved


def test_short_audio_is_padded_and_bad_audio_rejected(tmp_path):
    anim = Animation.from_blendshapes(np.zeros((20, 52)), np.zeros((20, 3)), 30.0)   # 0.667 s
    wave, rate = sf.read(SPEECH)
    short = tmp_path / "short.wav"
    sf.write(short, wave[: rate // 4], rate)                         # 0.25 s
    anim.audio = short
    out = anim.render(tmp_path / "padded.mp4", size=64)
    streams = probe(out)
    assert int(streams["video"]["nb_read_frames"]) == 20
    assert abs(float(streams["audio"]["duration"]) - 20 / 30) <= 1 / 30

    bad = tmp_path / "speech.wav"
    bad.write_text("not audio")
    anim.audio = bad
    with pytest.raises(AudioError, match="speech.wav: not a readable audio file"):
        anim.render(tmp_path / "bad.mp4", size=64)
    assert not (tmp_path / "bad.mp4").exists()
