"""The Index tab: a folder under the roots and/or uploads, with progress, a summary and every failure."""
from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from ..engine import Engine
from ..files.decode import IMAGE_SUFFIXES
from ..files.samples import sample_folder
from ..storage.store import StoreUnavailableError
from . import views
from .scratch import Scratch

log = logging.getLogger("searchcore.app")


FAILURE_LISTS = Scratch("index-failures")


def index_tab(engine: Engine, roots: list[Path]) -> None:
    """A folder on the server and/or uploads, with progress, a grouped summary and the full failure list."""
    uploads = engine.settings.home / "uploads"

    def index(folder: str | None, files: list[str] | None, progress=gr.Progress(track_tqdm=True)):
        messages, names, reports = [], {}, []
        try:
            if folder and folder.strip():
                try:
                    reports.append(engine.index([views.under_roots(folder.strip(), roots)], roots=roots))
                except ValueError as exc:
                    messages.append(views.error_text(str(exc)))
            if files:
                report, names = engine.index_uploads(files, uploads)
                reports.append(report)
        except StoreUnavailableError as exc:
            messages.append(views.error_text(str(exc)))
        for report in reports:
            messages.insert(0, views.index_summary(report, names))
        failed = "".join(views.failure_list(report, names) for report in reports)  # the folder's and the uploads'
        full_list = FAILURE_LISTS.new("index-failures.tsv") if failed else None
        if full_list:
            full_list.write_text(failed)
        if not messages:
            messages.append("Give a folder under the allowed roots, or upload images.")
        return "\n\n".join(messages), str(full_list) if full_list else None, stats()

    def settled(summary: str | None):
        """Once the run's upkeep is over, the summary says so (only a run that added photos has one)."""
        if not summary or views.UPKEEP_NOTE not in summary:
            return gr.update()
        return views.settled_summary(summary, engine.dba_current_after_upkeep())

    def stats():
        try:
            return views.stats_rows(engine.stats())
        except StoreUnavailableError as exc:
            log.warning("%s", exc)
            return []

    names = {sample_folder(): "the bundled sample photos", uploads.resolve(): "earlier uploads"}
    gr.Markdown("Index a folder on the server (under: " + views.roots_text(roots, names) +
                ") and/or upload images. Re-indexing adds only what is new.")
    with gr.Row():
        folder = gr.Textbox(label="Folder on the server", elem_id="folder")
        files = gr.File(label="Images to add", file_count="multiple", type="filepath",
                        file_types=sorted(IMAGE_SUFFIXES), elem_id="files")
    start = gr.Button("Index", variant="primary", elem_id="index")
    summary = gr.Markdown(elem_id="summary")
    failures = gr.File(label="Every failure, as a tab-separated list", elem_id="failures")
    table = gr.Dataframe(stats(), headers=views.STATS_HEADERS, interactive=False, label="Collections")
    # then the upload box is emptied: its files are indexed, and the next click must not send them again
    # and once the run's DBA vectors are current (or their step failed), the summary says it
    start.click(index, [folder, files], [summary, failures, table], api_name="index", concurrency_limit=1).then(
        lambda: None, None, files, api_visibility="private").then(
        settled, summary, summary, api_visibility="private", show_progress="hidden")
    gr.Button("Refresh", size="sm").click(stats, None, table, api_name="stats")
