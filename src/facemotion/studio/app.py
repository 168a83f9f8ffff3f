"""The studio's ASGI app (Starlette): the page, its static files, and a small JSON API.

API (every error is ``{"error": "one line"}`` with a 4xx status):

=======================================  ===================================================
``GET  /api/config``                     models, limits, formats, whether avatars are taken
``POST /api/uploads/speech?name=N``      raw body: speech (checked by content); -> upload
``POST /api/uploads/style?name=N``       raw body: a motion ``.npz`` to take the style from
``POST /api/uploads/avatar?name=N``      raw body: an ARKit-rigged ``.glb`` (when retargeting
                                         is installed)
``POST /api/jobs``                       JSON :class:`~facemotion.studio.jobs.JobRequest`
``GET  /api/jobs/{id}``                  state, stage, progress, samples
``GET  /api/jobs/{id}/speech``           the job's speech as 16 kHz WAV
``GET  /api/jobs/{id}/samples/{i}/{f}``  a sample's file: npz, glb, usd, csv, mp4, avatar
=======================================  ===================================================
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import importlib
import re
from pathlib import Path
from urllib.parse import urlsplit

from facemotion.audio.io import SAMPLE_RATE
from facemotion.errors import DataError, FacemotionError, MissingExtra
from facemotion.studio.jobs import (DOWNLOAD_FORMATS, JobRequest, Studio, StudioSettings, check_avatar,
                                    retargeter)
from facemotion.studio.uploads import (RejectedUpload, check_name, decode_speech, require_magic, save_body,
                                       wave_to_wav)

STATIC = Path(__file__).resolve().parent / "static"
"""The page and its scripts (three.js vendored under ``vendor/three`` with its MIT licence)."""

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
"""Host names the studio answers to when bound to a loopback address."""

MEDIA_TYPES = {"npz": "application/zip", "glb": "model/gltf-binary", "usd": "application/octet-stream",
               "csv": "text/csv", "mp4": "video/mp4", "avatar": "model/gltf-binary"}

NOSNIFF = {"X-Content-Type-Options": "nosniff"}

SWEEP_SECONDS = 30.0
"""How often expired jobs and uploads are removed (seconds)."""


def _require(module: str):
    """Import ``module`` of the ``studio`` extra; MissingExtra (one line) when it is absent."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise MissingExtra(f"facemotion serve needs the optional package {module}: "
                           "pip install 'facemotion[studio]'") from None


