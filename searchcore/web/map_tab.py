"""The Map tab: each model's indexed images in 2-D, side by side; hover for the image, click to search."""
from __future__ import annotations

from typing import Callable

import gradio as gr

from ..engine import Engine
from ..files.shown import ShownFiles
from ..inspection import maps
from ..storage.store import StoreUnavailableError
from .assets import MAP_JS
from .upload import QueryImage
from . import views


MAX_ID_DIGITS = 19  # ids are 63-bit


def indexed_row(engine: Engine, value: object) -> dict | None:
    """The indexed row a point's id names (a decimal string or a list holding one, as Gradio hands a
    server function its JS arguments), or None for anything else."""
    if isinstance(value, (list, tuple)):
        value = value[0] if len(value) == 1 else None
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not (0 < len(text) <= MAX_ID_DIGITS and text.isascii() and text.isdigit()) or int(text) >= 2**63:
        return None
    return engine.row(int(text))


def hover_thumbnail(engine: Engine, shown: ShownFiles, point: object) -> str:
    """The thumbnail URL of the point's indexed image, from the path and SHA-256 the index holds (none
    of the client's): "" unless that file is under a root and unchanged."""
    try:
        row = indexed_row(engine, point)
    except StoreUnavailableError:  # the map stays; its hover shows no picture while Milvus is away
        return ""
    made = row and shown.thumbnail(row["path"], row["sha256"])
    return f"gradio_api/file={made}" if made else ""


def map_tab(engine: Engine, shown: ShownFiles, query: QueryImage, search_after: Callable, tabs: gr.Tabs,
            page: gr.Tab) -> None:
    """Each model's indexed images in 2-D, side by side; hover for the image, click to search with it.
    Only images under the roots are drawn."""
    def thumbnail(point) -> str:
        return hover_thumbnail(engine, shown, point)

    def draw(method: str):
        try:
            return [views.map_svg(engine.map_points(name, method).only(shown.allows), m.label)
                    for name, m in engine.models.items()]
        except (ValueError, StoreUnavailableError) as exc:
            return [views.error_text(str(exc))] * len(engine.models)

    def pick(evt: gr.SelectData):
        try:
            row = indexed_row(engine, evt.value)
        except StoreUnavailableError as exc:
            gr.Warning(str(exc))
            return gr.skip(), gr.skip()
        copy = row and shown.original(row["path"], row["sha256"])
        return (str(copy), gr.Tabs(selected="search")) if copy else (gr.skip(), gr.skip())

    gr.Markdown(f"How each model places the indexed images (at most {maps.MAX_POINTS:,}; a seeded sample above "
                "that), coloured by class (the folder each photo is in; uploads together). Images close together "
                "are close for that model. Hover over a point to see the image; click it to search with it.")
    method = gr.Radio(list(maps.METHODS), value="PCA", label="Projection", elem_id="map-method")
    with gr.Row(equal_height=False, elem_id="map-panes"):  # on a phone, one above the other
        panes = [gr.HTML(elem_id=f"map-{name}", js_on_load=MAP_JS, server_functions=[thumbnail], min_height=200)
                 for name in engine.models]
    page.select(draw, method, panes, api_visibility="private")
    method.change(draw, method, panes, api_name="map")
    for pane in panes:
        search_after(pane.select(pick, None, [query, tabs], api_visibility="private"))
