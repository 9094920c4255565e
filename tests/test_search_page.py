"""The Search tab's handlers on a real engine, with no page: each returns its values by component name,
and keyed() puts them in the order of an event's outputs, leaving out names as they are."""
from __future__ import annotations

import inspect
from dataclasses import replace
from types import SimpleNamespace
from pathlib import Path

import gradio as gr

from searchcore.files.decode import read_raw
from searchcore.files.shown import ShownFiles
from searchcore.retrieval.compare import agreement
from searchcore.retrieval.fusion import FUSED
from searchcore.retrieval.lists import OnlyIn
from searchcore.storage.store import StoreUnavailableError
from searchcore.web import views
from searchcore.web.search_tab import SearchPage, keyed


def page_over(engine, photos: Path, tmp_path: Path) -> SearchPage:
    engine.index([photos])
    shown = ShownFiles(tmp_path / "shown", [photos], engine.settings.max_pixels, engine.thumbnails)
    return SearchPage(engine, shown, [photos])


def test_a_search_returns_each_list_by_its_place_and_the_rest_by_name(engine, photo_dir, tmp_path):
    page = page_over(engine, photo_dir, tmp_path)
    query = next(photo_dir.glob("*.jpg"))
    values = page.search(str(query), views.SIDE_BY_SIDE, 3)
    result, images, lists, token = values["result"]
    assert set(values) == {*views.LISTS, "agreement", "details", "as_json", "status", "result"}
    for model in engine.models:
        assert values[model] == views.gallery(result, model, images) and len(values[model]) == 3
        assert values[model][0][1].startswith("#1 ") and f"/{query.name} · " in values[model][0][1]  # itself first
        assert values[OnlyIn(model)] == views.gallery(result, OnlyIn(model), images)
    assert values[FUSED] and values["as_json"]["query"] == str(query)

    rrf = page.search(str(query), views.FUSED_RRF_MODE, 3)
    assert rrf[FUSED] == views.gallery(rrf["result"][0], views.RRF, rrf["result"][1])  # the RRF list, in the fused place

    refused = page.search(str(query), "Nearest", 3)
    assert refused["result"] is None and "mode must be one of" in refused["status"]
    assert all(refused[place] == [] for place in views.LISTS)


def test_after_a_search_an_older_selection_is_forgotten_and_a_current_one_kept(engine, photo_dir, tmp_path):
    page = page_over(engine, photo_dir, tmp_path)
    state = page.search(str(next(photo_dir.glob("*.jpg"))), views.SIDE_BY_SIDE, 3)["result"]
    older = views.Selection(1, "/x.jpg", "0" * 64, "", made_on="an older search")
    forgotten = page.after_search(state, views.SIDE_BY_SIDE, older, alone_was=False, why_was=True)
    assert forgotten["selected"] is None and forgotten["why_shown"] is False and "again" in forgotten
    assert all(place in forgotten for place in views.LISTS)
    current = views.Selection(1, "/x.jpg", "0" * 64, "", made_on=state[3])
    kept = page.after_search(state, views.SIDE_BY_SIDE, current, alone_was=False, why_was=True)
    assert "selected" not in kept and "why" not in kept and "why_shown" not in kept


def test_keyed_orders_values_by_the_outputs_and_skips_the_names_left_out():
    def handler(a: int, evt: gr.SelectData) -> dict:
        return {"b": a, FUSED: a + 1}
    run = keyed(handler, ["a", FUSED, "b"])
    assert run(1, None) == (gr.skip(), 2, 1)
    assert keyed(lambda: {"q": 5}, ["q"])() == 5  # one output: the value itself
    assert "evt" in inspect.signature(run).parameters  # Gradio still sees SelectData


def test_a_query_set_by_code_is_searched_only_when_it_is_new(engine, photo_dir, tmp_path):
    """A page loaded without a link chained a search after its restore step; under load it came after the
    user's first upload had been searched, searched again (or with no query, and wiped the result), and
    replaced the result a hit had just been selected on: CI saw the selection's preview and heatmaps go."""
    page = page_over(engine, photo_dir, tmp_path)
    first, second = sorted(photo_dir.glob("*.jpg"))[:2]
    shown = page.search(str(first), views.SIDE_BY_SIDE, 3)["result"]
    assert page.search_restored(False, str(first), views.SIDE_BY_SIDE, 3) == {}  # no link: nothing
    assert page.search_restored(False, None, views.SIDE_BY_SIDE, 3) == {}
    assert page.search_restored(True, str(second), views.SIDE_BY_SIDE, 3)["result"][0].query == str(second)
    assert page.search_new(shown, str(first), views.SIDE_BY_SIDE, 3) == {}  # already shown: nothing changes
    again = page.search_new(shown, str(second), views.SIDE_BY_SIDE, 3)
    assert again["result"][0].query == str(second) and again["resnet50"]


def test_a_link_with_an_odd_k_keeps_the_rest_of_the_link(engine, photo_dir, tmp_path):
    page = page_over(engine, photo_dir, tmp_path)
    photo = sorted(photo_dir.glob("*.jpg"))[0]
    named = read_raw(photo).sha256[:16]
    for odd in ("²", "0", "51", "-3", "８", ""):  # before: int("²") raised, and the whole link was lost
        link = SimpleNamespace(query_params={"q": named, "k": odd, "mode": views.FUSED_MODE, "r": "dba"})
        values = page.restore(link)
        assert "k" not in values and values["mode"] == views.FUSED_MODE and values["rerank"] == "dba", odd
        assert values["restored"]
        assert Path(values["query"]).read_bytes() == photo.read_bytes()
    opened = page.restore(SimpleNamespace(query_params={"k": "12"}))  # no link: the first example, searched
    assert opened["k"] == 12 and opened["restored"] and opened["query"] == page.examples()[0][0]


