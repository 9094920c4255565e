"""The web app: one module per tab, the page's assets, and what its components show (views)."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..engine import Engine
from ..files.shown import ShownFiles
from .duplicates_tab import duplicates_tab
from .evaluate_tab import evaluate_tab
from .index_tab import index_tab
from .map_tab import map_tab
from .robustness_tab import robustness_tab
from .search_tab import SearchPage, search_tab
from .startup import StartupIndexing
from . import views

INTRO = ("# Search images by image — ResNet50 and VGG16 side by side\n"
         "Drop a photo or pick one below it: each model's nearest images appear side by side, rank by rank. "
         "The higher cos, the closer.")
# The rest of the explanation, left out on a phone so that the first screen shows a comparison.
INTRO_MORE = ("In a search with no re-ranking, cos 1.000 is the same picture. The same row is the same rank, "
              "and an image both models found carries the same mark (①, ②, …) in both lists. L2, the distance, "
              "says what cos says the other way round. ")


def build_ui(engine: Engine, roots: list[Path], startup: StartupIndexing) -> tuple[gr.Blocks, ShownFiles]:
    """The page with its six tabs, and the only folder it serves files from."""
    shown = ShownFiles(engine.settings.home / "shown", roots, engine.settings.max_pixels, engine.thumbnails)
    # its files are content-addressed and never change: Gradio serves them as they are instead of
    # hashing and copying every gallery image into its cache on every search
    gr.set_static_paths([str(shown.folder)])
    # Gradio's copies of answer files (edited photos, failure lists) go after a day, looked for hourly
    with gr.Blocks(title="Image search: ResNet50 vs VGG16", delete_cache=(3600, 86400)) as demo:
        gr.Markdown(INTRO, elem_id="intro")
        gr.Markdown(INTRO_MORE + views.precision_text(engine.settings.precision,
                                                      {m.label: m.encoder.manifest for m in engine.models.values()}),
                    elem_id="intro-more")
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Search", id="search"):
                query, search_after = search_tab(demo, SearchPage(engine, shown, roots), startup)
            with gr.Tab("Evaluate", id="evaluate"):
                evaluate_tab(engine, roots, shown)
            with gr.Tab("Map", id="map") as map_page:
                map_tab(engine, shown, query, search_after, tabs, map_page)
            with gr.Tab("Robustness", id="robustness"):
                robustness_tab(engine, query)
            with gr.Tab("Duplicates", id="duplicates"):
                duplicates_tab(engine, shown)
            if not engine.settings.public:  # a public page's visitors do not change the shared index
                with gr.Tab("Index", id="index"):
                    index_tab(engine, roots)
    return demo, shown
