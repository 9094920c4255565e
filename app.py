"""The web app: drag a photo in, see what ResNet50 and VGG16 find, side by side.

Only wiring: components and events here, everything else in searchcore (views for what is shown).
    python app.py [--images FOLDER] [--host 127.0.0.1] [--port 7860]
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import logging
import os
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from searchcore import MODEL_NAMES, Engine, Settings, maps, plots, views  # noqa: E402
from searchcore.build import build_models  # noqa: E402
from searchcore.config import PRECISIONS, configure_logging  # noqa: E402
from searchcore.decode import IMAGE_SUFFIXES, content_id, raw_from_bytes, read_raw  # noqa: E402
from searchcore.edits import APP_EDITS, apply_edit  # noqa: E402
from searchcore.rerank import RERANKS  # noqa: E402
from searchcore.samples import sample_files, sample_folder  # noqa: E402
from searchcore.shown import ShownFiles  # noqa: E402
from searchcore.store import StoreUnavailableError  # noqa: E402

log = logging.getLogger("searchcore.app")
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # 20 MiB, one limit for uploads (Gradio's) and data: URLs (ours)
EXAMPLES = 8
NO_SELECTION = "Select a hit to see its details."
FUSED_LABELS = {views.FUSED_MODE: "Fused (mean cosine of the models, over their top 50)",
                views.FUSED_RRF_MODE: "Fused (reciprocal rank fusion of the models' top 50)"}
# After a search: the page's URL names it (the query's id when it is indexed, the mode and k), as a new
# history entry, so that Back, Reload and a copied link bring it back; Back reloads the page to get there.
# The query is named by the first 16 hex digits of its SHA-256 (its id is those 63 bits; a JSON number
# that large loses digits in JavaScript).
KEEP_IN_URL = """(query, own, mode, k, rerank) => {
  if (!query) { return; }  // no photo (a fresh page, a cleared query): the address stays as it is
  const url = new URL(window.location.href);
  if (own) { url.searchParams.set("q", own); } else { url.searchParams.delete("q"); }
  url.searchParams.set("mode", mode); url.searchParams.set("k", String(k));
  if (rerank && rerank !== "none") { url.searchParams.set("r", rerank); } else { url.searchParams.delete("r"); }
  if (url.href !== window.location.href) { window.history.pushState(null, "", url); }
  window.onpopstate = () => window.location.reload();
}"""
# The machine's own sans-serif fonts: the Source Sans Pro that Gradio serves offline has no bold capitals,
# so a bold "Agreement" began with a thin "A" (capitals fell back to the regular face).
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"])
# Rank by rank: every gallery cell has the same height, so row r of both lists shows the same ranks.
CSS = """
.ranked .grid-wrap.fixed-height, .ranked .gallery-container { max-height: none !important; height: auto !important;
  min-height: 0 !important; overflow-y: visible !important; }
