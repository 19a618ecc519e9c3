"""Files that are never half written: the one atomic write every package uses for
bundles, calibrations, checkpoints, manifests and configs."""
from storage.atomic import atomic_write, atomic_write_json

__all__ = ["atomic_write", "atomic_write_json"]
