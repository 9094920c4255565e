"""The Duplicates tab: groups of near-duplicate images in the index, largest first, each a row of
thumbnails, scored by one model or fused, at that way's measured threshold or one the user sets."""
from __future__ import annotations

import gradio as gr

from ..engine import Engine
from ..files.shown import ShownFiles
from ..retrieval.duplicates import FUSED_SCORING, THRESHOLDS
from ..storage.store import StoreUnavailableError
from . import views


def find_duplicates(engine: Engine, shown: ShownFiles, scoring: str, threshold: float) -> tuple[str, str, dict]:
    """The summary, the first MAX_GROUPS_SHOWN groups' rows and their JSON (paths cut to folder and name
    on a public page). Only images that can be shown (under the roots, unchanged) are in a group."""
    try:
        groups = engine.duplicates(scoring, float(threshold))
    except (ValueError, TypeError, StoreUnavailableError) as exc:
        return views.error_text(str(exc)), "", {}
    groups = groups[:views.MAX_GROUPS_SHOWN]
    images = shown.thumbnails_by_path([(m.path, m.sha256) for g in groups for m in g.members])
    groups = [g for g in (views.shown_group(g, images) for g in groups) if g]
    as_json = {"scored_by": scoring, "threshold": threshold, "groups": [g.to_json() for g in groups]}
    return (views.duplicates_summary(groups, scoring, threshold), views.duplicates_html(groups, images),
            views.for_public(as_json) if engine.settings.public else as_json)


def duplicates_tab(engine: Engine, shown: ShownFiles) -> None:
    ways = [(views.LABELS[name], name) for name in engine.models] + [("Fused (mean cosine)", FUSED_SCORING)]
    gr.Markdown("Photos that are copies of each other: resized, re-saved, slightly cropped, mirrored or in "
                "grayscale. Two photos are near-duplicates when their score (the cosine of their vectors) "
                "reaches the threshold; each model's default is the one that found planted copies best.")
    with gr.Row(equal_height=True):
        scoring = gr.Radio(ways, value=FUSED_SCORING, label="Scored by", elem_id="dup-scoring")
        threshold = gr.Slider(0.5, 1.0, value=THRESHOLDS[FUSED_SCORING], step=0.005, label="Threshold (cosine)",
                              elem_id="dup-threshold")
        find = gr.Button("Find duplicates", variant="primary", elem_id="dup-find")
    summary = gr.Markdown(elem_id="dup-summary")
    rows = gr.HTML(elem_id="dup-groups")
    with gr.Accordion("JSON (each member's file and its score to the group's first)", open=False):
        as_json = gr.JSON()
    scoring.input(lambda way: THRESHOLDS.get(way, gr.skip()), scoring, threshold, api_visibility="private")
    find.click(lambda way, t: find_duplicates(engine, shown, way, t), [scoring, threshold], [summary, rows, as_json],
               api_name="duplicates", concurrency_id="duplicates", concurrency_limit=1)