.ranked .thumbnail-item { aspect-ratio: 4 / 3; }
#details { overflow-wrap: anywhere; }
#why .grid-wrap, #why .gallery-container { max-height: none !important; height: auto !important; min-height: 0 !important; }  /* long paths wrap instead of being cut off */
@media (max-width: 640px) {  /* a phone keeps the two lists side by side, one hit per row */
  .pair { flex-wrap: nowrap !important; gap: 6px !important; }
  .pair .ranked { min-width: 0 !important; }
  .ranked .grid-container { grid-template-columns: 1fr !important; }
}
.ranked .caption-label { white-space: normal; font-size: 0.8em; line-height: 1.25; max-width: 100%; }
.map { position: relative; } .map svg { width: 100%; max-width: 520px; border: 1px solid #ddd; cursor: pointer; }
.map-title { font-weight: 600; margin-bottom: 4px; } .map circle:hover { stroke: black; stroke-width: 2; }
.map-legend { display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 0.85em; margin-top: 6px; }
.map-key i { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 4px; }
.map-tip { position: absolute; display: none; z-index: 10; background: white; border: 1px solid #999;
  padding: 4px; max-width: 180px; font-size: 0.75em; overflow-wrap: anywhere; pointer-events: none; }
.map-tip img { max-width: 170px; max-height: 130px; display: block; }
"""


class QueryImage(gr.Image):
    """An image input that hands the upload to searchcore's own decoder untouched, so that a broken or
    hostile upload gets searchcore's clear message instead of a generic failure. A `data:` URL (sent
    through the API instead of an upload) is size-checked before it is decoded from base64, and then
    takes the same path: Gradio never decodes the picture itself."""

    def get_block_name(self) -> str:
        return "image"

    def preprocess(self, payload):
        if payload is None:
            return None
        if (payload.url or "").startswith("data:"):
            return save_data_url(payload.url, Path(self.GRADIO_CACHE) / "pasted")
        if payload.path:
            return str(payload.path)
        return super().preprocess(payload)


def save_data_url(url: str, folder: Path) -> str:
    """The bytes of a base64 `data:` URL in a file of their own, or gr.Error before any decoding."""
    header, _, body = url.partition(",")
    if ";base64" not in header:
        raise gr.Error("A data: URL must be base64-encoded.")
    if len(body) > (MAX_UPLOAD_BYTES + 2) // 3 * 4 + 4:
        raise gr.Error(f"The image is over the upload limit of {MAX_UPLOAD_BYTES} bytes (20 MiB).")
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise gr.Error("The data: URL is not valid base64.") from None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}-pasted-image"
    path.write_bytes(data)
    return str(path)


def index_roots(settings: Settings, images: Path | None) -> list[Path]:
    """Folders the app may index and serve files from: configured roots, --images, samples, uploads."""
    configured = [Path(p) for p in os.environ.get("SEARCHCORE_INDEX_ROOTS", "").split(os.pathsep) if p]
    roots = configured + ([images] if images else []) + [sample_folder(), settings.home / "uploads"]
    return list(dict.fromkeys(p.expanduser().resolve() for p in roots))


class StartupIndexing:
    """The operator's folder (or, for an empty index, the sample photos) indexed in a thread while the
    page is already served: searches cover what is indexed so far, and the page says how far it is."""

    def __init__(self, engine: Engine, images: Path | None) -> None:
        self.engine, self.images = engine, images
        self.done = self.total = 0
        self.failure: str | None = None
        self.finished = threading.Event()

    def start(self) -> "StartupIndexing":
        threading.Thread(target=self._run, name="startup-indexing", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            if self.images:
                log.info("indexing %s: %s", self.images, self.engine.index([self.images], on_progress=self._progress)
                         .summary())
            elif self.engine.is_empty():
                log.info("indexing the sample photos: %s",
                         self.engine.index(sample_files(), on_progress=self._progress).summary())
        except Exception as exc:  # noqa: BLE001 - shown in the page instead of killing a thread silently
            log.exception("indexing at start-up failed")
            self.failure = str(exc)
        finally:
            self.finished.set()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


def build_ui(engine: Engine, roots: list[Path], startup: StartupIndexing) -> tuple[gr.Blocks, ShownFiles]:
    shown = ShownFiles(engine.settings.home / "shown", roots, engine.settings.max_pixels, engine.embedder.thumbnails)
    # its files are content-addressed and never change: Gradio serves them as they are instead of
    # hashing and copying every gallery image into its cache on every search
    gr.set_static_paths([str(shown.folder)])
    with gr.Blocks(title="Image search: ResNet50 vs VGG16") as demo:
        gr.Markdown("# Search images by image — ResNet50 and VGG16 side by side\n"
                    "Drop a photo (or paste, or use the webcam). Each model's nearest images appear rank by rank: "
                    "the same row is the same rank. An image both models found carries the same mark (①, ②, …) "
                    "in both lists. L2 distance: lower is closer; cosine similarity: higher is closer. "
                    + views.precision_text(engine.settings.precision,
                                           {m.label: m.encoder.manifest for m in engine.models.values()}),
                    elem_id="intro")
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Search", id="search"):
                query, search_after = search_tab(demo, engine, shown, startup, roots)
            with gr.Tab("Evaluate", id="evaluate"):
                evaluate_tab(engine, roots, shown)
            with gr.Tab("Map", id="map") as map_page:
                map_tab(engine, shown, query, search_after, tabs, map_page)
            with gr.Tab("Robustness", id="robustness"):
                robustness_tab(engine, query)
            with gr.Tab("Index", id="index"):
                index_tab(engine, roots)
    return demo, shown


def gallery(label: str, elem_id: str, visible: bool = True) -> gr.Gallery:
    """A list of hits; columns stay as set (no fitting to fewer images), so that the same place is the same rank."""
    return gr.Gallery(label=label, columns=2, fit_columns=False, height="auto", object_fit="cover", preview=False,
                      visible=visible, elem_id=elem_id, elem_classes=["ranked"])


def search_tab(demo: gr.Blocks, engine: Engine, shown: ShownFiles, startup: StartupIndexing,
               roots: list[Path]) -> tuple[QueryImage, Callable]:
    """Query, mode and k; each model's hits rank by rank, the hits only one model found, the details
    and why the selected hit matched. Returns the query component, and search_after(event), which
    searches once an event of another tab has set the query."""
    def search(image: str | None, mode: str, k: int, rerank: str = "none", robust: bool = False,
               regions: bool = False) -> tuple:
        if not image:
            return empty_results("Drop a photo in to search.")
        started = time.perf_counter()
        try:
            models, top_k = views.check_mode(mode), views.check_k(k)
            result = engine.search_files([image], models, top_k, rerank or "none", bool(robust),  # None: older client
                                         bool(regions))[0]
        except (ValueError, StoreUnavailableError) as exc:
            return empty_results(views.error_text(str(exc)))
        log.info("searched with %s in %.0f ms", Path(image).name, 1000 * (time.perf_counter() - started))
        images = shown.thumbnails([h for hits in result.hits.values() for h in hits] + result.fused + result.rrf)
        lists = views.shown_lists(mode)
        # Galleries get plain values: an update object (gr.Gallery(...)) makes Gradio rebuild the
        # component's config and API schema, which cost the page ~0.1 s a search; after_search updates
        # components only when something changes
        return (*(views.gallery(result, name, images) for name in lists), views.agreement_text(result),
                NO_SELECTION, result.to_json(), views.status_text(result, images),
                (result, images, lists, uuid.uuid4().hex))

    def empty_results(status: str):
        return *([] for _ in views.LISTS), "", NO_SELECTION, {}, status, None

    def after_search(state, mode: str, chosen, alone_was: bool, why_was: bool):
        """After a new result: a selection made on an older one is forgotten, its preview closed (it would
        show another image of the new list), its heatmaps hidden and "Search with the selected hit"
        disabled; a selection already made on this result stays. The row of hits found by one model only
        shows when there are such hits."""
        result, token = (state[0], state[3]) if state else (None, None)
        alone = bool(result) and mode == views.SIDE_BY_SIDE and any(views.ranked(result, views.only(m))
                                                                    for m in result.hits)
        stale = chosen is not None and chosen.made_on != token
        current = chosen is not None and not stale
        own = next((h.sha256[:16] for hits in result.hits.values() for h in hits if result.is_self(h)), "") \
            if result else ""
        return (*(gr.Gallery(selected_index=None) if stale else gr.skip() for _ in views.LISTS),
                gr.Row(visible=alone) if alone != alone_was else gr.skip(),
                gr.Gallery(value=None, visible=False) if stale or (why_was and not current) else gr.skip(),
                gr.skip() if current else False, None if stale else gr.skip(),
                gr.Button(interactive=False) if stale else gr.skip(), alone, own)

    def show_mode(mode: str):
        models = views.MODES.get(mode, ())
        columns = 2 if len(models) > 1 else 4
        fused_mode = views.is_fused(mode)
        return (*(gr.update(visible=not fused_mode and name in models, columns=columns) for name in engine.models),
                gr.update(visible=fused_mode, label=FUSED_LABELS.get(mode)))

    def select(position: int):
        def handler(state, evt: gr.SelectData):
            if state is None or state[0].error:
                return NO_SELECTION, None, gr.Button(interactive=False)
            result, images, lists, token = state
            shown = views.gallery(result, lists[position], images)
            clicked = evt.value.get("caption") if isinstance(evt.value, dict) else None
            if not 0 <= evt.index < len(shown) or clicked != shown[evt.index][1]:
                return gr.skip(), gr.skip(), gr.skip()  # a click on an older result's list: not this result's hit
            _, hit = views.shown_hits(result, lists[position], images)[evt.index]
            try:
                chosen = views.hit_details(hit, engine.hit_scores(result, hit), made_on=token)
            except StoreUnavailableError as exc:
                return views.error_text(str(exc)), None, gr.Button(interactive=False)
            return chosen.text, chosen, gr.Button(interactive=True)
        return handler

    def restore(request: gr.Request):
        """The search a link names (?q=…&mode=…&k=…): Back, Reload and a shared link show it again."""
        params = request.query_params if request else {}
        path, named = None, params.get("q", "")
        if len(named) == 16 and all(c in "0123456789abcdef" for c in named):
            try:
                row = engine.row(content_id(named))
            except StoreUnavailableError as exc:  # the page still loads; a search will say what is wrong
                log.warning("%s", exc)
                row = None
            path = row and shown.original(row["path"], row["sha256"])
        chosen = params.get("mode") if params.get("mode") in views.MODES else gr.skip()
        top_k = int(params["k"]) if params.get("k", "").isdigit() and 1 <= int(params["k"]) <= 50 else gr.skip()
        reranked = params.get("r") if params.get("r") in RERANKS else gr.skip()
        return (str(path) if path else gr.skip()), chosen, top_k, reranked

    def search_selected(chosen):
        copy = chosen and shown.original(chosen.path, chosen.sha256)
        return str(copy) if copy else gr.skip()

    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            query = QueryImage(type="filepath", label="Query image", sources=["upload", "clipboard", "webcam"],
                               elem_id="query")
            mode = gr.Radio(list(views.MODES), value="Side by side", label="Models", elem_id="mode")
            k = gr.Slider(1, 50, value=8, step=1, label="Top k", elem_id="topk")
            rerank = gr.Radio(views.RERANK_CHOICES, value="none", label="Re-ranking", elem_id="rerank",
                              info="αQE: the query expanded with its first 5 hits. DBA: each indexed image "
                                   "blended with its 5 nearest. Both: the best on Corel-1k.")
            robust = gr.Checkbox(False, label="Also search turned (90°, 180°, 270°) and mirrored", elem_id="robust")
            regions = gr.Checkbox(False, label="Match crops: search the indexed images' regions", elem_id="regions",
                                  visible=engine.settings.regions)
            go = gr.Button("Search", variant="primary", elem_id="search")
        with gr.Column(scale=3):
            status = gr.Markdown(elem_id="status")
            with gr.Row(equal_height=False, elem_classes=["pair"]):
                per_model = [gallery(m.label, f"gallery-{m.name}") for m in engine.models.values()]
                fused = gallery(FUSED_LABELS[views.FUSED_MODE], "gallery-fused", visible=False)
            agreement = gr.Markdown(elem_id="agreement")
            with gr.Row(equal_height=False, elem_classes=["pair"], visible=False) as only_row:
                alone = [gallery(f"Found by {m.label} only", f"only-{m.name}") for m in engine.models.values()]
            with gr.Row():
                details = gr.Markdown(NO_SELECTION, elem_id="details")
                again = gr.Button("Search with the selected hit", elem_id="again", interactive=False)
            why = gr.Gallery(label="Why it matched: the regions that make up each model's similarity (red: most)",
                             columns=4, height="auto", object_fit="contain", preview=False, visible=False,
                             elem_id="why")
            with gr.Accordion("JSON (ids, paths, L2, cosine)", open=False):
                as_json = gr.JSON(open=True)
    examples = gr.Dataset(components=[query], samples=spread_examples(engine, shown), label="Examples from the index",
                          samples_per_page=EXAMPLES, elem_id="examples", type="values")
    startup_progress(demo, startup, examples, lambda: spread_examples(engine, shown))
    result_state, selected, alone_shown, why_shown = gr.State(None), gr.State(None), gr.State(False), gr.State(False)
    own_id = gr.Textbox(visible=False)  # the query's short id when it is indexed (for the link), else ""
    galleries = [*per_model, fused, *alone]  # in the order of views.LISTS
    outputs = [*galleries, agreement, details, as_json, status, result_state]
    inputs = [query, mode, k, rerank, robust, regions]
    # the progress shows in the status line only: an animated overlay on every gallery kept the browser
    # drawing frames the whole time the models ran (on a shared 2-core machine it slowed the search itself)
    each = {"concurrency_id": "search", "show_progress_on": [status], "show_progress": "minimal"}
    private = {"api_visibility": "private", **each}
    # `input` fires once for an upload, a paste, a webcam shot or a clear; `change` fired twice for
    # every new upload (two searches, two follow-ups). A query set by code (an example, a link, a
    # selected hit, a point on the map) is searched by a search chained after the event that set it.
    searches = [query.input(search, inputs, outputs, api_name="search", concurrency_limit=2,
                            trigger_mode="always_last", **each),
                go.click(search, inputs, outputs, **private),
                k.change(search, inputs, outputs, trigger_mode="always_last", **private),
                mode.change(show_mode, mode, [*per_model, fused]).then(search, inputs, outputs, **private),
                rerank.change(search, inputs, outputs, **private),
                robust.change(search, inputs, outputs, **private),
                regions.change(search, inputs, outputs, **private)]

    def search_after(event):
        """A search (and its follow-ups) once an event that sets the query is done."""
        follow_up(event.then(search, inputs, outputs, **private))

    def follow_up(done):  # then the link: the JS gets the query's short id, not the whole result
        done.then(after_search, [result_state, mode, selected, alone_shown, why_shown],
                  [*galleries, only_row, why, why_shown, selected, again, alone_shown, own_id],
                  api_visibility="private", show_progress="hidden", concurrency_id="selection").then(
            None, [query, own_id, mode, k, rerank], None, js=KEEP_IN_URL)

    for done in searches:
        follow_up(done)
    search_after(examples.click(lambda sample: sample[0], examples, query, api_visibility="private"))
    search_after(demo.load(restore, None, [query, mode, k, rerank], api_visibility="private"))
    search_after(again.click(search_selected, selected, query, api_visibility="private"))
    for position, component in enumerate(galleries):
        # one at a time with the follow-ups: a selection and a search's follow-up never interleave
        component.select(select(position), result_state, [details, selected, again], api_visibility="private",
                         concurrency_id="selection").then(
            explain_handler(engine, roots), [result_state, selected], [why, why_shown], api_visibility="private")
    return query, search_after


def explain_handler(engine: Engine, roots: list[Path]):
    """The selected hit's heatmaps: per model, the query and the hit with the regions that match."""
    def explain(state, chosen):
        """The heatmaps, and whether they are shown (a search hides them, also when they came late)."""
        if not state or chosen is None or chosen.made_on != state[3]:  # a selection an older search made
            return gr.Gallery(value=None, visible=False), False
        try:
            explained = engine.explain(state[0].query, chosen.path, chosen.sha256, roots)
        except ValueError as exc:  # DecodeError: the file is gone, changed or outside the roots
            gr.Warning(str(exc))
            return gr.Gallery(value=None, visible=False), False
        return gr.Gallery(value=views.explanation_gallery(explained), visible=True), True
    return explain


