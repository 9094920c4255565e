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


def map_tab(engine: Engine, shown: ShownFiles, query: QueryImage, search_after: Callable, tabs: gr.Tabs,
            page: gr.Tab) -> None:
    """Each model's indexed images in 2-D, side by side; hover for the image, click to search with it."""
    def thumbnail(point) -> str:
        """The hovered point's thumbnail URL; Gradio hands a server function the JS arguments as one list."""
        path, sha256 = (list(point) + ["", ""])[:2] if isinstance(point, (list, tuple)) else ("", "")
        made = shown.thumbnail(str(path), str(sha256))
        return f"gradio_api/file={made}" if made else ""

    def draw(method: str):
        try:
            return [views.map_svg(engine.map_points(name, method), m.label) for name, m in engine.models.items()]
        except (ValueError, StoreUnavailableError) as exc:
            return [views.error_text(str(exc))] * len(engine.models)

    def pick(evt: gr.SelectData):
        row = engine.row(int(evt.value)) if str(evt.value).isdigit() else None
        copy = row and shown.original(row["path"], row["sha256"])
        return (str(copy), gr.Tabs(selected="search")) if copy else (gr.skip(), gr.skip())

    gr.Markdown(f"How each model places the indexed images (at most {maps.MAX_POINTS:,}; a seeded sample above "
                "that), coloured by top-level folder. Images close together are close for that model. Hover over "
                "a point to see the image; click it to search with it.")
    method = gr.Radio(list(maps.METHODS), value="PCA", label="Projection", elem_id="map-method")
    with gr.Row(equal_height=False):
        panes = [gr.HTML(elem_id=f"map-{name}", js_on_load=MAP_JS, server_functions=[thumbnail], min_height=200)
                 for name in engine.models]
    page.select(draw, method, panes, api_visibility="private")
    method.change(draw, method, panes, api_name="map")
    for pane in panes:
        search_after(pane.select(pick, None, [query, tabs], api_visibility="private"))
