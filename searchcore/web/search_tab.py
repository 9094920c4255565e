"""The Search tab: query, mode and k; each model's hits rank by rank, the hits only one model found, the
details and why the selected hit matched. SearchPage holds the handlers (testable without a page): each
returns its values keyed by the name of the component they go to (a gallery by its place in
views.LISTS); layout() makes the components and wire() connects them by those names."""
from __future__ import annotations

import functools
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import gradio as gr

from ..engine import MAX_TOGETHER, Engine
from ..files.decode import content_id
from ..files.shown import ShownFiles
from ..retrieval.batcher import MAX_BATCH
from ..retrieval.fusion import FUSED
from ..retrieval.lists import OnlyIn
from ..retrieval.options import Intent, SearchOptions
from ..retrieval.search import QueryResult
from ..retrieval.rerank import RERANKS
from ..storage.store import StoreUnavailableError
from .assets import HEAT_SCALE, KEEP_IN_URL, MARK_LOADED, SHOW_RESULTS_ON_PHONE
from .startup import StartupIndexing, startup_progress
from .upload import QueryImage
from . import views

log = logging.getLogger("searchcore.app")
EXAMPLES = 8
INTENTS = tuple(i.value for i in Intent)
# A first visit looks for photos like the one it drops in: its photo is new to the index, so there is no
# copy of it to find (scripts/intents.py measures both intents on both tasks)
DEFAULT_INTENT = Intent.SIMILAR
NO_SELECTION = "Select a hit to see its details."
FUSED_LABELS = {views.FUSED_MODE: "Fused (mean cosine of the models, over their top 50)",
                views.FUSED_RRF_MODE: "Fused (reciprocal rank fusion of the models' top 50)"}
Values = dict[Any, Any]  # component name (a str, or a gallery's place in views.LISTS) -> its value


