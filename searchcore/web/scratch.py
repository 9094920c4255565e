"""Files the app writes for one answer (the list of an index run's failures, an edited photo), each kind
in a folder of its own that keeps only its newest KEPT entries: they never grow with use. They live in
a private folder of the process in the system's temp folder, from where Gradio copies an answer's files
into its cache (which it prunes itself: build_ui's delete_cache)."""
from __future__ import annotations

import tempfile
import threading
import uuid
from pathlib import Path

from ..files.pruning import prune

KEPT = 64


_PROCESS_FOLDER: list[Path] = []  # made once per process, private (mkdtemp: mode 0700, a name no one guesses)
_LOCK = threading.Lock()


def process_folder() -> Path:
    with _LOCK:
        if not _PROCESS_FOLDER:
            _PROCESS_FOLDER.append(Path(tempfile.mkdtemp(prefix="searchcore-scratch-")))
        return _PROCESS_FOLDER[0]


class Scratch:
    """One kind of answer file: scratch.new(name) is a fresh path with that file name."""

    def __init__(self, kind: str, root: Path | None = None, keep: int = KEPT) -> None:
        self.kind, self.root, self.keep = kind, root, keep

    @property
    def folder(self) -> Path:
        return (self.root or process_folder()) / self.kind

    def new(self, name: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        prune(self.folder, self.keep - 1)
        own = self.folder / uuid.uuid4().hex
        own.mkdir()
        return own / name
