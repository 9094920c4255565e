"""Folders that must not grow with use keep only their newest entries."""
from __future__ import annotations

import shutil
from pathlib import Path


def prune(folder: Path, keep: int, pattern: str = "*") -> None:
    """Remove all but the `keep` newest entries (by modification time) of the folder that match the
    pattern; an entry removed meanwhile by another process is no error."""
    def age(entry: Path) -> float:
        try:
            return entry.stat().st_mtime
        except OSError:
            return 0.0
    for entry in sorted(folder.glob(pattern), key=age, reverse=True)[max(keep, 0):]:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