class SearchPage:
    """The Search tab's handlers over one engine, the files it may show and the allowed roots. A search's
    state is (result, shown images, the lists shown, a token naming this search)."""

    def __init__(self, engine: Engine, shown: ShownFiles, roots: list[Path]) -> None:
        self.engine, self.shown, self.roots = engine, shown, roots
        self.public = engine.settings.public

    def search(self, image: str | None, mode: str, k: int, rerank: str = "none", robust: bool = False,
               regions: bool = False, within: str | None = None) -> Values:
        """The galleries (plain values: update objects made Gradio rebuild configs and API schemas on
        every search), the agreement, the details, the JSON, the status line and the state. `within`
        names an indexed folder as the page shows it (views.folder_choices), never a server path."""
        if not image:
            return self.empty_results("Drop a photo in to search.")
        # None from an older client that does not send the last ones
        return self._shown(mode, lambda: SearchOptions(views.check_k(k), rerank or "none", bool(robust),
                                                       bool(regions), self.folder(within)),
                           # with others' searches of this moment
                           lambda options, models: self.engine.search_file(image, options, models))

    def search_together(self, photos: list | None, mode: str, k: int, rerank: str = "none",
                        within: str | None = None) -> Values:
        """2 to MAX_TOGETHER photos (the gallery's (path, caption) items) searched as one query: more like
        these (Engine.search_together); shown as a search is."""
        paths = [item[0] if isinstance(item, (list, tuple)) else item for item in photos or []]
        if not 2 <= len(paths) <= MAX_TOGETHER:
            return self.empty_results(f"Add 2 to {MAX_TOGETHER} photos to search with them together "
                                      f"({len(paths)} given).")
        return self._shown(mode, lambda: SearchOptions(views.check_k(k), rerank or "none", under=self.folder(within)),
                           lambda options, models: self.engine.search_together(paths, options, models))

    def _shown(self, mode: str, options: Callable[[], SearchOptions],
               run: Callable[[SearchOptions, tuple[str, ...]], QueryResult]) -> Values:
        """A search's values: `options` made and `run` with them and the mode's models; a bad option or an
        unreachable Milvus is said in the status line."""
        started = time.perf_counter()
        try:
            models = views.check_mode(mode)
            result = run(options(), models)
        except (ValueError, StoreUnavailableError) as exc:
            return self.empty_results(views.error_text(str(exc)))
        log.info("searched with %s in %.0f ms", Path(result.query).name, 1000 * (time.perf_counter() - started))
        images = self.shown.thumbnails([h for hits in result.hits.values() for h in hits] + result.fused + result.rrf)
        lists = views.shown_lists(mode)
        return {**{place: views.gallery(result, name, images) for place, name in zip(views.LISTS, lists)},
                "agreement": views.agreement_text(result), "details": NO_SELECTION,
                "as_json": views.for_public(result.to_json()) if self.public else result.to_json(),
                "status": views.status_text(result, images), "result": (result, images, lists, uuid.uuid4().hex)}

    def search_new(self, state, image: str | None, *options) -> Values:
        """The search of a query set by code (an example, a selected hit, a map point): nothing when that
        query is the one already shown."""
        if (state[0].query if state else None) == (image or None):
            return {}
        return self.search(image, *options)

    def search_restored(self, restored: bool, image: str | None, *options) -> Values:
        """The search of what restore() set (a link's query, or the first example); nothing when it set
        no query (an empty index). Under load a search with no query came after the user's own first
        upload and wiped its result."""
        return self.search(image, *options) if restored else {}

    @staticmethod
    def empty_results(status: str) -> Values:
        return {**{place: [] for place in views.LISTS}, "agreement": "", "details": NO_SELECTION, "as_json": {},
                "status": status, "result": None}

    @staticmethod
    def after_search(state, mode: str, chosen, alone_was: bool, why_was: bool) -> Values:
        """After a new result: a selection made on an older one is forgotten, its panel closed (it would
        show another image of the new list), its heatmaps hidden and "Search with the selected hit"
        disabled; a selection already made on this result stays. The row of hits found by one model only
        shows when there are such hits and the lists share at least one. Last, the query's short id for the
        link ("" if not indexed)."""
        result, token = (state[0], state[3]) if state else (None, None)
        # with no hit shared, "found by one only" would repeat both lists whole: the row stays hidden
        shares = bool(result) and any(a.shared for a in result.agreement.values())
        alone = shares and mode == views.SIDE_BY_SIDE and any(result.ranked(OnlyIn(m)) for m in result.hits)
        stale = chosen is not None and chosen.made_on != token
        current = chosen is not None and not stale
        own = next((h.sha256[:16] for hits in result.hits.values() for h in hits if result.is_self(h)), "") \
            if result else ""
        values: Values = {"alone_shown": alone, "own_id": own}
        if stale:
            values |= {place: gr.Gallery(selected_index=None) for place in views.LISTS}
            values |= {"selected": None, "again": gr.Button(interactive=False), "selection": gr.Column(visible=False)}
        if alone != alone_was:
            values["only_row"] = gr.Row(visible=alone)
        if stale or (why_was and not current):
            values["why"] = gr.Gallery(value=None, visible=False)
        if not current:
            values["why_shown"] = False
        return values

    def show_mode(self, mode: str) -> Values:
        models = views.MODES.get(mode, ())
        columns = 2 if len(models) > 1 else 4
        fused_mode = views.is_fused(mode)
        return {**{name: gr.update(visible=not fused_mode and name in models, columns=columns)
                   for name in self.engine.models},
                FUSED: gr.update(visible=fused_mode, label=FUSED_LABELS.get(mode))}

    def select(self, position: int) -> Callable:
        """The handler of the gallery at this place of views.LISTS: the details of the clicked hit."""
        def handler(state, evt: gr.SelectData) -> Values:
            if state is None or state[0].error:
                return {"details": NO_SELECTION, "selected": None, "again": gr.Button(interactive=False)}
            result, images, lists, token = state
            shown = views.gallery(result, lists[position], images)
            clicked = evt.value.get("caption") if isinstance(evt.value, dict) else None
            if not 0 <= evt.index < len(shown) or clicked != shown[evt.index][1]:
                return {}  # a click on an older result's list: not this result's hit
            _, hit = views.shown_hits(result, lists[position], images)[evt.index]
            try:
                chosen = views.hit_details(hit, self.engine.hit_scores(result, hit), made_on=token,
                                           public=self.public)
            except StoreUnavailableError as exc:  # said in the panel, which opens for it
                return {"details": views.error_text(str(exc)), "selected": None, "again": gr.Button(interactive=False),
                        "selection": gr.Column(visible=True)}
            return {"details": chosen.text, "selected": chosen, "again": gr.Button(interactive=True),
                    "selection": gr.Column(visible=True)}
        return handler

    def restore(self, request: gr.Request) -> Values:
        """The search a link names (?q=…&mode=…&k=…): Back, Reload and a shared link show it again. A page
        opened with no link shows a first comparison at once: the first example's."""
        params = request.query_params if request else {}
        path, named = None, params.get("q", "")
        if len(named) == 16 and all(c in "0123456789abcdef" for c in named):
            try:
                row = self.engine.row(content_id(named))
            except StoreUnavailableError as exc:  # the page still loads; a search will say what is wrong
                log.warning("%s", exc)
                row = None
            path = row and self.shown.original(row["path"], row["sha256"])
        if not path and "q" not in params:
            examples = self.examples()
            path = examples[0][0] if examples else None
        values: Values = {"query": str(path), "restored": True} if path else {"restored": False}
        if params.get("mode") in views.MODES:
            values["mode"] = params["mode"]
        k = params.get("k", "")
        if k.isascii() and k.isdigit() and 1 <= int(k) <= 50:  # "²" is a digit to isdigit, not to int
            values["k"] = int(k)
        try:
            labels = list(self.folder_choices())
        except StoreUnavailableError as exc:  # the page still loads, with all photos to search
            log.warning("%s", exc)
            labels = []
        values["within"] = gr.Dropdown(choices=[views.ALL_FOLDERS, *labels], value=views.ALL_FOLDERS)
        return values | self._restored_options(params)

    def _restored_options(self, params: Mapping[str, str]) -> Values:
        """The intent a link names (i=…), else its re-ranking (r=…, none if absent); a bare address gets
        DEFAULT_INTENT."""
        intent = params.get("i") if params.get("i") in INTENTS else None
        if intent is None and "mode" not in params and "q" not in params:
            intent = DEFAULT_INTENT.value
        if intent:
            return {"intent": intent, **self.choose_intent(intent)}
        rerank = params["r"] if params.get("r") in RERANKS else "none"
        return {"rerank": rerank, "robust": False, "regions": False, **self.intent_of(rerank, False, False)}

    def folder(self, label: str | None) -> str | None:
        """The indexed folder a label of the folder choice names (None: all of them), or a ValueError."""
        if not label or label == views.ALL_FOLDERS:
            return None
        folder = self.folder_choices().get(label)
        if folder is None:
            raise ValueError(f"no indexed folder is called {label!r}")
        return folder

    def folder_choices(self) -> dict[str, str]:
        """Label -> folder of every indexed folder under the roots or the uploads (views.folder_choices)."""
        return views.folder_choices(self.engine.folders(), [*self.roots, self.engine.settings.home / "uploads"])

    def choose_intent(self, intent: str | None) -> Values:
        """The options of the chosen intent, set in Advanced (the search follows)."""
        if intent not in INTENTS:
            return {}
        options = Intent(intent).options(1, self.engine.settings.regions)
        return {"rerank": options.rerank.value, "robust": options.robust, "regions": options.regions}

    def intent_of(self, rerank: str | None, robust: bool, regions: bool) -> Values:
        """The intent whose options Advanced now holds, or none selected for another combination."""
        try:
            options = SearchOptions(1, rerank or "none", bool(robust), bool(regions))
        except ValueError:  # regions with re-ranking: the search says why
            return {"intent": None}
        intent = Intent.of(options, self.engine.settings.regions)
        return {"intent": intent.value if intent else None}

    def search_selected(self, chosen) -> Values:
        copy = chosen and self.shown.original(chosen.path, chosen.sha256)
        return {"query": str(copy)} if copy else {}

    def explain(self, state, chosen) -> Values:
        """The selected hit's heatmaps (per model, the query and the hit with the regions that match), and
        whether they are shown (a search hides them, also when they came late)."""
        hidden = {"why": gr.Gallery(value=None, visible=False), "why_shown": False}
        if not state or chosen is None or chosen.made_on != state[3]:  # a selection an older search made
            return hidden
        try:
            explained = self.engine.explain(state[0].query, chosen.path, chosen.sha256, self.roots)
        except ValueError as exc:  # DecodeError: the file is gone, changed or outside the roots
            gr.Warning(str(exc))
            return hidden
        return {"why": gr.Gallery(value=views.explanation_gallery(explained), visible=True), "why_shown": True}

    def examples(self) -> list[list[str]]:
        """Up to EXAMPLES indexed images, one folder after another, so that they show the whole index
        (none while Milvus does not answer: the page still loads)."""
        try:
            rows = self.engine.sample_rows(EXAMPLES * 50)
        except StoreUnavailableError as exc:
            log.warning("%s", exc)
            return []
        picked = []
        for row in views.round_robin(rows, key=lambda r: str(Path(r["path"]).parent)):
            if len(picked) == EXAMPLES:
                break
            if copy := self.shown.original(row["path"], row["sha256"]):
                picked.append([str(copy)])
        return picked


