"""facemotion.face: face spaces, the built-in head rig, ARKit names and rotation conventions.

- :mod:`facemotion.face.arkit`: the 52 ARKit blendshape names in Apple's order.
- :mod:`facemotion.face.rig`: :func:`load_head_rig` -> :class:`HeadRig` (mesh + 52 morph targets).
- :mod:`facemotion.face.space`: the face-space contract :class:`FaceSpace` (``from_arrays``,
  ``to_arrays``, ``decode``, ``settings``), :class:`BlendshapeSpace` (ARKit weights + head rotation on
  the built-in head), :class:`VertexSpace` (displacements from a template of any topology, optional
  PCA) and :func:`build_space` (name + settings -> space).
- :mod:`facemotion.face.rotation`: ``euler_to_matrix`` / ``matrix_to_euler`` (pitch, yaw, roll).
"""
