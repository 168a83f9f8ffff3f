"""The web studio (``facemotion serve``): its API under TestClient (generation, downloads,
refused uploads, 8 concurrent jobs) and the page in headless Chromium (the head's morph
influences follow the audio; downloads are valid files)."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from facemotion.animation import Animation  # noqa: E402
from facemotion.audio.io import SAMPLE_RATE, load_audio  # noqa: E402
from facemotion.face.arkit import ARKIT_BLENDSHAPES  # noqa: E402
from facemotion.studio import StudioSettings, create_app  # noqa: E402
from facemotion.studio.jobs import retargeter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cmu_arctic_slt_a0009.wav"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
LIMIT = 2_000_000  # upload limit of the test server (bytes)
STEPS = 2  # sampler steps of the test jobs (the model's default is 10)


@pytest.fixture(scope="module")
def speech10(tmp_path_factory) -> Path:
    """10 s of speech: the example recording repeated, 16 kHz 16-bit WAV."""
    path = tmp_path_factory.mktemp("speech") / "speech10.wav"
    wave = load_audio(EXAMPLE)
    sf.write(str(path), np.tile(wave, 4)[:10 * SAMPLE_RATE], SAMPLE_RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A studio app (2 MB upload limit) whose temporary folder lives in its own ``workdir``."""
    workdir = tmp_path_factory.mktemp("studio")
    app = create_app(StudioSettings(workdir=workdir, max_upload_bytes=LIMIT, max_seconds=30))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        client.workdir = workdir
        client.studio = app.state.studio
        yield client
    assert list(workdir.iterdir()) == [], "the studio left files behind at shutdown"


def upload(client, path: Path, name: str = "speech.wav", kind: str = "speech") -> dict:
    response = client.post(f"/api/uploads/{kind}", params={"name": name}, content=path.read_bytes())
    assert response.status_code == 201, response.text
    return response.json()


def run_job(client, speech_id: str, timeout: float = 600, **settings) -> dict:
    response = client.post("/api/jobs", json={"speech": speech_id, "steps": STEPS, **settings})
    assert response.status_code == 202, response.text
    job = response.json()
    deadline = time.monotonic() + timeout
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job still {job['state']} ({job['stage']})"
        time.sleep(0.2)
        job = client.get(f"/api/jobs/{job['id']}").json()
    assert job["state"] == "done", job["error"]
    return job


def download(client, job: dict, sample: int, fmt: str) -> bytes:
    response = client.get(f"/api/jobs/{job['id']}/samples/{sample}/{fmt}")
    assert response.status_code == 200, response.text
    assert f"seed{job['samples'][sample]['seed']}" in response.headers["content-disposition"]
    return response.content


def check_npz(data: bytes, tmp_path: Path, seed: int) -> Animation:
    path = tmp_path / f"seed{seed}.npz"
    path.write_bytes(data)
    anim = Animation.load(path)
    assert anim.seed == seed and anim.blendshapes.shape[1] == 52 and np.isfinite(anim.motion).all()
    return anim


def check_glb(data: bytes) -> None:
    import pygltflib

    assert data[:4] == b"glTF"
    gltf = pygltflib.GLTF2.load_from_bytes(data)
    targets = max(len(p.targets or []) for m in gltf.meshes for p in m.primitives)
    assert targets >= 52 and gltf.animations


def check_download(fmt: str, data: bytes, tmp_path: Path, seed: int, frames: int) -> None:
    """A downloaded file is a valid file of its format with ``frames`` frames where it says."""
    if fmt == "npz":
        assert check_npz(data, tmp_path, seed).num_frames == frames
    elif fmt == "glb":
        check_glb(data)
    elif fmt == "usd":
        from pxr import Usd

        path = tmp_path / f"seed{seed}.usd"
        path.write_bytes(data)
        stage = Usd.Stage.Open(str(path))
        assert stage.GetEndTimeCode() - stage.GetStartTimeCode() + 1 >= frames
    elif fmt == "csv":
        lines = data.decode().splitlines()
        assert "JawOpen" in lines[0] and len(lines) - 1 >= frames
    else:
        assert data[4:8] == b"ftyp" and len(data) > 10_000


