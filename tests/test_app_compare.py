"""The app's comparison tools, served for real on a labelled folder: the Evaluate tab and /evaluate, the
Map tab and /map, and the heatmaps of a selected hit. One app serves the whole module (the tests only
read what it holds)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from gradio_client import Client

from searchcore.files.decode import read_raw
from searchcore.inspection.maps import METHODS
from tests.conftest import labelled_folder, needs_corel, run_cli, settings_env, start_app, stop_app
from tests.test_app import OUTPUT, dependency_ids, needs_chromium, upload

CLASSES, PER_CLASS = 5, 8
# the models rank some Corel queries differently; on crops of eight sample photos they may well agree
needs_disagreements = needs_corel("queries the models disagree on")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    return labelled_folder(tmp_path_factory.mktemp("labelled") / "classes", CLASSES, PER_CLASS)


@pytest.fixture(scope="module")
def served(module_settings, labelled):
    """`python app.py --images LABELLED`, indexed; yields (url, labelled folder, settings)."""
    proc, url = start_app(settings_env(module_settings), labelled, module_settings.home / "app.log")
    yield url, labelled, module_settings
    stop_app(proc)


def evaluate_api(url: str, folder: Path) -> tuple:
    return Client(url, verbose=False).predict(str(folder), api_name="/evaluate")


@needs_disagreements
def test_evaluate_api_gives_the_clis_figures_and_reuses_the_embeddings(served, tmp_path):
    url, labelled, settings = served
    summary, table, curve, per_class, jaccard, mosaic, report = evaluate_api(url, labelled)
    assert (report["images"], len(report["classes"]), report["failed"]) == (CLASSES * PER_CLASS, CLASSES, [])
    # the app indexed this folder: every vector is read from the index, no model runs
    assert report["from_index"] == CLASSES * PER_CLASS and "inference" not in report["stages"], report["stages"]
    plain = {"resnet50", "vgg16", "fused", "rrf"}
    assert set(report["scores"]) == plain | {f"{m}+{r}" for m in plain for r in ("qe", "dba", "dba+qe")}
    # the CLI, in a process and a home of its own (so it embeds anew), gives the very same figures
    env = {**settings_env(settings), "SEARCHCORE_HOME": str(tmp_path), "SEARCHCORE_MILVUS_URI": str(tmp_path / "m.db"),
           "SEARCHCORE_REDIS_URL": ""}
    out = run_cli(env, "eval", str(labelled), "--json", "--plots", str(tmp_path / "plots"))
    assert out.returncode == 0, out.stderr
    cli = json.loads(out.stdout)
    assert set(cli["scores"]) == set(report["scores"]) and not cli["cached"]
    for mode, scores in cli["scores"].items():
        assert scores == pytest.approx(report["scores"][mode], abs=1e-9), mode
        assert all(0.0 <= v <= 1.0 for v in scores.values()) and scores["P@1"] >= scores["P@20"] - 1e-9, mode
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "ap-per-class.png", "disagreements.png", "jaccard-at-10.png", "precision-at-k.png"]
    # its thumbnails were made in a scratch folder: none in the folder an app of this home serves
    assert not [p for p in (tmp_path / "shown").rglob("*") if p.is_file()]
    # the table shows the same figures with three decimals, the best of each column in bold
    rows = {row[0]: [cell.strip("*") for cell in row[1:]] for row in table["data"]}
    assert rows["Fused"][0] == f'{report["scores"]["fused"]["mAP"]:.3f}'
    assert rows["ResNet50"][1] == f'{report["scores"]["resnet50"]["P@1"]:.3f}'
    best_map = max(round(s["mAP"], 3) for s in report["scores"].values())
    assert [row[1] for row in table["data"] if row[1].startswith("**")][0] == f"**{best_map:.3f}**"
    # the result opens with the verdict, as the CLI and the JSON give it
    verdict = report["verdict"]
    assert summary.startswith("**On these ") and "paired bootstrap over the queries, 1,000 resamples, seed 0" in summary
    assert verdict["interval"][0] <= verdict["mAP"][0] - verdict["mAP"][1] <= verdict["interval"][1]
    assert cli["verdict"]["models"] == verdict["models"] and cli["verdict"]["best"] == verdict["best"]
    assert cli["verdict"]["interval"] == pytest.approx(verdict["interval"], abs=1e-9)
    assert len(report["curves"]["vgg16"]) == min(50, CLASSES * PER_CLASS - 1)
    assert len(report["jaccard"]) == CLASSES * PER_CLASS and report["disagreements"]
    for row in report["disagreements"]:  # the pictures show a disagreement: the models' first 5 differ
        first, second = (sum(hit["relevant"] for hit in row["top"][m]) for m in report["models"][:2])
        assert first != second, row
    # a second evaluation of the same files reads their vectors back: no decoding, no inference
    again = evaluate_api(url, labelled)[-1]
    assert again["cached"] and "inference" not in again["stages"] and again["scores"] == report["scores"]


def test_evaluate_refuses_a_folder_outside_the_roots(served):
    summary, *_, report = evaluate_api(served[0], Path("/etc"))
    assert "not under an allowed folder" in summary and report == {}


def test_map_api_places_every_indexed_image_for_each_model(served):
    url, labelled, _ = served
    for method in METHODS:
        maps = Client(url, verbose=False).predict(method, api_name="/map")
        assert len(maps) == 2
        for html, label in zip(maps, ("ResNet50", "VGG16")):
            assert f"{label} · {method}" in html
            assert len(re.findall(r"<circle ", html)) == CLASSES * PER_CLASS
            groups = set(re.findall(r'class="map-key"[^>]*><i style="background:#\w+"></i>([^<]+)<', html))
            assert groups == {p.name for p in labelled.iterdir()}


@needs_chromium
@needs_disagreements
def test_browser_evaluate_tab_shows_the_table_the_plots_and_the_disagreements(served, pages):
    url, labelled, _ = served
    expected = evaluate_api(url, labelled)[-1]["scores"]
    page = pages(url, height=1400)
    page.get_by_role("tab", name="Evaluate").click()
    page.locator("#eval-folder input").fill(str(labelled))
    page.locator("#eval-folder input").press("Enter")
    page.locator("#evaluate").click()
    page.locator("#eval-summary").get_by_text(f"{CLASSES * PER_CLASS} images in {CLASSES} classes").wait_for(
        timeout=120_000)
    page.wait_for_function("() => document.querySelector('#eval-table').innerText.includes('DBA+αQE')",
                           timeout=30_000)
    cells = [c.strip() for c in re.split(r"[\t\n]", page.locator("#eval-table").inner_text()) if c.strip()]
    number = re.compile(r"\d+(\.\d+)?")
    rows = {cells[i]: [float(c) for c in cells[i + 1:i + 8]] for i in range(len(cells) - 7)
            if not number.fullmatch(cells[i]) and all(number.fullmatch(c) for c in cells[i + 1:i + 8])}
    assert len(rows) == 16, rows
    for name, mode in (("ResNet50", "resnet50"), ("VGG16", "vgg16"), ("Fused", "fused"),
                       ("Fused · DBA+αQE", "fused+dba+qe"), ("Fused (RRF) · αQE", "rrf+qe")):
        assert rows[name] == [round(expected[mode][c], 3) for c in ("mAP", "P@1", "P@10", "P@20", "R@1", "R@5",
                                                                    "R@10")], (name, rows)
    for plot in ("#eval-curve", "#eval-classes", "#eval-jaccard", "#eval-disagreements"):
        page.locator(f"{plot} img").first.wait_for(timeout=30_000)
        assert page.locator(f"{plot} img").first.evaluate("img => img.naturalWidth") > 300, plot
    page.screenshot(path=str(OUTPUT / "app-evaluate.png"), full_page=True)


@needs_chromium
def test_browser_map_hover_shows_the_image_and_a_click_searches_with_it(served, pages):
    url, labelled, _ = served
    page = pages(url)
    page.get_by_role("tab", name="Map").click()
    points = page.locator("#map-vgg16 circle")
    points.first.wait_for(timeout=60_000)
    assert points.count() == CLASSES * PER_CLASS == page.locator("#map-resnet50 circle").count()
    point = points.nth(7)
    point.hover(force=True)
    # the point under the pointer (near-duplicate images overlap on the map: not always the 8th drawn)
    box = point.bounding_box()
    name = page.evaluate("([x, y]) => document.elementFromPoint(x, y).dataset.n",
                         [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])
    drawn = page.locator("#map-vgg16").inner_html()
    assert "data-s=" not in drawn and str(labelled) not in drawn  # no SHA-256, no server path
    preview = page.locator("#map-vgg16 .map-tip img[src]")
    preview.wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelector('#map-vgg16 .map-tip img').naturalWidth > 0")
    assert page.locator("#map-vgg16 .map-tip div").inner_text() == name  # folder/file, no path
    page.screenshot(path=str(OUTPUT / "app-map.png"), full_page=True)
    point.click(force=True)
    page.locator("#status").get_by_text(name.split("/")[-1]).wait_for(timeout=60_000)
    own_first = re.compile(rf"^#1 ① cos \d\.\d{{3}} · {re.escape(name)} ")  # the point's photo itself first
    page.locator("#gallery-vgg16 .caption-label").first.get_by_text(own_first).wait_for(timeout=60_000)


@needs_chromium
def test_browser_selected_hit_shows_why_it_matched(served, pages):
    url, labelled, _ = served
    # a plain search (a link that names no intent): the heatmaps explain the plain vectors' cosine
    page = pages(f"{url}?mode=Side+by+side", height=1400)
    shown = page.locator("#status").inner_text()  # the first example's search, at load
    query = next(p for p in sorted(next(p for p in sorted(labelled.iterdir())).iterdir()) if p.name not in shown)
    # A hit clicked before the search's follow-up has run keeps its selection (the follow-up forgets only
    # selections of older results). The follow-up of the upload's search is held back until the click's
    # details and heatmaps have come, so this order happens every time.
    search_id, follow_up_id, _ = dependency_ids(url)
    held, searched = [], []

    def hold_the_follow_up(route):
        fn = (route.request.post_data_json or {}).get("fn_index")
        searched.append(True) if fn == search_id else None
        if fn == follow_up_id and searched and not held:
            held.append(route)
        else:
            route.continue_()
    page.route("**/queue/join*", hold_the_follow_up)
    upload(page, query, 8)
    assert page.locator("#why").is_hidden()
    page.locator("#gallery-resnet50 .thumbnail-item").nth(1).click()
    page.locator("#why img").nth(3).wait_for(timeout=60_000)
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_function(f"() => location.search.includes('q={read_raw(query).sha256[:16]}')", timeout=60_000)
    assert page.locator("#why img").count() == 4 and not page.locator("#again").is_disabled()
    captions = page.locator("#why .caption-label").all_inner_texts()
    assert [c.split(" · cos")[0] for c in captions] == ["ResNet50 · query", "ResNet50 · hit",
                                                      "VGG16 · query", "VGG16 · hit"], captions
    hit_cosine = float(captions[1].split("cos ")[1])
    shown = re.search(r"ResNet50: #2 · L2 \d\.\d{3} · cosine (\d\.\d{3})", page.locator("#details").inner_text())
    assert shown and abs(float(shown.group(1)) - hit_cosine) <= 0.002  # the heat adds up to the cosine
    assert page.locator("#heat-scale").is_visible()  # the heat's colour scale, beside the heatmaps
    page.mouse.move(0, 0)
    page.screenshot(path=str(OUTPUT / "app-explain.png"))
    page.locator("#close-selection").click()  # the panel closes; the lists were never covered for good
    page.locator("#selection").wait_for(state="hidden", timeout=30_000)
    page.locator("#gallery-resnet50 .thumbnail-item").nth(1).click()  # and opens again on a click
    page.locator("#why img").nth(3).wait_for(timeout=60_000)
    upload(page, sorted(labelled.rglob("*.jpg"))[-1], 8)  # a new search hides the old explanation
    page.locator("#why").wait_for(state="hidden", timeout=30_000)