def startup_progress(demo: gr.Blocks, startup: StartupIndexing, examples: gr.Dataset, make_examples) -> None:
    """A line that follows the start-up indexing (a timer polls it, and every page load asks once) and,
    once it is over, new examples."""
    banner = gr.Markdown(views.startup_text(startup.done, startup.total, startup.finished.is_set(), startup.failure),
                         elem_id="startup")
    timer = gr.Timer(1.0, active=not startup.finished.is_set())

    def tick():
        finished = startup.finished.is_set()
        text = views.startup_text(startup.done, startup.total, finished, startup.failure)
        return text, gr.Timer(active=not finished), gr.Dataset(samples=make_examples()) if finished else gr.skip()

    timer.tick(tick, None, [banner, timer, examples], api_visibility="private", show_progress="hidden")
    demo.load(tick, None, [banner, timer, examples], api_visibility="private", show_progress="hidden")


def spread_examples(engine: Engine, shown: ShownFiles) -> list[list[str]]:
    """Up to EXAMPLES indexed images, one folder after another, so that they show the whole index."""
    rows = engine.sample_rows(EXAMPLES * 50)
    picked = []
    for row in views.round_robin(rows, key=lambda r: str(Path(r["path"]).parent)):
        if len(picked) == EXAMPLES:
            break
        if copy := shown.original(row["path"], row["sha256"]):
            picked.append([str(copy)])
    return picked


