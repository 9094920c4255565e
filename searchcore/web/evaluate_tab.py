"""The Evaluate tab: every mode's scores on a labelled folder, the plots and where the models disagree."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..engine import Engine
from ..evaluation import plots
from ..evaluation.evaluate import labelled_folders
from ..files.shown import ShownFiles
from ..storage.store import StoreUnavailableError
from . import views


def chosen_folder(choice: str | None, sets: dict[str, Path], roots: list[Path], public: bool) -> Path:
    """The folder an evaluation runs on: one of the configured sets by its name, or (not on a public page)
    any labelled folder under the roots, typed; otherwise a ValueError that says what may be chosen."""
    choice = (choice or "").strip()
    if choice in sets:
        return sets[choice]
    if public:
        offered = ", ".join(sets) or "none configured (SEARCHCORE_EVAL_SETS)"
        raise ValueError(f"choose one of the evaluation sets: {offered}")
    return views.under_roots(choice, roots)


def evaluate_tab(engine: Engine, roots: list[Path], shown: ShownFiles) -> None:
    """A labelled folder (one subfolder per class): a configured set, or on a private page any under the
    roots. Every mode's scores, the plots, and the queries where the models disagree most."""
    public = engine.settings.public
    sets = {folder.name: folder for folder in engine.settings.labelled_sets}
    # a private page also offers the labelled folders it finds under the roots, by their path
    found = [] if public else [str(f) for f in labelled_folders(roots) if f not in sets.values()]

    def evaluate(choice: str | None, progress=gr.Progress(track_tqdm=True)):
        try:
            report = engine.evaluate(chosen_folder(choice, sets, roots, public), roots=roots)
        except (ValueError, OSError, StoreUnavailableError) as exc:  # OSError: a folder it may not read
            return views.error_text(str(exc)), None, None, None, None, None, {}
        labels = report.labels()
        rows = views.eval_table(report, labels)
        figures = plots.figures(report, labels)
        mosaic = plots.disagreement_mosaic(report, shown.thumbnails_by_path(report.shown_files()), labels)
        as_json = views.for_public(report.to_json()) if public else report.to_json()
        return (views.eval_summary(report, public), rows, figures["precision-at-k"],
                figures["ap-per-class"], figures.get("jaccard-at-10"), mosaic, as_json)

    gr.Markdown("Evaluate both models on a labelled folder on the server: one subfolder per class, e.g. "
                "`…/corel1k/{africa,beach,…}`. Every image queries all the others; an image of the same class "
                "counts as relevant. A second evaluation of the same files reuses their embeddings.")
    with gr.Row():
        choices = [*sets, *found]
        folder = gr.Dropdown(choices, value=next(iter(choices), None), allow_custom_value=not public, scale=4,
                             label="Labelled set" if public else "Labelled set, or a folder on the server",
                             elem_id="eval-folder")
        start = gr.Button("Evaluate", variant="primary", elem_id="evaluate", scale=1)
    summary = gr.Markdown(elem_id="eval-summary")
    table = gr.Dataframe(headers=views.eval_table_headers(), interactive=False, label="Scores (best in bold)",
                         elem_id="eval-table", max_height=720, datatype="markdown")
    with gr.Row():
        curve = gr.Plot(label="Precision at k", elem_id="eval-curve", elem_classes=["labelled-plot"])
        jaccard = gr.Plot(label="Agreement per query", elem_id="eval-jaccard",
                          elem_classes=["labelled-plot"])
    per_class = gr.Plot(label="AP per class", elem_id="eval-classes", elem_classes=["labelled-plot"])
    mosaic = gr.Image(label="Where they disagree most: the query, then each model's first 5 (green: same class)",
                      type="pil", interactive=False, elem_id="eval-disagreements",
                      elem_classes=["labelled-plot"])
    with gr.Accordion("JSON (everything above, as the CLI's eval --json prints it)", open=False):
        as_json = gr.JSON()
    start.click(evaluate, folder, [summary, table, curve, per_class, jaccard, mosaic, as_json], api_name="evaluate",
                concurrency_limit=1, show_progress_on=[summary])  # one progress bar, not one per box