def test_generate_and_download_every_format(server, tmp_path):
    speech = upload(server, EXAMPLE, name="cmu arctic (slt) a0009.wav")
    assert speech["name"] == "cmu arctic (slt) a0009.wav" and abs(speech["seconds"] - 3.1) < 0.05
    job = run_job(server, speech["id"], seed=5, num_samples=2)
    assert [s["seed"] for s in job["samples"]] == [5, 6]
    assert server.get(f"/api/jobs/{job['id']}/speech").content[:4] == b"RIFF"
    frames = job["samples"][0]["frames"]
    assert frames == round(3.095 * 25)
    for fmt in ("npz", "glb", "usd", "csv", "mp4"):
        check_download(fmt, download(server, job, 1, fmt), tmp_path, 6, frames)
    a, b = (check_npz(download(server, job, i, "npz"), tmp_path, 5 + i) for i in range(2))
    assert not np.allclose(a.motion, b.motion)
    assert server.get(f"/api/jobs/{job['id']}/samples/2/npz").status_code == 404
    assert server.get(f"/api/jobs/{job['id']}/samples/0/exe").status_code == 404
    (tmp_path / "style.npz").write_bytes(download(server, job, 0, "npz"))
    style = upload(server, tmp_path / "style.npz", name="style.npz", kind="style")
    assert abs(style["seconds"] - frames / 25) < 1e-6
    styled = run_job(server, speech["id"], seed=5, style=style["id"])
    assert not np.allclose(check_npz(download(server, styled, 0, "npz"), tmp_path, 5).motion, a.motion)


def test_expired_jobs_and_uploads_are_removed(tmp_path):
    """sweep() removes uploads and finished jobs past their time to live; close() the rest."""
    from facemotion.studio import Studio

    studio = Studio(StudioSettings(workdir=tmp_path, ttl_seconds=60))
    kept, old = studio.new_upload("speech", "a.wav", ".bin"), studio.new_upload("speech", "b.wav", ".bin")
    old.created -= 61
    assert studio.sweep() == 1 and not old.folder.exists() and kept.folder.is_dir()
    assert studio.upload(kept.id, "speech") is kept
    with pytest.raises(Exception, match="no speech upload"):
        studio.upload(old.id, "speech")
    studio.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(retargeter() is None, reason="facemotion.export.retarget is not installed")
def test_avatar_upload_drives_its_morph_targets(server, tmp_path):
    """The built-in head's own GLB serves as an ARKit-rigged avatar: 52/52 names match, and
    each sample gets an animated copy of it."""
    speech = upload(server, EXAMPLE)
    glb = download(server, run_job(server, speech["id"], seed=1), 0, "glb")
    (tmp_path / "avatar.glb").write_bytes(glb)
    avatar = upload(server, tmp_path / "avatar.glb", name="avatar.glb", kind="avatar")
    assert len(avatar["matched"]) == 52 and avatar["unmatched"] == []
    job = run_job(server, speech["id"], seed=2, avatar=avatar["id"])
    assert job["samples"][0]["avatar"]
    check_glb(download(server, job, 0, "avatar"))
    refused = server.post("/api/uploads/avatar", params={"name": "a.glb"}, content=EXAMPLE.read_bytes())
    assert refused.status_code == 415


