"""The Robustness tab: an edit of the query, and where the original lands for each model and list."""
from __future__ import annotations

import random
from pathlib import Path

import gradio as gr

from ..engine import Engine
from ..files.decode import named_only, raw_from_bytes, read_raw
from ..inspection.edits import APP_EDITS, apply_edit
from ..storage.store import StoreUnavailableError
from .scratch import Scratch
from .upload import QueryImage
from . import views


EDITED_PHOTOS = Scratch("edited")


def robustness_tab(engine: Engine, query: QueryImage) -> None:
    """Edit the Search tab's query (turn, crop, recompress, recolour, caption it), search with the edit,
    and see where the original lands for each model and fused list, plain, robust and re-ranked."""
    def edit_and_search(image: str | None, kind: str, amount: float):
        if not image:
            return None, [], views.error_text("Search with a photo on the Search tab first: its edits are tried here.")
        try:
            original = read_raw(image)
            if engine.row(original.id) is None:  # checked before anything runs: nothing could land anywhere
                return None, [], views.error_text(
                    f"{Path(image).name} is not indexed, so its original cannot land anywhere: pick one of the "
                    "examples on the Search tab, or index the photo first.")
            edited_bytes = apply_edit(engine.decode(original), kind, random.Random(0),
                                      amount if APP_EDITS.get(kind) else None)  # a hidden slider keeps a value
            ranks = engine.where_it_lands(raw_from_bytes(edited_bytes, f"{kind} of {Path(image).name}"), original.id)
        except (ValueError, StoreUnavailableError) as exc:
            return None, [], views.error_text(named_only(str(exc), image))
        shown_edit = EDITED_PHOTOS.new("edited.jpg")
        shown_edit.write_bytes(edited_bytes)
        return str(shown_edit), views.robustness_rows(ranks), f"Where the original lands after **{views.safe(kind)}**."

    def amount_for(kind: str):
        spec = APP_EDITS.get(kind)
        if spec is None:
            return gr.Slider(visible=False)
        label, low, high, default = spec
        return gr.Slider(minimum=low, maximum=high, value=default, label=label, visible=True)

    gr.Markdown("Try an edit of the photo on the Search tab: the app searches with the edited photo and shows "
                "where the original lands, for each model and fused list — plain, with the robust query (also "
                "turned by 90°, 180° and 270° and mirrored) and with DBA+αQE re-ranking.")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            kind = gr.Dropdown(list(APP_EDITS), value="rotate", label="Edit", elem_id="edit-kind")
            first = APP_EDITS["rotate"]
            amount = gr.Slider(first[1], first[2], value=first[3], label=first[0], elem_id="edit-amount")
            start = gr.Button("Edit and search", variant="primary", elem_id="edit-search")
            original = gr.Image(query.value, label="The photo it edits: the Search tab's query", type="filepath",
                                interactive=False, elem_id="edit-original", height=180)
            edited = gr.Image(label="The edited photo", type="filepath", interactive=False, elem_id="edited")
        with gr.Column(scale=2):
            said = gr.Markdown(elem_id="robust-status")
            table = gr.Dataframe(headers=["list", *views.ROBUST_OPTIONS.values()], interactive=False,
                                 label="Rank of the original", elem_id="robust-table")
    kind.change(amount_for, kind, amount, api_visibility="private")
    query.change(lambda image: image, query, original, api_visibility="private", show_progress="hidden")
    start.click(edit_and_search, [query, kind, amount], [edited, table, said], api_name="robustness",
                concurrency_id="robustness")  # a dozen searches a run: one run at a time
