"""Writers for every output format of an :class:`facemotion.animation.Animation`.

=======  ==================  ====================================================================
format   default output      module
=======  ==================  ====================================================================
npz      ``NAME.npz``        :mod:`.npz` (named arrays; optionally vertices/faces/landmarks)
glb      ``NAME.glb``        :mod:`.glb` (mesh, 52 morph targets, weights + head animation)
usd      ``NAME.usd``        :mod:`.usd` (UsdSkel: blend shapes, head joint, SkelAnimation)
csv      ``NAME.csv``        :mod:`.arkit_csv` (Live Link Face layout at 30/60 fps)
obj/ply  ``NAME_obj/`` ...   :mod:`.meshseq` (a directory with one mesh per frame)
mp4      ``NAME.mp4``        :mod:`facemotion.render.video` (H.264 + AAC speech)
=======  ==================  ====================================================================

npz, obj, ply and mp4 take any face space (through its vertices and mesh); glb, usd and csv
need blendshapes (:data:`BLENDSHAPE_FORMATS`) and refuse other spaces with one clear error
(:func:`check_format`). Every writer is atomic (:func:`.atomic.atomic_path`).
"""

from __future__ import annotations

from pathlib import Path

from facemotion.errors import DataError, check_installed

#: format -> file suffix ("" for the mesh-sequence directories)
FORMATS: dict[str, str] = {"npz": ".npz", "glb": ".glb", "usd": ".usd", "csv": ".csv",
                           "obj": "", "ply": "", "mp4": ".mp4"}

#: optional packages each format needs (the ``export`` and ``render`` extras)
FORMAT_PACKAGES = {"glb": ("pygltflib",), "usd": ("pxr",), "obj": ("trimesh",), "ply": ("trimesh",),
                   "mp4": ("pyrender", "OpenGL", "PIL")}

#: formats written from ARKit blendshape weights (the others work for any face space)
BLENDSHAPE_FORMATS = ("glb", "usd", "csv")


def check_format(anim, fmt: str) -> None:
    """Raise unless format ``fmt`` can express ``anim`` (an
    :class:`~facemotion.animation.Animation`): glb, usd and csv need blendshapes.

    Raises:
        DataError: ``"format X cannot express a <Space> animation; use npz, obj, ply or mp4"``,
            or an unknown format.
        MissingExtra: the format needs a package that is not installed (message: the package
            and ``pip install 'facemotion[export]'`` or ``[render]``).
    """
    if fmt not in FORMATS:
        raise DataError(f"unknown export format {fmt!r}; choose from {list(FORMATS)}")
    if fmt in BLENDSHAPE_FORMATS and not anim.provides("blendshapes"):
        usable = [f for f in FORMATS if f not in BLENDSHAPE_FORMATS]
        raise DataError(f"format {fmt} cannot express a {anim.space_name} animation; "
                        f"use {', '.join(usable[:-1])} or {usable[-1]}")
    for module in FORMAT_PACKAGES.get(fmt, ()):
        check_installed(module, f"{fmt} export")


def default_output(input: str | Path, fmt: str) -> Path:
    """Where format ``fmt`` goes by default: ``input`` with the format's suffix.

    Mesh sequences (``obj``, ``ply``) are directories named ``{stem}_{fmt}`` next to ``input``.
    """
    input = Path(input)
    if FORMATS[fmt]:
        return input.with_suffix(FORMATS[fmt])
    return input.with_name(f"{input.stem}_{fmt}")


def output_paths(outdir: str | Path, stem: str, formats) -> dict[str, Path]:
    """Where :meth:`facemotion.animation.Animation.save` writes each of ``formats``:
    ``outdir/{stem}.{suffix}`` (mesh sequences: the folder ``outdir/{stem}_{fmt}``).

    Raises:
        DataError: an unknown format.
    """
    formats = list(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise DataError(f"unknown export format(s) {unknown}; choose from {list(FORMATS)}")
    return {fmt: default_output(Path(outdir) / f"{stem}.npz", fmt) for fmt in formats}


def write(anim, fmt: str, path: str | Path, with_vertices: bool = False, size: int = 512,
          rig=None, csv_fps: float | None = None) -> Path:
    """Write ``anim`` (an :class:`~facemotion.animation.Animation`) as ``fmt`` to ``path``.

    Args:
        with_vertices: npz only: also store ``vertices [T,V,3]``, ``faces``, ``landmarks``.
        size: mp4 only: frame width and height in pixels.
        rig: blendshape space only: the head rig (default: the animation's,
            :meth:`~facemotion.animation.Animation.head`).
        csv_fps: csv only: 30 or 60 fps (default: :func:`.arkit_csv.csv_rate`).

    Returns:
        ``path`` as a Path.

    Raises:
        DataError: unknown ``fmt``, or one that cannot express the animation's space
            (:func:`check_format`), or ``csv_fps`` not 30 or 60. AudioError: mp4 whose ``anim.audio`` cannot be read.
    """
    check_format(anim, fmt)
    path = Path(path)
    if fmt == "npz":
        from facemotion.export.npz import write_npz
        return write_npz(anim, path, with_vertices=with_vertices, rig=rig)
    if fmt == "glb":
        from facemotion.export.glb import write_glb
        return write_glb(anim, path, rig=rig)
    if fmt == "usd":
        from facemotion.export.usd import write_usd
        return write_usd(anim, path, rig=rig)
    if fmt == "csv":
        from facemotion.export.arkit_csv import write_arkit_csv
        return write_arkit_csv(anim, path, csv_fps=csv_fps)
    if fmt in ("obj", "ply"):
        from facemotion.export.meshseq import write_mesh_sequence
        return write_mesh_sequence(anim, path, fmt, rig=rig)
    if fmt == "mp4":
        from facemotion.render.video import render_video
        return render_video(anim, path, size=size, rig=rig)
    raise DataError(f"unknown export format {fmt!r}; choose from {list(FORMATS)}")