def test_refused_requests_write_nothing(server, tmp_path):
    """An upload over the limit (declared or streamed), a non-audio file, a path as file name,
    and path-like ids each get a 4xx with one clear line; no upload folder or file remains."""
    uploads = server.studio.root / "uploads"
    before = sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []
    wav = EXAMPLE.read_bytes()

    def refused(status: int, words: str, response) -> None:
        assert response.status_code == status, response.text
        assert words in response.json()["error"] and "\n" not in response.json()["error"]

    big = wav + bytes(LIMIT)
    refused(413, "larger than the limit", server.post("/api/uploads/speech", params={"name": "big.wav"}, content=big))
    streamed = (big[i:i + 65536] for i in range(0, len(big), 65536))  # chunked: no Content-Length
    refused(413, "larger than the limit", server.post("/api/uploads/speech", params={"name": "big.wav"}, content=streamed))
    refused(415, "not an audio file", server.post("/api/uploads/speech", params={"name": "speech.wav"},
                                                 content=b"#EXTM3U\n#EXT-X-TARGETDURATION:1\nfile:///etc/passwd\n"))
    png = io.BytesIO()
    np.save(png, np.zeros(10))
    refused(415, "not an audio file", server.post("/api/uploads/speech", params={"name": "a.wav"}, content=png.getvalue()))
    refused(415, "not an audio file", server.post("/api/uploads/speech", params={"name": "a.wav"},
                                                 content=b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk"))
    refused(400, "not a bare file name", server.post("/api/uploads/speech", params={"name": "../../etc/passwd"}, content=wav))
    refused(400, "not a bare file name", server.post("/api/uploads/speech", params={"name": "..\\..\\x.wav"}, content=wav))
    refused(415, "style clip", server.post("/api/uploads/style", params={"name": "s.npz"}, content=wav))
    refused(404, "not found", server.get("/api/jobs/..%2F..%2Fetc%2Fpasswd"))
    refused(404, "no job", server.get("/api/jobs/..%2E%2E/speech"))
    refused(404, "no speech upload", server.post("/api/jobs", json={"speech": "../../etc/passwd"}))
    assert server.get("/api/jobs/../../etc/passwd").status_code == 404
    assert server.post("/api/uploads/speech", params={"name": "a.wav"}, content=wav,
                       headers={"Origin": "http://evil.example"}).status_code == 403
    assert server.get("/", headers={"Host": "evil.example"}).status_code == 400  # DNS rebinding
    after = sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []
    assert after == before
    assert [p.name for p in server.workdir.iterdir()] == [server.studio.root.name]
    assert not any(p.name == "passwd" for p in server.studio.root.rglob("*"))


@pytest.mark.slow
def test_eight_concurrent_requests(server, speech10, tmp_path):
    """8 clients at once, each uploading 10 s of speech and asking for its own seed: all finish,
    each with its own seed's motion, and one equals the same seed drawn directly."""
    from facemotion import Animator

    seeds = [100 + 17 * i for i in range(8)]
    results, errors = {}, []

    def client_run(seed: int) -> None:
        try:
            speech = upload(server, speech10, name=f"client{seed}.wav")
            job = run_job(server, speech["id"], seed=seed)
            results[seed] = check_npz(download(server, job, 0, "npz"), tmp_path, seed)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=client_run, args=(s,)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    print(f"8 concurrent 10 s jobs ({STEPS} steps): {wall:.1f} s wall")
    assert not errors, errors[0]
    assert sorted(results) == seeds
    assert all(a.num_frames == 250 for a in results.values())
    motions = [results[s].motion for s in seeds]
    for i in range(8):
        for j in range(i + 1, 8):
            assert not np.allclose(motions[i], motions[j], atol=1e-3), (seeds[i], seeds[j])
    direct = Animator.from_pretrained("default").generate(speech10, seed=seeds[3], steps=STEPS)[0]
    np.testing.assert_allclose(results[seeds[3]].motion, direct.motion, atol=1e-5)


# ---------------------------------------------------------------------- the page in Chromium
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(page, expression: str, timeout: float):
    """Poll a JavaScript expression until truthy (the page's CSP forbids Playwright's
    eval-based ``wait_for_function``)."""
    deadline = time.monotonic() + timeout
    while not (value := page.evaluate(expression)):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.2)
    return value


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")
def test_page_in_headless_chromium(tmp_path):
    """`facemotion serve` in a subprocess; the page uploads the example speech, generates two
    samples, plays them: the head's jawOpen influence changes with the audio time, scrubbing
    moves it, and the downloads are valid files. Screenshots go to tests/artifacts/."""
    sync_api = pytest.importorskip("playwright.sync_api")
    port = _free_port()
    env = dict(os.environ, TMPDIR=str(tmp_path))
    server = subprocess.Popen([sys.executable, "-m", "facemotion.cli", "serve", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ARTIFACTS.mkdir(exist_ok=True)
    started = time.perf_counter()
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--autoplay-policy=no-user-gesture-required",
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
            page = browser.new_page(viewport={"width": 1100, "height": 680}, accept_downloads=True)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            deadline = time.monotonic() + 60
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/")
                    break
                except sync_api.Error:
                    assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
                    time.sleep(0.5)
            _wait(page, "window.studio && document.getElementById('model').options.length", 30)
            page.click("#record")  # Chromium's fake microphone: a WebM/Opus recording, decoded by ffmpeg
            time.sleep(1.5)
            page.click("#record")
            recorded = _wait(page, "document.getElementById('speech-info').textContent.match(/^recording.webm: ([0-9.]+) s/)", 30)
            assert 0.8 < float(recorded[1]) < 5, recorded
            page.set_input_files("#speech-file", str(EXAMPLE))
            _wait(page, "document.getElementById('speech-info').textContent.startsWith('cmu_arctic')", 30)
            _wait(page, "!document.getElementById('generate').disabled", 60)
            page.fill("#seed", "7")
            page.fill("#samples", "2")
            page.fill("#steps", "4")
            page.click("#generate")
            _wait(page, "document.getElementById('progress').value > 0", 60)
            page.screenshot(path=str(ARTIFACTS / "studio_generating.png"))
            _wait(page, "window.studio.views === 2", 300)
            assert page.evaluate("window.studio.job.samples.map(s => s.seed)") == [7, 8]
            names = page.evaluate("window.studio.morphNames(0)")
            assert set(ARKIT_BLENDSHAPES) <= set(names)
            jaw = names.index("jawOpen")

            page.evaluate("document.getElementById('audio').play()")
            seen = {}
            deadline = time.monotonic() + 30
            while len(seen) < 4 and time.monotonic() < deadline:
                shown = page.evaluate("[window.studio.shown.time, window.studio.influences(0), window.studio.influences(1)]")
                seen[round(shown[0], 2)] = shown[1:]
                time.sleep(0.3)
            page.evaluate("document.getElementById('audio').pause()")
            jaws = {t: round(v[0][jaw], 4) for t, v in seen.items()}
            print("jawOpen over playback time (s -> influence):", jaws)
            assert len(seen) >= 3 and max(seen) > 0.5, f"playback did not advance: {sorted(seen)}"
            assert len(set(jaws.values())) >= 3, jaws
            assert all(0 <= x <= 1 for v in seen.values() for x in v[0])

            scrubbed = []
            for t in (0.6, 1.4, 2.2):
                page.evaluate(f"document.getElementById('audio').currentTime = {t}")
                _wait(page, f"Math.abs(window.studio.shown.time - {t}) < 0.01", 30)
                time.sleep(0.2)
                scrubbed.append(page.evaluate("[window.studio.influences(0), window.studio.influences(1)]"))
            print("jawOpen after scrubbing to 0.6/1.4/2.2 s:", [round(s[0][jaw], 4) for s in scrubbed])
            assert len({round(s[0][jaw], 4) for s in scrubbed}) == 3
            assert any(abs(a - b) > 1e-3 for s in scrubbed for a, b in zip(*s)), "the two samples move alike"
            page.screenshot(path=str(ARTIFACTS / "studio_result.png"))

            for fmt in ("npz", "glb", "usd", "csv", "mp4"):
                with page.expect_download(timeout=120_000) as info:
                    page.click(f"#downloads tr:nth-child(2) a:text-is('{fmt}')")
                data = Path(info.value.path()).read_bytes()
                assert info.value.suggested_filename.endswith(f"seed8.{fmt}")
                check_download(fmt, data, tmp_path, 8, page.evaluate("window.studio.job.samples[1].frames"))
            assert not errors, errors
            browser.close()
        print(f"browser test: {time.perf_counter() - started:.1f} s")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    assert not list(tmp_path.glob("facemotion-studio-*")), "the server left its temporary folder"


def test_vendored_three_matches_npm():
    """The three.js files shipped in the package are those of the version package.json pins
    (``npm ci`` installs it under node_modules/three)."""
    import json

    npm = ROOT / "node_modules" / "three"
    if not npm.is_dir():
        pytest.skip("node_modules/three missing: run `make setup` (npm ci)")
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["three"]
    assert json.loads((npm / "package.json").read_text())["version"] == pinned
    vendored = ROOT / "src" / "facemotion" / "studio" / "static" / "vendor" / "three"
    files = [p for p in vendored.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"LICENSE", "three.module.js", "three.core.js", "GLTFLoader.js"}
    for path in files:
        assert path.read_bytes() == (npm / path.relative_to(vendored)).read_bytes(), path
