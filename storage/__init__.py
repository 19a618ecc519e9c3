"""Files that are never half written: the one atomic write every package uses for
bundles, calibrations, checkpoints, manifests and configs."""
from storage.atomic import DiskFull, atomic_write, atomic_write_json, atomic_write_png, output_folder

__all__ = ["DiskFull", "atomic_write", "atomic_write_json", "atomic_write_png", "output_folder"]
