"""The studio's state: a private temporary folder, uploads, generation jobs and one model worker.

Every upload and job gets a folder named by a server-made UUID under the studio's own
temporary folder; ids from requests are parsed as UUIDs and looked up in memory, so no
request string ever becomes a path. Models are loaded, run and rendered on one worker thread
(calls are serialized; jobs wait in a queue), so concurrent requests cannot interleave inside
a model. Finished jobs and uploads expire after :attr:`StudioSettings.ttl_seconds`;
:meth:`Studio.close` removes the whole folder.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from facemotion.errors import FacemotionError
from facemotion.studio.uploads import RejectedUpload

#: formats written for every sample when its job runs (mp4 is rendered when first downloaded)
JOB_FORMATS = ("npz", "glb", "usd", "csv")
#: every format a sample can be downloaded in
DOWNLOAD_FORMATS = JOB_FORMATS + ("mp4",)


def pretrained_names() -> list[str]:
    """Names of the models shipped in the package (``facemotion/pretrained/<name>.pt``), sorted,
    ``default`` first."""
    folder = resources.files("facemotion") / "pretrained"
    names = sorted(p.name[:-3] for p in folder.iterdir() if p.name.endswith(".pt")) if folder.is_dir() else []
    return sorted(names, key=lambda n: n != "default")


def check_avatar(path: Path) -> dict:
    """Try an avatar ``.glb`` with :func:`retargeter` on one neutral frame (written beside it
    and removed), so a bad avatar is refused at upload.

    Returns:
        ``{"matched": [ARKit names], "unmatched": [ARKit names], "head_node": name or None}``.
    Raises:
        DataError: the file is not a GLB or no morph target takes an ARKit name.
    """
    from facemotion.animation import Animation
    from facemotion.face.arkit import ARKIT_BLENDSHAPES

    neutral = Animation.from_blendshapes(np.zeros((1, len(ARKIT_BLENDSHAPES)), np.float32), np.zeros((1, 3), np.float32), 25.0)
    report = retargeter()(neutral, path, path.with_name("check.glb"))
    report.path.unlink(missing_ok=True)
    return {"matched": report.matched, "unmatched": report.unmatched, "head_node": report.head_node}


def retargeter():
    """:func:`facemotion.export.retarget.retarget_glb` where the installed package has it, else None."""
    try:
        from facemotion.export.retarget import retarget_glb
    except ImportError:
        return None
    return retarget_glb


@dataclass(frozen=True)
class StudioSettings:
    """Limits and places of one studio server.

    Attributes:
        max_upload_bytes: largest accepted speech or style upload (bytes).
        max_avatar_bytes: largest accepted avatar upload (bytes).
        max_seconds: longest accepted speech (seconds).
        max_samples: most samples per job.
        max_steps: most sampler steps a job may ask for.
        max_queued: most jobs waiting or running at once (more are refused with 429).
        ttl_seconds: how long finished jobs and uploads are kept (seconds).
        workdir: folder in which the studio makes its temporary folder (default: the system's).
        models: model names offered (default: :func:`pretrained_names`).
        mp4_size: rendered video size (pixels, square).
    """

    max_upload_bytes: int = 25_000_000
    max_avatar_bytes: int = 100_000_000
    max_seconds: float = 120.0
    max_samples: int = 4
    max_steps: int = 50
    max_queued: int = 16
    ttl_seconds: float = 3600.0
    workdir: Path | None = None
    models: tuple[str, ...] | None = None
    mp4_size: int = 384


@dataclass
class Upload:
    """An accepted upload: ``kind`` (``speech``, ``style`` or ``avatar``), the client's display
    ``name``, its server-made ``folder`` and ``path``, ``seconds`` of speech or motion, and
    ``info`` for the page (an avatar's matched and unmatched ARKit names)."""

    id: str
    kind: str
    name: str
    folder: Path
    path: Path
    seconds: float = 0.0
    info: dict = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    def describe(self) -> dict:
        """JSON for the page: ``id``, ``kind``, ``name``, ``seconds`` and :attr:`info`."""
        return {"id": self.id, "kind": self.kind, "name": self.name, "seconds": round(self.seconds, 3), **self.info}


@dataclass
class JobRequest:
    """What a generate request asks for (checked by :meth:`Studio.submit`): the speech upload id,
    ``model`` name, ``seed`` (None: drawn), ``num_samples``, sampler ``steps`` (None: the model's),
    and optional ``style`` (motion ``.npz``) and ``avatar`` (GLB) upload ids."""

    speech: str
    model: str = "default"
    seed: int | None = None
    num_samples: int = 1
    steps: int | None = None
    style: str | None = None
    avatar: str | None = None


@dataclass
class Job:
    """One generation: its request, folder, state (``queued``, ``running``, ``done``,
    ``failed``), the current ``stage`` and ``progress`` in [0, 1], an ``error`` line, and per
    sample the :class:`~facemotion.animation.Animation` and its files (format -> path)."""

    id: str
    request: JobRequest
    folder: Path
    speech: Path
    seconds: float
    style: Path | None = None
    avatar: Path | None = None
    state: str = "queued"
    stage: str = "queued"
    progress: float = 0.0
    error: str | None = None
    animations: list = field(default_factory=list)
    files: list[dict[str, Path]] = field(default_factory=list)
    renders: dict[int, Future] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def describe(self, position: int) -> dict:
        """JSON for the page (``position``: jobs ahead of it in the queue)."""
        samples = [{"index": i, "seed": a.seed, "frames": a.num_frames, "fps": a.fps,
                    "formats": [fmt for fmt in DOWNLOAD_FORMATS if fmt in f or fmt == "mp4"],
                    "avatar": "avatar" in f}
                   for i, (a, f) in enumerate(zip(self.animations, self.files))]
        return {"id": self.id, "state": self.state, "stage": self.stage, "progress": round(self.progress, 3),
                "position": position, "error": self.error, "model": self.request.model,
                "seconds": round(self.seconds, 3), "samples": samples if self.state == "done" else []}


class Studio:
    """The state of one studio server (thread-safe): uploads, jobs, the model worker.

    Args:
        settings: limits and places (:class:`StudioSettings`).
    """

    def __init__(self, settings: StudioSettings | None = None):
        self.settings = settings or StudioSettings()
        workdir = self.settings.workdir
        if workdir is not None:
            Path(workdir).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="facemotion-studio-", dir=workdir))
        self.models = list(self.settings.models or pretrained_names())
        self._lock = threading.Lock()
        self._uploads: dict[str, Upload] = {}
        self._jobs: dict[str, Job] = {}
        self._animators: dict = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facemotion-studio-model")
        self._rate = 0.5  # compute seconds per second of speech, for the progress estimate

    # ------------------------------------------------------------------ uploads
    def new_upload(self, kind: str, name: str, suffix: str) -> Upload:
        """Register an upload and make its folder; the body goes to ``upload.path``
        (``<root>/uploads/<uuid>/upload<suffix>``, a server-made name)."""
        uid = uuid.uuid4().hex
        folder = self.root / "uploads" / uid
        folder.mkdir(parents=True)
        upload = Upload(uid, kind, name, folder, folder / f"upload{suffix}")
        with self._lock:
            self._uploads[uid] = upload
        return upload

    def drop_upload(self, upload: Upload) -> None:
        """Forget an upload and remove its folder (a rejected or expired upload)."""
        with self._lock:
            self._uploads.pop(upload.id, None)
        shutil.rmtree(upload.folder, ignore_errors=True)

    def upload(self, uid: str, kind: str) -> Upload:
        """The upload of id ``uid`` and ``kind``.

        Raises:
            RejectedUpload: 404 for an unknown, expired or malformed id, or one of another kind.
        """
        with self._lock:
            upload = self._uploads.get(_parse_id(uid))
        if upload is None or upload.kind != kind:
            raise RejectedUpload(404, f"no {kind} upload {uid!r} (expired or never made)")
        return upload

    # ------------------------------------------------------------------ jobs
    def submit(self, request: JobRequest) -> Job:
        """Check a generate request and queue it on the model worker.

        The speech (and style clip, avatar) are copied into the job's folder, so the job does
        not depend on its uploads living on.

        Raises:
            RejectedUpload: 400 for a setting out of range or an unknown model, 404 for an
                unknown upload, 429 when :attr:`StudioSettings.max_queued` jobs are pending.
        """
        s = self.settings
        if request.model not in self.models:
            raise RejectedUpload(400, f"unknown model {request.model!r}; choose from {self.models}")
        if not 1 <= request.num_samples <= s.max_samples:
            raise RejectedUpload(400, f"number of samples must be 1 to {s.max_samples}")
        if request.steps is not None and not 1 <= request.steps <= s.max_steps:
            raise RejectedUpload(400, f"steps must be 1 to {s.max_steps}")
        if request.seed is not None and not 0 <= request.seed < 2**31:
            raise RejectedUpload(400, "seed must be 0 to 2**31 - 1")
        speech = self.upload(request.speech, "speech")
        style = self.upload(request.style, "style") if request.style else None
        avatar = self.upload(request.avatar, "avatar") if request.avatar else None
        self.sweep()
        with self._lock:
            if sum(j.state in ("queued", "running") for j in self._jobs.values()) >= s.max_queued:
                raise RejectedUpload(429, f"{s.max_queued} jobs are already waiting; try again later")
            jid = uuid.uuid4().hex
            folder = self.root / "jobs" / jid
            folder.mkdir(parents=True)
            job = Job(jid, request, folder, Path(shutil.copyfile(speech.path, folder / "speech.wav")), speech.seconds)
            job.style = Path(shutil.copyfile(style.path, folder / "style.npz")) if style else None
            job.avatar = Path(shutil.copyfile(avatar.path, folder / "avatar_in.glb")) if avatar else None
            self._jobs[jid] = job
        self._worker.submit(self._run, job)
        return job

    def job(self, jid: str) -> Job:
        """The job of id ``jid``.

        Raises:
            RejectedUpload: 404 for an unknown, expired or malformed id.
        """
        with self._lock:
            job = self._jobs.get(_parse_id(jid))
        if job is None:
            raise RejectedUpload(404, f"no job {jid!r} (expired or never made)")
        return job

    def describe(self, job: Job) -> dict:
        """:meth:`Job.describe` with its place in the queue."""
        with self._lock:
            ahead = sum(j.state in ("queued", "running") and j.created < job.created for j in self._jobs.values())
        return job.describe(ahead if job.state == "queued" else 0)

    async def file(self, job: Job, sample: int, fmt: str) -> Path:
        """The file of ``sample`` in ``fmt`` (one of :data:`DOWNLOAD_FORMATS` or ``avatar``);
        an mp4 is rendered on the model worker the first time it is asked for.

        Raises:
            RejectedUpload: 404 for a job not done, a sample or format it does not have.
            FacemotionError: the video could not be rendered.
        """
        if job.state != "done" or not 0 <= sample < len(job.files):
            raise RejectedUpload(404, f"job {job.id} has no sample {sample} (state {job.state})")
        files = job.files[sample]
        if fmt == "mp4" and "npz" in files:
            with self._lock:
                future = job.renders.get(sample) or job.renders.setdefault(
                    sample, self._worker.submit(self._render, job, sample))
            return await asyncio.wrap_future(future)
        if fmt not in files:
            raise RejectedUpload(404, f"sample {sample} of job {job.id} has no {fmt} file")
        return files[fmt]

    # ------------------------------------------------------------------ worker
    def warm(self) -> None:
        """Load the first model on the worker now, so the first job does not wait for it."""
        if self.models:
            self._worker.submit(self._animator, self.models[0])

    def _animator(self, name: str):
        if name not in self._animators:
            from facemotion.api import Animator

            self._animators[name] = Animator.from_pretrained(name)
        return self._animators[name]

    def _run(self, job: Job) -> None:
        from facemotion.audio.io import load_audio

        job.state, job.stage, job.progress = "running", "loading the model", 0.02
        try:
            animator = self._animator(job.request.model)
            style = animator.extract_style(job.style) if job.style is not None else None
            job.stage, job.progress = "animating", 0.05
            stop = threading.Event()
            ticker = threading.Thread(target=self._estimate, args=(job, stop), daemon=True)
            ticker.start()
            started = time.perf_counter()
            try:
                animations = animator.generate(load_audio(job.speech), seed=job.request.seed,
                                               num_samples=job.request.num_samples, steps=job.request.steps,
                                               style=style)
            finally:
                stop.set()
            self._rate = 0.5 * self._rate + 0.5 * (time.perf_counter() - started) / max(job.seconds, 1e-3)
            self._write(job, animations)
            job.animations, job.state, job.stage, job.progress = animations, "done", "done", 1.0
        except FacemotionError as exc:
            job.state, job.stage, job.error = "failed", "failed", str(exc).replace(str(job.folder), "job")
        except Exception as exc:  # the page gets one line; the server keeps running
            job.state, job.stage, job.error = "failed", "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished = time.time()

    def _estimate(self, job: Job, stop: threading.Event) -> None:
        """Move the progress of the animating stage (5-70 %) by the expected compute time."""
        expected = max(self._rate * job.seconds, 0.5)
        started = time.perf_counter()
        while not stop.wait(0.25):
            job.progress = 0.05 + 0.65 * min((time.perf_counter() - started) / expected, 0.95)

    def _write(self, job: Job, animations: list) -> None:
        from facemotion.export import BLENDSHAPE_FORMATS

        retarget = retargeter() if job.avatar is not None else None
        steps = len(animations) * (len(JOB_FORMATS) + (retarget is not None))
        done = 0
        for i, anim in enumerate(animations):
            files = {}
            for fmt in JOB_FORMATS:
                job.stage = f"writing sample {i + 1} {fmt}"
                if fmt not in BLENDSHAPE_FORMATS or anim.provides("blendshapes"):
                    files.update(anim.save(job.folder, [fmt], stem=f"sample{i}"))
                done += 1
                job.progress = 0.7 + 0.3 * done / steps
            if retarget is not None:
                job.stage = f"retargeting sample {i + 1} onto the avatar"
                files["avatar"] = retarget(anim, job.avatar, job.folder / f"sample{i}_avatar.glb").path
                done += 1
            job.files.append(files)

    def _render(self, job: Job, sample: int) -> Path:
        anim = dataclasses.replace(job.animations[sample], audio=job.speech)
        path = job.folder / f"sample{sample}.mp4"
        if not path.exists():
            anim.save(job.folder, ["mp4"], stem=f"sample{sample}", size=self.settings.mp4_size)
        return path

    # ------------------------------------------------------------------ clean-up
    def sweep(self, now: float | None = None) -> int:
        """Remove finished jobs and uploads older than :attr:`StudioSettings.ttl_seconds`;
        returns how many were removed (queued and running jobs are kept)."""
        now = time.time() if now is None else now
        ttl = self.settings.ttl_seconds
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.finished is not None and now - j.finished > ttl]
            uploads = [u for u in self._uploads.values() if now - u.created > ttl]
            for j in jobs:
                del self._jobs[j.id]
            for u in uploads:
                del self._uploads[u.id]
        for item in jobs + uploads:
            shutil.rmtree(item.folder, ignore_errors=True)
        return len(jobs) + len(uploads)

    def close(self) -> None:
        """Stop the worker (queued jobs are dropped, a running one finishes) and remove the
        studio's temporary folder."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _parse_id(text: str | None) -> str | None:
    """The canonical hex form of a UUID given as text, or None when it is not one."""
    try:
        return uuid.UUID(str(text)).hex
    except ValueError:
        return None