def content_security_policy(page: str) -> str:
    """The page's Content-Security-Policy: everything from the server itself, plus the one
    inline import map (allowed by its SHA-256 hash)."""
    inline = re.findall(r'<script type="importmap">(.*?)</script>', page, re.S)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in inline)
    return ("default-src 'self'; script-src 'self' " + hashes + "; style-src 'self'; "
            "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' data: blob:; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def create_app(settings: StudioSettings | None = None, allowed_hosts: list[str] | None = None):
    """Build the studio's ASGI app; its lifespan starts the expiry sweep and, at shutdown,
    stops the model worker and removes the studio's temporary folder.

    Args:
        settings: limits and places (:class:`~facemotion.studio.jobs.StudioSettings`).
        allowed_hosts: ``Host`` header values answered (others get 400, against DNS
            rebinding); default :data:`LOCAL_HOSTS`; ``["*"]`` answers any.
    Returns:
        a Starlette application; its :class:`~facemotion.studio.jobs.Studio` is ``app.state.studio``.
    Raises:
        MissingExtra: starlette is not installed.
    """
    _require("starlette")
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    studio = Studio(settings)
    limits = studio.settings
    page = (STATIC / "index.html").read_text()
    csp = content_security_policy(page)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def guarded(handler):
        """Answer RejectedUpload with its status and other FacemotionErrors with 500 (one line
        each); refuse cross-site POSTs (403)."""
        async def wrapped(request):
            origin = request.headers.get("origin")
            if request.method == "POST" and origin and urlsplit(origin).netloc != request.headers.get("host"):
                return error(403, "cross-site requests are not accepted")
            try:
                return await handler(request)
            except RejectedUpload as exc:
                return error(exc.status, str(exc))
            except FacemotionError as exc:  # e.g. a video that cannot be rendered here
                return error(500, str(exc))
        return wrapped

    async def index(request):
        return HTMLResponse(page, headers={"Content-Security-Policy": csp, "Cache-Control": "no-store", **NOSNIFF})

    async def config(request):
        return JSONResponse({"models": studio.models, "formats": list(DOWNLOAD_FORMATS),
                             "max_upload_bytes": limits.max_upload_bytes, "max_avatar_bytes": limits.max_avatar_bytes,
                             "max_seconds": limits.max_seconds,
                             "max_samples": limits.max_samples, "max_steps": limits.max_steps,
                             "avatar": retargeter() is not None})

    async def accept(request, kind: str, suffix: str, check):
        """Check the name and declared size, stream the body into a new upload, and run
        ``check(upload)`` on it in a thread; a refused upload is removed and answered with its
        4xx (a DataError of the check: 422)."""
        name = check_name(request.query_params.get("name"))
        limit = limits.max_avatar_bytes if kind == "avatar" else limits.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise RejectedUpload(413, f"upload larger than the limit of {limit / 1e6:g} MB")
        upload = studio.new_upload(kind, name, suffix)
        try:
            await save_body(request.stream(), upload.path, limit)
            try:
                await run_in_threadpool(check, upload)
            except DataError as exc:
                raise RejectedUpload(422, str(exc).replace(str(upload.path), "upload")) from None
        except BaseException:
            studio.drop_upload(upload)
            raise
        return JSONResponse(upload.describe(), status_code=201)

    def check_speech(upload):
        wave = decode_speech(upload.path, limits.max_seconds)
        upload.path.unlink()
        upload.path = wave_to_wav(wave, upload.folder / "speech.wav")
        upload.seconds = len(wave) / SAMPLE_RATE

    def check_style(upload):
        from facemotion.animation import Animation

        require_magic(upload.path, b"PK\x03\x04", "a style clip must be an animation .npz")
        upload.seconds = Animation.load(upload.path).duration

    def check_glb(upload):
        require_magic(upload.path, b"glTF", "an avatar must be a binary glTF (.glb) file")
        upload.info = check_avatar(upload.path)

    async def upload_speech(request):
        return await accept(request, "speech", ".bin", check_speech)

    async def upload_style(request):
        return await accept(request, "style", ".npz", check_style)

    async def upload_avatar(request):
        if retargeter() is None:
            raise RejectedUpload(404, "this installation cannot retarget onto avatars")
        return await accept(request, "avatar", ".glb", check_glb)

    async def create_job(request):
        try:
            body = await request.json()
            fields = {k: body[k] for k in ("speech", "model", "seed", "num_samples", "steps", "style", "avatar")
                      if body.get(k) not in (None, "")}
            for key in ("seed", "num_samples", "steps"):
                if key in fields:
                    fields[key] = int(fields[key])
            job_request = JobRequest(**fields)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise RejectedUpload(400, "expected JSON with speech (an upload id) and optional model, seed, "
                                      "num_samples, steps, style, avatar") from None
        job = studio.submit(job_request)
        return JSONResponse(studio.describe(job), status_code=202)

    async def job_state(request):
        return JSONResponse(studio.describe(studio.job(request.path_params["job"])))

    async def job_speech(request):
        job = studio.job(request.path_params["job"])
        return FileResponse(job.speech, media_type="audio/wav", headers=NOSNIFF)

    async def job_file(request):
        job = studio.job(request.path_params["job"])
        fmt, sample = request.path_params["fmt"], request.path_params["sample"]
        if fmt not in MEDIA_TYPES:
            raise RejectedUpload(404, f"unknown format {fmt!r}; choose from {list(MEDIA_TYPES)}")
        path = await studio.file(job, sample, fmt)
        seed = job.animations[sample].seed
        suffix = "_avatar.glb" if fmt == "avatar" else f".{fmt}"
        return FileResponse(path, media_type=MEDIA_TYPES[fmt], headers=NOSNIFF,
                            filename=f"facemotion_{job.id[:8]}_sample{sample}_seed{seed}{suffix}")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async def sweep():
            while True:
                await asyncio.sleep(SWEEP_SECONDS)
                studio.sweep()

        task = asyncio.create_task(sweep())
        studio.warm()
        try:
            yield
        finally:
            task.cancel()
            await run_in_threadpool(studio.close)

    routes = [
        Route("/", index),
        Route("/api/config", config),
        Route("/api/uploads/speech", guarded(upload_speech), methods=["POST"]),
        Route("/api/uploads/style", guarded(upload_style), methods=["POST"]),
        Route("/api/uploads/avatar", guarded(upload_avatar), methods=["POST"]),
        Route("/api/jobs", guarded(create_job), methods=["POST"]),
        Route("/api/jobs/{job}", guarded(job_state)),
        Route("/api/jobs/{job}/speech", guarded(job_speech)),
        Route("/api/jobs/{job}/samples/{sample:int}/{fmt}", guarded(job_file)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    hosts = list(allowed_hosts or LOCAL_HOSTS)
    async def not_found(request, exc):
        return error(exc.status_code, f"{request.url.path}: {exc.detail.lower()}")

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_found},
                    middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])
    app.state.studio = studio
    return app


def serve(host: str = "127.0.0.1", port: int = 8000, settings: StudioSettings | None = None) -> None:
    """Run the studio on uvicorn until interrupted (``facemotion serve``).

    Args:
        host: address to bind (default loopback only; any other address answers every host
            name and has no authentication).
        port: TCP port.
        settings: limits (:class:`~facemotion.studio.jobs.StudioSettings`).
    Raises:
        MissingExtra: starlette or uvicorn is not installed.
    """
    uvicorn = _require("uvicorn")
    local = host in LOCAL_HOSTS
    app = create_app(settings, allowed_hosts=None if local else ["*"])
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    print(f"facemotion studio: http://{shown}:{port}/ (Ctrl+C stops it)", flush=True)
    if not local:
        print(f"facemotion: warning: the studio listens on {host} without authentication", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
