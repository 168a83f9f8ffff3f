"""Offscreen rendering of the animated head to MP4 (H.264 + AAC speech) and to PNG stills.

pyrender draws through OSMesa (software, no display or GPU needed) or EGL when OSMesa is
missing; the platform is chosen before the first OpenGL import and an existing
``PYOPENGL_PLATFORM`` is respected. Frames are streamed to the ffmpeg that ships with
``imageio-ffmpeg``, so memory does not grow with the clip length.
"""

from __future__ import annotations

import ctypes.util
import math
import os
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np

from facemotion.atomic import atomic_path
from facemotion.errors import AudioError, require

#: linear RGBA of the background, and of the skin
BACKGROUND_RGBA = (0.86, 0.88, 0.91, 1.0)
SKIN_RGBA = (0.80, 0.56, 0.46, 1.0)
#: linear RGB of the rig's parts drawn in another colour than the skin (later ones win)
REGION_COLOURS = {"mouth_socket": (0.16, 0.04, 0.04), "eye_socket": (0.30, 0.13, 0.11),
                  "gums": (0.50, 0.16, 0.16), "tongue": (0.40, 0.11, 0.12), "teeth": (0.80, 0.76, 0.66),
                  "eyeball_left": (0.86, 0.84, 0.80), "eyeball_right": (0.86, 0.84, 0.80),
                  "iris_left": (0.22, 0.14, 0.08), "iris_right": (0.22, 0.14, 0.08),
                  "pupil_left": (0.01, 0.01, 0.01), "pupil_right": (0.01, 0.01, 0.01),
                  "eyelashes": (0.06, 0.04, 0.03)}
#: parts inside the mouth: their albedo fades with distance d (metres, neutral head) from the
#: middle of the lips as ``clip(1 - d / MOUTH_DEPTH, MOUTH_FLOOR, 1)``, the light the cavity lets in
MOUTH_PARTS, MOUTH_DEPTH, MOUTH_FLOOR = ("mouth_socket", "gums", "tongue"), 0.035, 0.15
#: the camera frames the skin from this far below the chin (metres) to the crown
FRAME_BELOW_CHIN = 0.03
#: vertical field of view of the camera, radians
YFOV = math.radians(25.0)


def _pyrender():
    if "PYOPENGL_PLATFORM" not in os.environ:
        os.environ["PYOPENGL_PLATFORM"] = "osmesa" if ctypes.util.find_library("OSMesa") else "egl"
    return require("pyrender", "MP4 rendering")


def face_incidence(faces: np.ndarray, num_vertices: int):
    """Sparse ``[V, F]`` matrix with a 1 where vertex ``v`` is a corner of face ``f``.

    Multiplying it by per-face vectors ``[F, 3]`` sums them over each vertex's faces; pass it to
    :func:`vertex_normals` to avoid rebuilding it for every frame of an animation.
    """
    from scipy.sparse import csr_matrix

    faces = np.asarray(faces)
    rows = faces.reshape(-1)
    cols = np.repeat(np.arange(len(faces)), 3)
    return csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(num_vertices, len(faces)))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, incidence=None) -> np.ndarray:
    """Area-weighted unit vertex normals ``[V, 3]`` of a triangle mesh (``[V, 3]``, ``[F, 3]``).

    A vertex whose adjacent face normals cancel (or that no face uses) gets +z, so every
    normal has unit length (as glTF requires). ``incidence`` is :func:`face_incidence` of
    ``faces`` (built here when None).
    """
    v = np.asarray(vertices, np.float32)
    corners = [np.take(v, faces[:, k], axis=0) for k in range(3)]   # take: ~8x faster than v[idx]
    face_normals = np.cross(corners[1] - corners[0], corners[2] - corners[0])
    if incidence is None:
        incidence = face_incidence(faces, len(v))
    normals = np.asarray(incidence @ face_normals, np.float64)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    bad = length[:, 0] < 1e-12
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=~bad[:, None])
    normals[bad] = (0.0, 0.0, 1.0)
    return normals.astype(np.float32)


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """4×4 pose of a camera/light at ``eye`` whose -z axis points at ``target`` (+y up)."""
    z = eye - target
    z = z / np.linalg.norm(z)
    x = np.cross([0.0, 1.0, 0.0], z)
    x = x / np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, np.cross(z, x), z, eye
    return pose