def evaluate_tab(engine: Engine, roots: list[Path], shown: ShownFiles) -> None:
    """A labelled folder (one subfolder per class) under the roots: every mode's scores, the plots, and
    the queries where the models disagree most."""
    def evaluate(folder: str | None, progress=gr.Progress(track_tqdm=True)):
        try:
            report = engine.evaluate(views.under_roots((folder or "").strip(), roots))
        except ValueError as exc:
            return views.error_text(str(exc)), None, None, None, None, None, {}
        labels = engine.labels(list(report.scores))
        rows = views.eval_table(report, labels)
        figures = plots.figures(report, labels)
        mosaic = plots.disagreement_mosaic(report, shown.thumbnails_by_path(report.shown_files()), labels)
        return (views.eval_summary(report), rows, figures["precision-at-k"],
                figures["ap-per-class"], figures.get("jaccard-at-10"), mosaic, report.to_json())

    gr.Markdown("Evaluate both models on a labelled folder on the server: one subfolder per class, e.g. "
                "`…/corel1k/{africa,beach,…}`. Every image queries all the others; an image of the same class "
                "counts as relevant. A second evaluation of the same files reuses their embeddings.")
    with gr.Row():
        folder = gr.Textbox(label="Labelled folder on the server", elem_id="eval-folder", scale=4)
        start = gr.Button("Evaluate", variant="primary", elem_id="evaluate", scale=1)
    summary = gr.Markdown(elem_id="eval-summary")
    table = gr.Dataframe(headers=views.eval_table_headers(), interactive=False, label="Scores", elem_id="eval-table",
                         max_height=720)
    with gr.Row():
        curve = gr.Plot(label="Precision at k", elem_id="eval-curve")
        jaccard = gr.Plot(label="Agreement per query", elem_id="eval-jaccard")
    per_class = gr.Plot(label="AP per class", elem_id="eval-classes")
    mosaic = gr.Image(label="Where they disagree most: the query, then each model's first 5 (green: same class)",
                      type="pil", interactive=False, elem_id="eval-disagreements")
    with gr.Accordion("JSON (everything above, as the CLI's eval --json prints it)", open=False):
        as_json = gr.JSON()
    start.click(evaluate, folder, [summary, table, curve, per_class, jaccard, mosaic, as_json], api_name="evaluate",
                concurrency_limit=1)