class Examples(gr.Dataset):
    """The examples; a click's index that names no example (a crafted request) selects nothing."""

    def get_block_name(self) -> str:
        return "dataset"

    def preprocess(self, payload: int | None):
        if not isinstance(payload, int) or not 0 <= payload < len(self.raw_samples):
            return None
        return super().preprocess(payload)


def gallery(label: str, elem_id: str, visible: bool = True) -> gr.Gallery:
    """A list of hits; columns stay as set (no fitting to fewer images), so that the same place is the same rank."""
    return gr.Gallery(label=label, columns=2, fit_columns=False, height="auto", object_fit="cover", preview=False,
                      allow_preview=False, visible=visible, elem_id=elem_id, elem_classes=["ranked"])


@dataclass
class SearchComponents:
    query: QueryImage
    mode: gr.Radio
    k: gr.Slider
    intent: gr.Radio
    within: gr.Dropdown
    rerank: gr.Radio
    together: gr.Gallery
    together_go: gr.Button
    robust: gr.Checkbox
    regions: gr.Checkbox
    go: gr.Button
    status: gr.Markdown
    per_model: list[gr.Gallery]
    fused: gr.Gallery
    agreement: gr.Markdown
    only_row: gr.Row
    alone: list[gr.Gallery]
    selection: gr.Column
    details: gr.Markdown
    again: gr.Button
    close: gr.Button
    why: gr.Gallery
    as_json: gr.JSON

    @property
    def galleries(self) -> list[gr.Gallery]:
        return [*self.per_model, self.fused, *self.alone]  # in the order of views.LISTS

    def named(self) -> dict[Any, gr.components.Component]:
        """Every component a handler may set, by the name its values carry."""
        fields = ("query", "mode", "k", "intent", "within", "rerank", "robust", "regions", "agreement", "only_row",
                  "selection", "details", "again", "why", "as_json", "status")
        return {**dict(zip(views.LISTS, self.galleries)), **{name: getattr(self, name) for name in fields}}


