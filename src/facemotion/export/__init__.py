"""Writers for every output format of an :class:`facemotion.animation.Animation`.

=======  ==================  ====================================================================
format   default output      module
=======  ==================  ====================================================================
npz      ``NAME.npz``        :mod:`.npz` (named arrays; optionally vertices/faces/landmarks)
glb      ``NAME.glb``        :mod:`.glb` (mesh, 52 morph targets, weights + head animation)
usd      ``NAME.usd``        :mod:`.usd` (UsdSkel: blend shapes, head joint, SkelAnimation)
csv      ``NAME.csv``        :mod:`.arkit_csv` (ARKit Live Link Face layout)
obj/ply  ``NAME_obj/`` ...   :mod:`.meshseq` (a directory with one mesh per frame)
mp4      ``NAME.mp4``        :mod:`facemotion.render.video` (H.264 + AAC speech)
=======  ==================  ====================================================================

Every writer is atomic (:func:`.atomic.atomic_path`).
"""

from __future__ import annotations

from pathlib import Path

from facemotion.errors import DataError

#: format -> file suffix ("" for the mesh-sequence directories)
FORMATS: dict[str, str] = {"npz": ".npz", "glb": ".glb", "usd": ".usd", "csv": ".csv",
                           "obj": "", "ply": "", "mp4": ".mp4"}


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
          rig=None) -> Path:
    """Write ``anim`` (an :class:`~facemotion.animation.Animation`) as ``fmt`` to ``path``.

    Args:
        with_vertices: npz only: also store ``vertices [T,V,3]``, ``faces``, ``landmarks``.
        size: mp4 only: frame width and height in pixels.
        rig: the head rig (default: :func:`facemotion.face.rig.load_head_rig`).

    Returns:
        ``path`` as a Path.

    Raises:
        DataError: unknown ``fmt``. AudioError: mp4 whose ``anim.audio`` cannot be read.
    """
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
        return write_arkit_csv(anim, path)
    if fmt in ("obj", "ply"):
        from facemotion.export.meshseq import write_mesh_sequence
        return write_mesh_sequence(anim, path, fmt, rig=rig)
    if fmt == "mp4":
        from facemotion.render.video import render_video
        return render_video(anim, path, size=size, rig=rig)
    raise DataError(f"unknown export format {fmt!r}; choose from {list(FORMATS)}")


def export_file(input: str | Path, to: str, output: str | Path | None = None,
                audio: str | Path | None = None, with_vertices: bool = False,
                size: int = 512, overwrite: bool = False) -> Path:
    """Convert an animation ``.npz`` to format ``to`` (the ``facemotion export`` command).

    The output is checked first (:func:`.outputs.check_output`) and its folder held for the run
    (:func:`.outputs.output_folder`), before the input is read.

    Args:
        input: animation ``.npz`` (see :meth:`facemotion.animation.Animation.load`).
        to: one of :data:`FORMATS`.
        output: output path (default: :func:`default_output`).
        audio: speech to mux into an mp4 (default: the audio recorded in the ``.npz``, if any).
        with_vertices: npz: also store vertices, faces and landmarks.
        size: mp4 frame size in pixels.
        overwrite: replace an existing output instead of refusing.

    Returns:
        The path written.

    Raises:
        DataError: ``input`` is missing or malformed, or ``to`` is unknown.
        AudioError: the speech file cannot be read.
        OutputError: the output cannot be written there, exists (without ``overwrite``), or
            another run is writing into its folder.
    """
    from facemotion.animation import Animation
    from facemotion.export.outputs import check_output, output_folder

    if to not in FORMATS:
        raise DataError(f"unknown export format {to!r}; choose from {list(FORMATS)}")
    output = Path(output) if output is not None else default_output(input, to)
    with output_folder(output.parent):
        check_output(output, directory=not FORMATS[to], overwrite=overwrite)
        anim = Animation.load(input)
        if audio is not None:
            anim.audio = Path(audio)
        return write(anim, to, output, with_vertices=with_vertices, size=size)