# The map's hover preview and click: a thumbnail (made on demand by the server, only for indexed files
# under the roots) and the path follow the pointer; a click selects the point, and the app searches with it.
MAP_JS = """
const tipOf = () => element.querySelector('.map-tip') || (() => {
  const tip = document.createElement('div'); tip.className = 'map-tip';
  tip.append(document.createElement('img'), document.createElement('div'));
  element.appendChild(tip); return tip; })();
element.addEventListener('mouseover', async (event) => {
  const point = event.target.closest('circle'); if (!point) return;
  const tip = tipOf(), box = element.getBoundingClientRect(), [img, caption] = tip.children;
  caption.textContent = point.dataset.p; img.removeAttribute('src'); tip.style.display = 'block';
  tip.style.left = Math.min(event.clientX - box.left + 12, box.width - 180) + 'px';
  tip.style.top = (event.clientY - box.top + 12) + 'px';
  const url = await server.thumbnail(point.dataset.p, point.dataset.s);
  if (url && caption.textContent === point.dataset.p) img.src = url;
});
element.addEventListener('mouseout', (event) => {
  if (event.target.closest('circle')) tipOf().style.display = 'none'; });
element.addEventListener('click', (event) => {
  const point = event.target.closest('circle');
  if (point) trigger('select', {index: 0, value: point.dataset.id});
});
"""


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