def layout(engine: Engine, samples: list[list[str]], startup: StartupIndexing
           ) -> tuple[SearchComponents, gr.Markdown, Examples]:
    """The start-up line on top; the query and the examples beside it, then the controls, on the left; on
    the right the status, the lists, the agreement, the hits only one model found, the selected hit's
    details and heatmaps, and the JSON (on a phone: the query, the examples, the results, the controls).
    Returns the components, the start-up line and the examples."""
    banner = gr.Markdown(startup.line(), elem_id="startup")
    with gr.Row(elem_id="search-row"):
        with gr.Column(scale=1, min_width=280, elem_id="search-side"):
            query = QueryImage(type="filepath", label="Query image", sources=["upload", "clipboard", "webcam"],
                               elem_id="query", height=240)
            examples = Examples(components=[query], samples=samples, label="Or one of these from the index",
                                samples_per_page=EXAMPLES, elem_id="examples", type="values")
            with gr.Column(elem_id="search-controls"):  # on a phone, below the results
                mode = gr.Radio(list(views.MODES), value="Side by side", label="Models", elem_id="mode")
                k = gr.Slider(1, 50, value=8, step=1, label="Top k", elem_id="topk")
                intent = gr.Radio([(i.label, i.value) for i in Intent], value=None, label="Looking for",
                                  elem_id="intent", info=views.intent_info(engine.settings.regions))
                within = gr.Dropdown([views.ALL_FOLDERS], value=views.ALL_FOLDERS, label="Search within",
                                     elem_id="within", allow_custom_value=True,  # choices come with the page
                                     info="Only the photos indexed under this folder: exactly its nearest.")
                with gr.Accordion("Advanced: the options an intent sets", open=False, elem_id="advanced"):
                    rerank = gr.Radio(views.RERANK_CHOICES, value="none", label="Re-ranking", elem_id="rerank",
                                      info="αQE: the query expanded with its first 5 hits. DBA: each indexed "
                                           "image blended with its 5 nearest. Both: the best on Corel-1k.")
                    robust = gr.Checkbox(False, label="Also search turned (90°, 180°, 270°) and mirrored",
                                         elem_id="robust", info=views.robust_cost(engine.settings.turns))
                    regions = gr.Checkbox(False, label="Match crops: search the indexed images' regions",
                                          elem_id="regions", visible=engine.settings.regions)
                go = gr.Button("Search", variant="primary", elem_id="search")
                together = gr.Gallery(label=f"More like these: 2 to {MAX_TOGETHER} photos", type="filepath",
                                      interactive=True, columns=MAX_TOGETHER, height=150, object_fit="contain",
                                      file_types=["image"], elem_id="together")
                together_go = gr.Button("Search with these together", elem_id="together-go", size="sm")
        with gr.Column(scale=3, elem_id="search-results"):
            status = gr.Markdown(elem_id="status")
            with gr.Row(equal_height=False, elem_classes=["pair"]):
                per_model = [gallery(m.label, f"gallery-{m.name}") for m in engine.models.values()]
                fused = gallery(FUSED_LABELS[views.FUSED_MODE], "gallery-fused", visible=False)
            agreement = gr.Markdown(elem_id="agreement")
            with gr.Row(equal_height=False, elem_classes=["pair"], visible=False) as only_row:
                alone = [gallery(f"Found by {m.label} only", f"only-{m.name}") for m in engine.models.values()]
            # the selected hit in a panel over the page's corner: both lists stay in view beside it
            with gr.Column(elem_id="selection", visible=False) as selection:
                with gr.Row(equal_height=False):
                    details = gr.Markdown(NO_SELECTION, elem_id="details")
                    with gr.Column(scale=0, min_width=170):
                        again = gr.Button("Search with the selected hit", elem_id="again", interactive=False)
                        close = gr.Button("Close", elem_id="close-selection", size="sm")
                why = gr.Gallery(label="Why it matched: the regions that make up each model's similarity",
                                 columns=4, height="auto", object_fit="contain", preview=False, visible=False,
                                 elem_id="why")
                gr.HTML(HEAT_SCALE, elem_id="heat-scale")
            with gr.Accordion("JSON (ids, paths, L2, cosine)", open=False):
                as_json = gr.JSON(open=True)
    return SearchComponents(query, mode, k, intent, within, rerank, together, together_go, robust, regions, go, status,
                            per_model, fused, agreement, only_row, alone, selection, details, again, close, why,
                            as_json), banner, examples


