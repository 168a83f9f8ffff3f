"""Former home of :mod:`facemotion.atomic` (atomic file output), kept so that old imports work.

It moved out of ``export/`` because every package writes files atomically (rendering,
features, checkpoints), and ``render/`` importing ``export/`` closed an import cycle.
"""

from facemotion.atomic import TEMPORARY_NAME, atomic_path, remove_stale_temporaries

__all__ = ["TEMPORARY_NAME", "atomic_path", "remove_stale_temporaries"]