#: three-point lighting: (direction toward the light in camera-aligned axes, intensity, linear RGB)
LIGHTS = (((1.0, 0.7, 1.2), 1.0, (1.0, 0.96, 0.9)),    # key
          ((-1.2, 0.2, 0.8), 0.42, (0.85, 0.9, 1.0)),  # fill
          ((0.3, 1.0, -1.2), 0.8, (1.0, 1.0, 1.0)))    # rim
#: linear RGB of the ambient light
AMBIENT = (0.18, 0.18, 0.2)
#: Blinn-Phong specular strength of the skin; its exponent is 24 (computed by squaring in
#: :meth:`HeadRenderer.shade`, ten times faster than ``**``)
SPECULAR = 0.08


def part_albedo(rig) -> np.ndarray:
    """Linear RGB albedo ``[V, 3]`` float32 of the rig's vertices: :data:`SKIN_RGBA` with the
    parts of :data:`REGION_COLOURS` painted over it, the inside of the mouth darkened with depth
    (:data:`MOUTH_DEPTH`). Used by the renderer and as the exports' vertex colours."""
    albedo = np.tile(np.float32(SKIN_RGBA[:3]), (rig.num_vertices, 1))
    for region, rgb in REGION_COLOURS.items():
        albedo[rig.regions.get(region, []), :] = rgb
    neutral = np.asarray(rig.neutral, np.float64)
    if "upper_lip_mid" not in rig.landmarks or "lower_lip_mid" not in rig.landmarks:
        return albedo
    lips = neutral[[rig.landmarks["upper_lip_mid"], rig.landmarks["lower_lip_mid"]]].mean(0)
    for part in MOUTH_PARTS:
        ix = rig.regions.get(part, np.zeros(0, int))
        depth = np.linalg.norm(neutral[ix] - lips, axis=1)
        albedo[ix] *= np.clip(1.0 - depth / MOUTH_DEPTH, MOUTH_FLOOR, 1.0)[:, None].astype(np.float32)
    return albedo