def search_tab(demo: gr.Blocks, page: SearchPage, startup: StartupIndexing) -> tuple[QueryImage, Callable]:
    """The tab, wired. Returns the query component, and search_after(event), which searches once an event
    of another tab has set the query."""
    c, banner, examples = layout(page.engine, page.examples(), startup)
    startup_progress(demo, startup, banner, examples, page.examples)
    search_after = wire(demo, page, c)
    search_after(examples.click(lambda sample: sample[0] if sample else gr.skip(), examples, c.query,
                                api_visibility="private"))
    return c.query, search_after


def keyed(handler: Callable[..., Values], names: Sequence) -> Callable:
    """The handler as Gradio calls it: its values in the order of `names` (its outputs), a name it leaves
    out kept as it is (gr.skip). functools.wraps keeps the signature Gradio reads (SelectData, Request)."""
    @functools.wraps(handler)
    def run(*args, **kwargs):
        values = handler(*args, **kwargs)
        ordered = tuple(values.get(name, gr.skip()) for name in names)
        return ordered[0] if len(ordered) == 1 else ordered
    return run


def wire(demo: gr.Blocks, page: SearchPage, c: SearchComponents) -> Callable:
    """Every event of the tab. The query searches on `input` (once per upload, paste, webcam shot or clear;
    `change` fired twice per new upload); a query set by code (an example, a link, a selected hit, a point
    on the map) is searched by a search chained after the event that set it (search_after). Progress shows
    in the status line only: an animated overlay on every gallery kept the browser drawing frames while
    the models ran on the same cores."""
    named = {**c.named(), "result": gr.State(None), "selected": gr.State(None), "alone_shown": gr.State(False),
             "why_shown": gr.State(False), "restored": gr.State(False),
             "own_id": gr.Textbox(visible=False)}  # the query's short id when it is indexed (for the link), else ""

    def event(handler: Callable[..., Values], names: Sequence) -> dict:
        """The fn and outputs of an event whose handler returns values by name."""
        return {"fn": keyed(handler, names), "outputs": [named[n] for n in names]}

    shown = [*views.LISTS, "agreement", "details", "as_json", "status", "result"]
    found = event(page.search, shown)
    inputs = [c.query, c.mode, c.k, c.rerank, c.robust, c.regions, c.within]
    # every event of the group takes the batch's limit: Gradio gives a group the lowest limit of its events
    each = {"concurrency_id": "search", "concurrency_limit": MAX_BATCH, "show_progress_on": [c.status],
            "show_progress": "minimal"}
    private = {"api_visibility": "private", **each}
    quick = {"api_visibility": "private", "show_progress": "hidden", "concurrency_id": "selection"}
    # as many at once as a batch holds: concurrent searches are embedded and searched together
    searches = [c.query.input(inputs=inputs, api_name="search", trigger_mode="always_last", **found, **each),
                c.go.click(inputs=inputs, **found, **private),
                c.k.change(inputs=inputs, trigger_mode="always_last", **found, **private),
                c.within.input(inputs=inputs, **found, **private),
                c.together_go.click(inputs=[c.together, c.mode, c.k, c.rerank, c.within],
                                    **event(page.search_together, shown), api_name="search_together", **each),
                c.mode.change(inputs=c.mode, **event(page.show_mode, [*page.engine.models, FUSED])).then(
                    inputs=inputs, **found, **private),
                # an intent sets the options, then one search runs; an option set by hand names its intent
                c.intent.input(inputs=c.intent, **event(page.choose_intent, ["rerank", "robust", "regions"]),
                               **quick).then(inputs=inputs, **found, **private),
                *(option.input(inputs=[c.rerank, c.robust, c.regions], **event(page.intent_of, ["intent"]),
                               **quick).then(inputs=inputs, **found, **private)
                  for option in (c.rerank, c.robust, c.regions))]
    after = event(page.after_search, [*views.LISTS, "only_row", "why", "why_shown", "selected", "again",
                                      "selection", "alone_shown", "own_id"])
    c.close.click(lambda: gr.Column(visible=False), None, c.selection, api_visibility="private",
                  show_progress="hidden")

    def follow_up(done):  # then the link: the JS gets the query's short id, not the whole result
        return done.then(inputs=[named[n] for n in ("result", "mode", "selected", "alone_shown", "why_shown")],
                         **after, api_visibility="private", show_progress="hidden", concurrency_id="selection").then(
            None, [c.query, named["own_id"], c.mode, c.k, c.intent, c.rerank], None, js=KEEP_IN_URL)

    def search_after(event_done):
        """A search (and its follow-ups) once an event that sets the query is done, if it set a new one."""
        follow_up(event_done.then(inputs=[named["result"], *inputs], **event(page.search_new, shown), **private))

    follow_up(searches[0]).then(None, None, None, js=SHOW_RESULTS_ON_PHONE)  # an upload, a paste, a shot
    for done in searches[1:]:
        follow_up(done)
    restored = demo.load(**event(page.restore, ["query", "mode", "k", "intent", "rerank", "robust", "regions",
                                                "within", "restored"]), api_visibility="private")
    follow_up(restored.then(inputs=[named["restored"], *inputs], **event(page.search_restored, shown), **private)
              ).then(None, None, None, js=MARK_LOADED)
    search_after(c.again.click(inputs=named["selected"], **event(page.search_selected, ["query"]),
                               api_visibility="private"))
    chosen = event(page.explain, ["why", "why_shown"])
    for position, place in enumerate(views.LISTS):
        # one at a time with the follow-ups: a selection and a search's follow-up never interleave
        # the heatmaps too: a search's follow-up queued behind them hides heatmaps that came after it
        named[place].select(inputs=named["result"],
                            **event(page.select(position), ["details", "selected", "again", "selection"]),
                            api_visibility="private", concurrency_id="selection").then(
            inputs=[named["result"], named["selected"]], **chosen, api_visibility="private",
            concurrency_id="selection")
    return search_after
