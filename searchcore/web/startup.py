"""What the app indexes at start-up (in a thread, while the page is served), the line that follows it,
and the folders the app may index and serve files from."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import gradio as gr

from ..config import Settings
from ..engine import Engine
from ..files.decode import IMAGE_SUFFIXES
from ..files.demo import DemoError, ensure_demo
from ..files.samples import sample_files, sample_folder
from . import views

log = logging.getLogger("searchcore.app")
OVER = "start-up indexing over: the DBA vectors are current"  # logged last, once the page says it
FAILED = "indexing at start-up failed"


def index_roots(settings: Settings, images: Path | None) -> list[Path]:
    """Folders the app may index and serve files from: configured roots, --images, the evaluation sets,
    samples, uploads."""
    configured = [Path(p) for p in os.environ.get("SEARCHCORE_INDEX_ROOTS", "").split(os.pathsep) if p]
    roots = (configured + ([images] if images else []) + list(settings.labelled_sets)
             + [sample_folder(), settings.home / "uploads"])
    return list(dict.fromkeys(p.expanduser().resolve() for p in roots))


def holds_images(folder: Path) -> bool:
    """Whether there is at least one image file below the folder (the walk stops at the first)."""
    return folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*"))


class StartupIndexing:
    """The operator's folder and the demo collection (or, for an empty index, the sample photos) indexed
    in a thread while the page is already served: searches cover what is indexed so far, and the page
    says how far it is. Only files whose real path is under the roots are read (a link out is refused)."""

    def __init__(self, engine: Engine, images: Path | None, roots: list[Path]) -> None:
        self.engine, self.images, self.roots = engine, images, roots
        self.done = self.total = 0
        self.fetched: tuple[int, int] | None = None  # bytes of the demo archive fetched, and expected
        self.failure: str | None = None
        self.note: str | None = None  # said on the page after the run
        self.finished = threading.Event()

    def start(self) -> "StartupIndexing":
        threading.Thread(target=self._run, name="startup-indexing", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            if folders := self._folders():
                report = self.engine.index(folders, roots=self.roots, on_progress=self._progress)
                log.info("indexing %s: %s", ", ".join(map(str, folders)), report.summary())
            elif self.engine.is_empty():
                report = self.engine.index(sample_files(), roots=self.roots, on_progress=self._progress)
                log.info("indexing the sample photos: %s", report.summary())
            self.engine.settle()  # over when the DBA vectors are current: the page searched the run meanwhile
        except Exception as exc:  # noqa: BLE001 - shown in the page instead of killing a thread silently
            log.exception("%s", FAILED)
            self.failure = str(exc)
        finally:
            self.finished.set()
        if self.failure is None:
            log.info("%s", OVER)

    def _folders(self) -> list[Path]:
        """The folders to index: --images if it holds photos, and the demo collection once it is here.
        What is missing is said in the note (the samples stand in when the index is empty)."""
        folders, notes = [], []
        if self.images and holds_images(self.images):
            folders.append(self.images)
        elif self.images:
            notes.append(f"{self.images} holds no photos (or is missing).")
        settings = self.engine.settings
        if settings.demo_url:
            try:
                folders.append(ensure_demo(settings.demo_url, settings.demo_set, on_progress=self._fetching))
            except DemoError as exc:
                notes.append(f"The demo photos could not be had: {exc}.")
            finally:
                self.fetched = None
        if notes and not folders:
            notes.append("The app shows the bundled sample photos instead.")
        self.note = " ".join(notes) or None
        if self.note:
            log.warning("%s", self.note)
        return folders

    def _fetching(self, fetched: int, expected: int) -> None:
        self.fetched = fetched, expected

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def line(self) -> str:
        """What the page says of it now."""
        if self.fetched:
            return views.fetch_text(*self.fetched)
        return views.startup_text(self.done, self.total, self.finished.is_set(), self.failure, self.note)


def startup_progress(demo: gr.Blocks, startup: StartupIndexing, banner: gr.Markdown, examples: gr.Dataset,
                     make_examples) -> None:
    """The line that follows the start-up indexing (a timer asks every second, and every page load asks
    once) and, once it is over, new examples."""
    timer = gr.Timer(1.0, active=not startup.finished.is_set())

    def tick():
        finished = startup.finished.is_set()
        return (startup.line(), gr.Timer(active=not finished),
                gr.Dataset(samples=make_examples()) if finished else gr.skip())

    timer.tick(tick, None, [banner, timer, examples], api_visibility="private", show_progress="hidden")
    demo.load(tick, None, [banner, timer, examples], api_visibility="private", show_progress="hidden")