class HeadRenderer:
    """Draws the head rig's mesh with per-part colours, a three-point light and a fixed camera.

    Skin, sclera, iris, pupil, teeth, gums, tongue, the dark mouth and eye sockets and the lashes
    are coloured from ``rig.regions`` (:func:`part_albedo`). Shading is
    computed per vertex on the CPU (Lambert diffuse plus Blinn-Phong specular from
    :data:`LIGHTS` and :data:`AMBIENT`, sRGB-encoded) and the mesh is drawn unlit with those
    colours, interpolated across faces (Gouraud shading): with ~25k vertices this looks like
    per-pixel lighting and costs a fraction of it in a software rasteriser.

    The camera frames the neutral head from the front, turned by ``yaw_deg`` degrees about the
    vertical axis (positive: toward the subject's left, +x); the lights turn with it.
    Use as a context manager (or call :meth:`close`) to free the OpenGL context.

    Args:
        rig: a :class:`facemotion.face.rig.HeadRig` or any mesh with its attributes
            (:class:`facemotion.face.space.FaceMesh`: ``neutral [V,3]`` metres, ``faces [F,3]``,
            ``regions``, ``landmarks``; without a ``skin`` region and ``chin`` landmark the
            whole mesh is framed).
        size: image width and height in pixels.
        yaw_deg: camera azimuth in degrees (0 = front view).
    """

    def __init__(self, rig, size: int = 512, yaw_deg: float = 0.0):
        pyrender = _pyrender()
        from pyrender.constants import RenderFlags

        self._pyrender = pyrender
        self._flags = RenderFlags.FLAT
        self.faces = np.asarray(rig.faces)
        self._incidence = face_incidence(self.faces, len(rig.neutral))
        self.albedo = part_albedo(rig)
        neutral = np.asarray(rig.neutral, np.float64)
        framed = neutral[rig.regions["skin"]] if "skin" in rig.regions else neutral
        if "chin" in rig.landmarks:
            framed = framed[framed[:, 1] > neutral[rig.landmarks["chin"], 1] - FRAME_BELOW_CHIN]
        lo, hi = framed.min(axis=0), framed.max(axis=0)
        center, extent = (lo + hi) / 2, hi - lo
        yaw = math.radians(yaw_deg)
        turn = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0],
                         [-math.sin(yaw), 0, math.cos(yaw)]])
        dist = 0.56 * max(extent[0], extent[1]) / math.tan(YFOV / 2) + extent[2] / 2
        self.view_dir = turn @ np.array([0.0, 0.0, 1.0])
        dirs = np.stack([turn @ (np.array(d) / np.linalg.norm(d)) for d, _, _ in LIGHTS])
        halves = dirs + self.view_dir
        self._light_dirs = dirs.T.astype(np.float32)                                 # [3, L]
        self._half_dirs = (halves / np.linalg.norm(halves, axis=1, keepdims=True)).T.astype(np.float32)
        self._light_colours = np.array([i * np.array(c) for _, i, c in LIGHTS], np.float32)  # [L, 3]
        self._ambient = np.float32(AMBIENT)
        self.scene = pyrender.Scene(bg_color=BACKGROUND_RGBA)
        self.scene.add(pyrender.PerspectiveCamera(yfov=YFOV, aspectRatio=1.0, znear=dist / 20,
                                                  zfar=dist * 20),
                       pose=_look_at(center + self.view_dir * dist, center))
        self.material = pyrender.MetallicRoughnessMaterial(baseColorFactor=(1.0, 1.0, 1.0, 1.0))
        self.renderer = pyrender.OffscreenRenderer(size, size)
        self._primitive = None
        self._colour_only = False  # set after the first frame, which sets up the viewport

    def shade(self, vertices: np.ndarray) -> np.ndarray:
        """sRGB vertex colours ``[V, 4]`` float32 in [0, 1] of the posed mesh ``[V, 3]`` (metres)."""
        n = vertex_normals(vertices, self.faces, self._incidence)
        lambert = np.clip(n @ self._light_dirs, 0.0, None)                        # [V, L]
        b8 = np.clip(n @ self._half_dirs, 0.0, None)
        for _ in range(3):
            b8 *= b8                                                                  # x^8
        blinn = b8 * b8 * b8 * (lambert > 0)                                          # x^24
        linear = self.albedo * (lambert @ self._light_colours + self._ambient)
        linear += SPECULAR * blinn @ self._light_colours
        rgba = np.ones((len(n), 4), np.float32)
        rgba[:, :3] = np.clip(linear, 0.0, 1.0) ** (1.0 / 2.2)
        return rgba

    def render(self, vertices: np.ndarray) -> np.ndarray:
        """Render one mesh ``[V, 3]`` (metres) → RGB image ``[size, size, 3]`` uint8.

        The mesh is uploaded once; later frames overwrite its vertex buffer in place (positions
        and colours, interleaved as pyrender lays them out), so the triangle indices and the
        vertex array object are not rebuilt for every frame, and on OSMesa only the colour
        buffer is read back.
        """
        colours = self.shade(vertices)
        buffers = getattr(self._primitive, "_buffers", None)
        if buffers:
            GL = require("OpenGL.GL", "MP4 rendering")

            data = np.ascontiguousarray(np.hstack([vertices, colours]), np.float32)
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, buffers[0])
            GL.glBufferSubData(GL.GL_ARRAY_BUFFER, 0, data.nbytes, data)
        else:
            self._primitive = self._pyrender.Primitive(positions=vertices, indices=self.faces,
                                                       color_0=colours, material=self.material)
            self.scene.add(self._pyrender.Mesh([self._primitive]))
        if self._colour_only:
            # OSMesa has no framebuffers, so pyrender's public render also reads back and
            # linearises the depth buffer (~1.5 ms at 512x512); read the colour buffer alone
            self.renderer._platform.make_current()
            self.renderer._renderer.render(self.scene, self._flags)
            color = self.renderer._renderer.read_color_buf()
        else:
            color, _ = self.renderer.render(self.scene, flags=self._flags)
            self._colour_only = not self.renderer._platform.supports_framebuffers()
        return np.ascontiguousarray(color[..., :3])

    def close(self) -> None:
        """Release the OpenGL context."""
        self.renderer.delete()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_audio(audio: Path) -> None:
    """Raise AudioError unless ffmpeg can decode an audio stream from ``audio``."""
    import imageio_ffmpeg

    if not audio.is_file():
        raise AudioError(f"{audio}: no such audio file (pass another with --audio)")
    res = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(audio),
                          "-map", "0:a:0", "-t", "0.1", "-f", "null", "-"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        why = (res.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
        raise AudioError(f"{audio}: not a readable audio file ({why})")


def render_video(anim, path: str | Path, size: int = 512, audio: str | Path | None = None,
                 rig=None) -> Path:
    """Render ``anim`` to an MP4: H.264 yuv420p video at ``anim.fps``, ``size``×``size`` pixels.

    x264 runs with ``-preset ultrafast`` and CRF 25: about 1.7 ms a 512×512 frame on two cores
    (``veryfast`` 3.1 ms, for files about 4 times smaller: ~4.5 MB a minute instead of ~1.2),
    so that the video keeps up with the 25,000-vertex head.

    One video frame per animation frame (``T`` frames, ``T / fps`` seconds). The speech
    (``audio``, default ``anim.audio``; any format ffmpeg reads) is encoded as AAC and padded
    with silence or trimmed to exactly the video's duration. Frames are streamed to the bundled
    ffmpeg (``imageio_ffmpeg``), started by :func:`facemotion.processes.popen` so that it dies
    with this process; on any exception it is killed and its temporary file removed. A progress
    bar is shown for clips over 10 s on a terminal.

    Args:
        size: frame width and height in pixels (rounded up to even, as yuv420p requires).
        rig: blendshape space only: a head rig to decode on (default: the animation's own mesh,
            ``anim.mesh()``: the built-in head with its identity, or a vertex space's template
            and faces).

    Returns:
        ``path``.

    Raises:
        AudioError: the audio file is missing or not decodable.
    """
    import imageio_ffmpeg
    from tqdm import tqdm

    from facemotion.processes import popen

    mesh = rig or anim.mesh()
    path = Path(path)
    size += size % 2
    audio = Path(audio) if audio is not None else anim.audio
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size}x{size}",
               "-r", str(Fraction(anim.fps).limit_denominator()), "-i", "-"]
    if audio is not None:
        _check_audio(audio)
        seconds = f"{anim.duration:.6f}"
        command += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "64k",
                    "-af", f"apad=whole_dur={seconds},atrim=end={seconds}"]
    command += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "25", "-preset", "ultrafast", "-movflags", "+faststart"]
    with atomic_path(path) as tmp, HeadRenderer(mesh, size) as renderer:
        ffmpeg = popen([*command, str(tmp)], stdin=subprocess.PIPE, bufsize=0)
        try:
            try:
                for verts in tqdm(anim.iter_vertices(rig), total=anim.num_frames, desc=f"render {path.name}",
                                  unit="frame", disable=True if anim.duration <= 10 else None):
                    ffmpeg.stdin.write(renderer.render(verts).tobytes())
            except BrokenPipeError:
                pass  # ffmpeg stopped early: its exit status and its message (on stderr) say why
            ffmpeg.stdin.close()
            status = ffmpeg.wait()
        except BaseException:  # stop ffmpeg before atomic_path removes its file
            ffmpeg.kill()
            ffmpeg.wait()
            raise
        if status != 0:
            raise RuntimeError(f"ffmpeg exited with status {status} writing {path}")
    return path


def render_still(anim, path: str | Path, frame: int = 0, yaw_deg: float = 0.0, size: int = 512,
                 rig=None) -> Path:
    """Render frame ``frame`` of ``anim`` to a PNG, camera turned by ``yaw_deg`` degrees.

    Use ``yaw_deg=0`` for the front view and ``30`` for a three-quarter view toward the
    subject's left. ``size`` is the image width and height in pixels.
    """
    Image = require("PIL.Image", "PNG rendering")

    mesh = rig or anim.mesh()
    path = Path(path)
    verts = anim.vertices(slice(frame, frame + 1), rig)[0]
    with HeadRenderer(mesh, size, yaw_deg) as renderer:
        image = renderer.render(verts)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path