def robustness_tab(engine: Engine, query: QueryImage) -> None:
    """Edit the Search tab's query (turn, crop, recompress, recolour, caption it), search with the edit,
    and see where the original lands for each model and fused list, plain, robust and re-ranked."""
    def edit_and_search(image: str | None, kind: str, amount: float):
        if not image:
            return None, [], views.error_text("Search with a photo on the Search tab first: its edits are tried here.")
        try:
            original = read_raw(image)
            edited_bytes = apply_edit(engine.embedder.decode(original), kind, random.Random(0), amount)
            ranks = engine.where_it_lands(raw_from_bytes(edited_bytes, f"{kind} of {Path(image).name}"), original.id)
        except (ValueError, StoreUnavailableError) as exc:
            return None, [], views.error_text(str(exc))
        shown_edit = Path(tempfile.mkdtemp(prefix="edit-")) / "edited.jpg"
        shown_edit.write_bytes(edited_bytes)
        indexed = engine.row(original.id) is not None
        note = "" if indexed else " The query itself is not indexed, so it cannot land anywhere: index it first."
        return (str(shown_edit), views.robustness_rows(ranks, engine.labels()),
                f"Where the original lands after **{views.safe(kind)}**.{note}")

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
            edited = gr.Image(label="The edited photo", type="filepath", interactive=False, elem_id="edited")
        with gr.Column(scale=2):
            said = gr.Markdown(elem_id="robust-status")
            table = gr.Dataframe(headers=["list", *views.ROBUST_OPTIONS.values()], interactive=False,
                                 label="Rank of the original", elem_id="robust-table")
    kind.change(amount_for, kind, amount, api_visibility="private")
    start.click(edit_and_search, [query, kind, amount], [edited, table, said], api_name="robustness",
                concurrency_id="search")


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
        full_list = Path(tempfile.mkdtemp(prefix="index-failures-")) / "index-failures.tsv" if failed else None
        if full_list:
            full_list.write_text(failed)
        if not messages:
            messages.append("Give a folder under the allowed roots, or upload images.")
        return "\n\n".join(messages), str(full_list) if full_list else None, stats()

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
    start.click(index, [folder, files], [summary, failures, table], api_name="index", concurrency_limit=1).then(
        lambda: None, None, files, api_visibility="private")
    gr.Button("Refresh", size="sm").click(stats, None, table, api_name="stats")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, help="a folder to index before serving")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="fp32, or int8 (about 3x faster on CPU); default: SEARCHCORE_PRECISION, else fp32")
    args = parser.parse_args()
    configure_logging()
    settings = Settings.from_env(**({"precision": args.precision} if args.precision else {}))
    build_models(settings.model_dir, MODEL_NAMES, precisions=(settings.precision,))
    images = args.images.expanduser().resolve() if args.images else None
    engine = Engine(settings)
    startup = StartupIndexing(engine, images)
    roots = index_roots(settings, images)
    demo, shown = build_ui(engine, roots, startup)
    startup.start()  # after build_ui: Gradio patches tqdm there, and a bar made before the patch breaks under it
    demo.queue(max_size=64, default_concurrency_limit=1)
    # Only the folder of shown copies is served: never a root itself (it may hold other files).
    demo.launch(server_name=args.host, server_port=args.port, share=False, allowed_paths=[str(shown.folder)],
                max_file_size=MAX_UPLOAD_BYTES, show_error=True, css=CSS, theme=THEME)


if __name__ == "__main__":
    main()