def test_a_bare_address_looks_for_similar_photos_and_a_link_keeps_its_intent(engine, photo_dir, tmp_path):
    """A first visit gets the similar-photos intent; a link names its intent (i=…), or its re-ranking as
    links did before intents (plain when it names none); options set by hand name their intent, or none."""
    page = page_over(engine, photo_dir, tmp_path)
    named = read_raw(sorted(photo_dir.glob("*.jpg"))[0]).sha256[:16]
    opened = page.restore(SimpleNamespace(query_params={}))
    assert [opened[name] for name in ("restored", "intent", "rerank", "robust", "regions")] == [
        True, "similar", "dba+qe", False, False]
    same = page.restore(SimpleNamespace(query_params={"q": named, "mode": views.SIDE_BY_SIDE, "i": "same"}))
    assert (same["intent"], same["rerank"], same["robust"], same["regions"]) == ("same", "none", True, False)
    older = page.restore(SimpleNamespace(query_params={"q": named, "mode": views.SIDE_BY_SIDE}))
    assert (older["intent"], older["rerank"], older["robust"]) == (None, "none", False)
    odd = page.restore(SimpleNamespace(query_params={"q": named, "mode": views.SIDE_BY_SIDE, "i": "<b>"}))
    assert odd["intent"] is None and odd["rerank"] == "none"
    assert page.choose_intent("similar") == {"rerank": "dba+qe", "robust": False, "regions": False}
    assert page.choose_intent(None) == {}
    assert page.intent_of("none", True, False) == {"intent": "same"}
    assert page.intent_of("qe", False, False) == {"intent": None}
    assert page.intent_of("dba+qe", False, True) == {"intent": None}  # regions with re-ranking: the search says why


def test_a_search_within_a_folder_finds_exactly_its_nearest_and_names_no_server_path(engine, photo_dir, tmp_path):
    """The page offers each indexed folder by its name under its root; a search within one gives that
    folder's nearest, as the engine's exact filter does; a name that is no indexed folder is refused."""
    page = page_over(engine, photo_dir, tmp_path)
    assert page.folder_choices() == {"photos": str(photo_dir), "photos/nested": str(photo_dir / "nested")}
    query = str(photo_dir / "coffee.jpg")
    shown = page.search(query, views.SIDE_BY_SIDE, 3, "none", False, False, "photos/nested")["result"][0]
    nested = [read_raw(p).id for p in (photo_dir / "nested").glob("*.jpg")]
    for model, hits in shown.hits.items():  # brute force over the folder's stored vectors
        stored = engine.models[model].store.vectors(nested)
        nearest = sorted(stored, key=lambda i: -float(stored[i] @ shown.vectors[model]))[:3]
        assert [h.id for h in hits] == nearest
    assert all(Path(h.path).parent == photo_dir / "nested" for hits in shown.hits.values() for h in hits)
    everywhere = page.search(query, views.SIDE_BY_SIDE, 3, "none", False, False, views.ALL_FOLDERS)["result"][0]
    assert everywhere.hits["resnet50"][0].path == query  # itself, outside that folder
    refused = page.search(query, views.SIDE_BY_SIDE, 3, "none", False, False, "/etc")
    assert refused["result"] is None and "no indexed folder is called '/etc'" in refused["status"]


def test_several_photos_that_fail_are_named_by_their_names_only(engine, photo_dir, tmp_path):
    """The error of a photo searched with others named its temp path: the page strips only the query's
    path, and that query is the photos' names."""
    page = page_over(engine, photo_dir, tmp_path)
    upload = tmp_path / "gradio-temp" / "notes.jpg"
    upload.parent.mkdir()
    upload.write_bytes(b"not a photo at all")
    good = str(photo_dir / "coffee.jpg")
    for photos in ([good, str(upload)], [good, str(tmp_path / "gone.jpg")]):
        status = page.search_together([(p, None) for p in photos], views.SIDE_BY_SIDE, 3)["status"]
        assert str(tmp_path) not in status and Path(photos[1]).name in status, status
    found = page.search_together([(good, None), (str(photo_dir / "nested" / "chelsea.jpg"), None)],
                                 views.SIDE_BY_SIDE, 3)["result"][0]
    assert found.query == "coffee.jpg + chelsea.jpg" and len(found.hits["resnet50"]) == 3


def test_the_page_loads_with_every_photo_to_search_while_milvus_does_not_answer(engine, photo_dir, tmp_path,
                                                                              monkeypatch):
    """The folder choice read the index at each page load, and a Milvus that did not answer broke the load."""
    page = page_over(engine, photo_dir, tmp_path)

    def unavailable():
        raise StoreUnavailableError("Milvus at x did not answer")
    monkeypatch.setattr(engine, "folders", unavailable)
    monkeypatch.setattr(page, "examples", lambda: [])
    opened = page.restore(SimpleNamespace(query_params={}))
    assert opened["within"].choices == [(views.ALL_FOLDERS, views.ALL_FOLDERS)] and opened["restored"] is False


def test_the_row_of_hits_one_model_found_stays_hidden_when_the_lists_share_nothing(engine, photo_dir, tmp_path):
    """It repeated both lists whole when the models shared no hit."""
    page = page_over(engine, photo_dir, tmp_path)
    state = page.search(str(next(photo_dir.glob("*.jpg"))), views.SIDE_BY_SIDE, 3)["result"]
    result = state[0]
    apart = replace(result, agreement={pair: agreement([1, 2, 3], [4, 5, 6], 3) for pair in result.agreement})
    hidden = page.after_search((apart, *state[1:]), views.SIDE_BY_SIDE, None, alone_was=True, why_was=False)
    assert hidden["alone_shown"] is False and hidden["only_row"].constructor_args["visible"] is False
