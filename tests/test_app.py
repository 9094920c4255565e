"""The web app, served for real: its API through gradio_client, its page through headless Chromium."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import requests
from gradio_client import Client, handle_file
from PIL import Image

from searchcore.encoding.manifest import ModelManifest
from searchcore.files.decode import read_raw

from tests.conftest import (CHROMIUM, MODEL_DIR, PHOTOS, ROOT, any_page_of_app, labelled_folder, needs, settings_env,
                            settings_in, start_app, stop_app, write_photos)

CAPTION = re.compile(r"^#\d+( [\u2460-\u2473\u3251-\u325f\u32b1-\u32bf])? cos -?\d\.\d{3} · [^/]+/[^/]+ · L2 \d\.\d{3}$")
OUTPUT = ROOT / "test-output"
STATUS = 8  # the status line's place among /search's outputs
ALL = "All indexed photos"  # the folder choice of a raw /search call that searches everything
needs_chromium = needs(CHROMIUM.exists(), "needs Debian's chromium (.ci/run installs it)")


@pytest.fixture(scope="module")
def served_app(module_settings, tmp_path_factory):
    """One app for the tests that only search and read (they change nothing it holds): `python app.py
    --images PHOTOS` on a free port, int8; yields (url, photo folder, extra root)."""
    folder = tmp_path_factory.mktemp("served")
    photos = write_photos(folder / "photos")
    extra_root = folder / "more"
    extra_root.mkdir()
    env = {**settings_env(module_settings), "SEARCHCORE_INDEX_ROOTS": str(extra_root)}
    proc, url = start_app(env, photos, folder / "app.log")
    yield url, photos, extra_root
    stop_app(proc)


@pytest.fixture(scope="module")
def indexing_app(tmp_path_factory, model_dir):
    """One app for the tests that index into it: as served_app, with a home of its own; each test
    indexes files of its own and checks what its own call added. Yields (url, photos, extra root, home)."""
    folder = tmp_path_factory.mktemp("indexing")
    settings = settings_in(folder / "home", model_dir)
    photos = write_photos(folder / "photos")
    extra_root = folder / "more"
    extra_root.mkdir()
    env = {**settings_env(settings), "SEARCHCORE_INDEX_ROOTS": str(extra_root)}
    proc, url = start_app(env, photos, folder / "app.log")
    yield url, photos, extra_root, settings.home
    stop_app(proc)


@pytest.fixture
def space_app(cli_env, photo_dir, tmp_path):
    """The app as a Hugging Face Space runs it: the default fp32 builds and no reachable Redis."""
    env = {**cli_env, "SEARCHCORE_PRECISION": "fp32", "SEARCHCORE_REDIS_URL": "redis://127.0.0.1:1/0"}
    proc, url = start_app(env, photo_dir, tmp_path / "app.log")
    yield url, photo_dir
    stop_app(proc)


def rows_per_model(client: Client) -> list[int]:
    return [row[1] for row in client.predict(api_name="/stats")["data"]]


def call(url: str, endpoint: str, data: list) -> list:
    """A raw call of a named endpoint (what gradio_client cannot send, such as a data: URL)."""
    event = requests.post(f"{url}gradio_api/call/{endpoint}", json={"data": data}, timeout=30).json()["event_id"]
    stream = requests.get(f"{url}gradio_api/call/{endpoint}/{event}", timeout=120).text
    kind = re.findall(r"^event: (\w+)", stream, re.MULTILINE)[-1]
    payload = re.findall(r"^data: (.*)$", stream, re.MULTILINE)[-1]
    return [kind, json.loads(payload)]


def test_search_api_gives_both_models_side_by_side(served_app):
    url, photos, _ = served_app
    client = Client(url, verbose=False)
    resnet, vgg, fused, only_resnet, only_vgg, agreement, details, as_json, status = client.predict(
        handle_file(str(photos / "coffee.jpg")), "Side by side", 5, api_name="/search")
    for gallery in (resnet, vgg):
        assert len(gallery) == 5 and all(CAPTION.match(item["caption"]) for item in gallery)
        assert gallery[0]["caption"] == "#1 ① cos 1.000 · photos/coffee.jpg · L2 0.000"  # the query itself is indexed
    shared = len({h["id"] for h in as_json["hits"]["resnet50"]} & {h["id"] for h in as_json["hits"]["vgg16"]})
    assert f"**{shared} of 5 in both lists**" in agreement and "Jaccard" in agreement and "Kendall τ" in agreement
    only = {h["id"] for h in as_json["hits"]["resnet50"]} - {h["id"] for h in as_json["hits"]["vgg16"]}
    assert len(only_resnet) == len(only) and not any(re.match(r"#\d+ [\u2460-\u2473]", i["caption"])
                                                     for i in only_resnet + only_vgg)
    shared = {h["id"] for h in as_json["hits"]["resnet50"]} & {h["id"] for h in as_json["hits"]["vgg16"]}
    marked = [re.match(r"#\d+ ([\u2460-\u2473])", item["caption"]) for item in resnet]
    assert sum(m is not None for m in marked) == len(shared)
    assert {m.group(1) for m in marked if m} == {re.match(r"#\d+ (\S)", i["caption"]).group(1) for i in vgg
                                                 if re.match(r"#\d+ [\u2460-\u2473]", i["caption"])}
    assert as_json["hits"]["resnet50"][0]["file"] == str((photos / "coffee.jpg").resolve())
    assert {"l2", "cosine", "id", "file"} <= set(as_json["hits"]["vgg16"][0])
    assert "this very image is indexed" in status
    _, _, fused, *_ = client.predict(handle_file(str(photos / "coffee.jpg")), "Fused", 3, api_name="/search")
    assert len(fused) == 3 and fused[0]["caption"].startswith("#1 cos 1.000 · photos/coffee.jpg · L2 0.000")
    # the same search again at once is a full answer, not a skipped update
    again = client.predict(handle_file(str(photos / "coffee.jpg")), "Fused", 3, api_name="/search")
    assert [item["caption"] for item in again[2]] == [item["caption"] for item in fused]


def test_search_within_a_folder_several_photos_together_and_duplicates_are_endpoints(served_app):
    """`/search` takes a folder by the name the page shows (never a server path), `/search_together` 2 to 5
    photos, `/duplicates` a way of scoring and a threshold."""
    url, photos, _ = served_app
    client = Client(url, verbose=False)
    coffee, cat = handle_file(str(photos / "coffee.jpg")), handle_file(str(photos / "nested" / "chelsea.jpg"))
    *_, as_json, _ = client.predict(coffee, "Side by side", 10, "none", False, False, "photos/nested",
                                    api_name="/search")
    found = [Path(h["file"]) for hits in as_json["hits"].values() for h in hits]
    assert len(found) == 2 * 4 and {f.parent for f in found} == {(photos / "nested").resolve()}  # its 4, in both lists
    *_, refused = client.predict(coffee, "Side by side", 5, "none", False, False, str(photos), api_name="/search")
    assert "no indexed folder is called" in refused
    *_, as_json, status = client.predict([{"image": coffee, "caption": None}, {"image": cat, "caption": None}],
                                         "Side by side", 3, "none", ALL, api_name="/search_together")
    assert as_json["query"] == "coffee.jpg + chelsea.jpg" and len(as_json["hits"]["vgg16"]) == 3, status
    assert {h["file"] for h in as_json["hits"]["resnet50"][:2]} == {
        str((photos / "coffee.jpg").resolve()), str((photos / "nested" / "chelsea.jpg").resolve())}
    *_, alone = client.predict([{"image": coffee, "caption": None}], "Side by side", 3, "none", ALL,
                               api_name="/search_together")
    assert "Add 2 to 5 photos" in alone
    summary, rows, groups = client.predict("fused", 0.88, api_name="/duplicates")
    assert summary.startswith("No near-duplicates at 0.880") and groups["groups"] == []
    summary, rows, groups = client.predict("resnet50", 0.5, api_name="/duplicates")
    assert "group(s)** of near-duplicates" in summary and rows.count('class="dup-row"') == len(groups["groups"]) > 0


def test_only_the_images_shown_are_served(served_app):
    url, photos, _ = served_app
    import skimage.data
    sources = Path(skimage.data.__file__)  # the sample folder is an index root: its .py files must not be served
    for path in ("/etc/passwd", str(ROOT / "app.py"), str(sources), str(photos / "coffee.jpg")):
        response = requests.get(f"{url}gradio_api/file={path}", timeout=10)
        assert response.status_code in (403, 404), (path, response.status_code)
    coffee = data_url((photos / "coffee.jpg").read_bytes())
    _, (resnet, *_) = call(url, "search", [coffee, "ResNet50", 3, "none", False, False, ALL])
    shown = requests.get(resnet[0]["image"]["url"], timeout=10)
    assert shown.status_code == 200 and Image.open(io.BytesIO(shown.content)).format == "JPEG"
    assert max(Image.open(io.BytesIO(shown.content)).size) <= 256


def test_bad_uploads_get_a_clear_message_and_the_app_keeps_serving(space_app, tmp_path):
    url, photos = space_app
    assert "The models run **fp32**" in requests.get(url, timeout=10).text
    client = Client(url, verbose=False)
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes((photos / "coffee.jpg").read_bytes()[:3000])
    huge = tmp_path / "huge.png"
    Image.new("1", (10_000, 6_000)).save(huge)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for path, reason in ((text, "not an image"), (truncated, "truncated"), (huge, "over the limit"),
                         (empty, "file is empty")):
        resnet, vgg, *_, status = client.predict(handle_file(str(path)), "Side by side", 3, api_name="/search")
        assert (resnet, vgg) == ([], [])
        assert path.name in status and reason in status, status
        assert "/tmp" not in status and str(tmp_path) not in status, status  # no server path, the name only
    too_big = tmp_path / "big.jpg"
    too_big.write_bytes((photos / "coffee.jpg").read_bytes() + os.urandom(21 * 1024 * 1024))
    with pytest.raises(ValueError, match="big.jpg exceeds the maximum file size of 20971520 bytes"):
        client.predict(handle_file(str(too_big)), "Side by side", 3, api_name="/search")  # the client's own check
    with too_big.open("rb") as body:  # the server's, for a client that does not check
        refused = requests.post(f"{url}gradio_api/upload", files={"files": ("big.jpg", body)}, timeout=60)
    assert refused.status_code == 413 and "exceeded maximum allowed size of 20971520 bytes" in refused.text, \
        (refused.status_code, refused.text[:200])
    resnet, *_ = client.predict(handle_file(str(photos / "coffee.jpg")), "ResNet50", 2, api_name="/search")
    assert len(resnet) == 2
    # without a reachable Redis (as on a Space) the app serves all of this, and says so once in its log
    assert (tmp_path / "app.log").read_text().count("unreachable") == 1


def data_url(data: bytes) -> dict:
    return {"url": "data:image/png;base64," + base64.b64encode(data).decode(), "path": None,
            "meta": {"_type": "gradio.FileData"}}


def test_data_urls_take_searchcores_decoder_and_the_upload_cap(served_app):
    url, photos, _ = served_app
    bomb = io.BytesIO()
    Image.new("1", (8_000, 8_000)).save(bomb, "PNG")  # 64 MP in a few kB
    kind, outputs = call(url, "search", [data_url(bomb.getvalue()), "Side by side", 3, "none", False, False, ALL])
    assert kind == "complete" and "64000000 pixels, over the limit of 50000000" in outputs[STATUS], outputs
    over = b"\0" * (20 * 1024 * 1024 + 512 * 1024)  # over the upload limit, its request under the body cap
    kind, outputs = call(url, "search", [data_url(over), "Side by side", 3, "none", False, False, ALL])
    assert kind == "error" and "over the upload limit of 20971520 bytes" in str(outputs), outputs
    kind, outputs = call(url, "search", [data_url((photos / "coffee.jpg").read_bytes()), "Side by side", 3, "none",
                                         False, False, ALL])
    assert kind == "complete" and "this very image is indexed" in outputs[STATUS], outputs


def rss_kib_of_server(url: str) -> int:
    """The resident memory of the app process that serves this URL (found by its --port argument)."""
    port = url.rstrip("/").rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"app.py" in b" ".join(args) and port.encode() in args:
            status = (proc / "status").read_text()
            return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    raise AssertionError(f"no app process on port {port}")


def test_a_request_body_over_the_cap_is_refused_before_it_is_read(served_app):
    """Gradio parsed a 200 MB JSON body whole before any check of ours, and kept about 600 MB after."""
    url, photos, _ = served_app
    before = rss_kib_of_server(url)
    body = b'{"data": ["' + b"A" * (200 * 2**20) + b'"], "fn_index": 0, "session_hash": "x"}'
    for endpoint in ("gradio_api/queue/join", "gradio_api/run/predict", "gradio_api/info"):
        answer = requests.post(url + endpoint, data=body, headers={"content-type": "application/json"}, timeout=60)
        assert answer.status_code == 413 and "request body over the limit of" in answer.text, endpoint
    assert rss_kib_of_server(url) - before < 50 * 1024
    kind, outputs = call(url, "search", [data_url((photos / "coffee.jpg").read_bytes()), "Side by side", 3, "none",
                                         False, False, ALL])
    assert kind == "complete" and "this very image is indexed" in outputs[STATUS], outputs


def test_bad_arguments_get_a_clear_message(served_app, tmp_path):
    url, photos, _ = served_app
    client = Client(url, verbose=False)
    query = handle_file(str(photos / "coffee.jpg"))
    resnet, vgg, *_, status = client.predict(query, None, 3, api_name="/search")  # None passes the Radio's check
    assert (resnet, vgg) == ([], []), status
    assert "mode must be one of Side by side, ResNet50, VGG16, Fused, Fused (RRF), not None" in status, status
    for mode, k, message in (("Both", 3, "not in the list of choices"), ("Side by side", 0, "less than minimum value 1"),
                             ("Side by side", 51, "greater than maximum value 50")):
        with pytest.raises(Exception, match=message):  # the components' own checks answer these
            client.predict(query, mode, k, api_name="/search")
    summary, *_ = client.predict("x" * 300, [], api_name="/index")
    assert "is not a usable folder name (File name too long)" in summary and "Errno" not in summary, summary


def test_an_int8_app_says_so_and_keeps_its_own_collections(served_app):
    url, photos, _ = served_app
    page = requests.get(url, timeout=10).text
    resnet50 = ModelManifest.load(MODEL_DIR / "resnet50-int8").versions["int8_median_cosine_to_fp32"]
    assert "The models run **int8**" in page and f"ResNet50 {resnet50:.3f}" in page  # the build's own figure
    client = Client(url, verbose=False)
    rows = client.predict(api_name="/stats")["data"]
    assert [(r[3], r[-1]) for r in rows] == [("int8", "images_resnet50_int8"), ("int8", "images_vgg16_int8")]
    assert all(r[1] == len(PHOTOS) for r in rows), rows
    resnet, vgg, *_ = client.predict(handle_file(str(photos / "coffee.jpg")), "Side by side", 3, api_name="/search")
    assert resnet[0]["caption"].endswith("cos 1.000 · photos/coffee.jpg · L2 0.000")
    assert "coffee.jpg" in vgg[0]["caption"]


def test_index_api_only_under_configured_roots(indexing_app, tmp_path):
    url, photos, extra_root, _ = indexing_app
    client = Client(url, verbose=False)
    summary, *_ = client.predict(str(tmp_path), [], api_name="/index")
    assert "not under an allowed folder" in summary
    folder = extra_root / "api"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(photos / "nested" / "chelsea.jpg", folder / "sub" / "cat-copy.jpg")
    Image.open(photos / "coffee.jpg").rotate(90, expand=True).save(folder / "sub" / "coffee-rotated.jpg")
    (folder / "sub" / "broken.png").write_text("nope")
    upload = tmp_path / "upload-crop.jpg"
    Image.open(photos / "nested" / "rocket.jpg").crop((0, 0, 200, 300)).save(upload)
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture")
    before = rows_per_model(client)
    summary, failures, stats = client.predict(
        str(folder), [handle_file(str(upload)), handle_file(str(photos / "coffee.jpg")), handle_file(str(notes))],
        api_name="/index")
    assert "indexed 1, already there 0, duplicates 1, failed 1" in summary, summary  # the folder
    assert summary.count("indexed 1, already there 0, duplicates 1, failed 1") == 2, summary  # and the uploads
    assert "broken.png" in summary and "not an image" in summary
    # one list of every failure, the folder's and the uploads'
    listed = Path(failures).read_text().splitlines()
    assert listed[0].startswith(f"{folder / 'sub' / 'broken.png'}\tnot an image\t"), listed
    assert len(listed) == 2 and listed[1].startswith("notes.jpg\tnot an image\t"), listed
    assert [row[1] for row in stats["data"]] == [n + 2 for n in before]
    *_, as_json, status = client.predict(handle_file(str(upload)), "Side by side", 1, api_name="/search")
    assert as_json["hits"]["vgg16"][0]["self"] and "upload-crop.jpg" in as_json["hits"]["vgg16"][0]["file"]
    assert client.predict(api_name="/stats")["data"] == stats["data"]


def test_links_out_of_the_roots_are_refused_by_their_own_name(indexing_app, tmp_path):
    url, photos, extra_root, _ = indexing_app
    secret = tmp_path / "elsewhere" / "secret.jpg"
    secret.parent.mkdir()
    Image.open(photos / "nested" / "rocket.jpg").rotate(180).save(secret)
    folder = extra_root / "links"
    folder.mkdir()
    (folder / "x.jpg").symlink_to(secret)
    (folder / "passwd.jpg").symlink_to("/etc/passwd")
    client = Client(url, verbose=False)
    summary, failures, stats = client.predict(str(folder), [], api_name="/index")
    assert "indexed 0, already there 0, duplicates 0, failed 2" in summary, summary
    assert "outside the allowed folders: 2 file(s)" in summary and "x.jpg" in summary and "passwd.jpg" in summary
    assert str(secret) not in summary and "/etc/passwd" not in summary and "elsewhere" not in Path(failures).read_text()
    *_, as_json, _ = client.predict(handle_file(str(secret)), "Side by side", 10, api_name="/search")
    assert not any(h["self"] for hits in as_json["hits"].values() for h in hits)
    assert "elsewhere" not in json.dumps(as_json) and "x.jpg" not in json.dumps(as_json)


def test_only_uploads_that_were_indexed_are_kept(indexing_app, tmp_path):
    url, photos, _, home = indexing_app
    page = tmp_path / "page.jpg"
    page.write_text("<html><script>alert(1)</script></html>")
    good = tmp_path / "good.jpg"
    Image.open(photos / "coffee.jpg").crop((0, 0, 300, 200)).save(good)
    client = Client(url, verbose=False)
    uploads = home / "uploads"
    before = set(uploads.iterdir()) if uploads.is_dir() else set()
    summary, *_ = client.predict("", [handle_file(str(page)), handle_file(str(good)),
                                      handle_file(str(photos / "coffee.jpg"))], api_name="/index")
    assert "indexed 1, already there 0, duplicates 1, failed 1" in summary and "page.jpg" in summary, summary
    kept = sorted(p.name for p in set(uploads.iterdir()) - before)
    assert len(kept) == 1 and kept[0].endswith("-good.jpg"), kept
    for name in ("page.jpg", "coffee.jpg"):
        leftovers = [p for p in uploads.rglob(f"*{name}")]
        assert leftovers == []
        # and nothing of it is served: its would-be path in the uploads folder gives 403/404
        response = requests.get(f"{url}gradio_api/file={uploads / name}", timeout=10)
        assert response.status_code in (403, 404)


def dependency_ids(url: str) -> tuple[int, int, set[int]]:
    """From the app's config: the query's search (api_name "search"), a search's follow-up (the event that
    writes the galleries and the "Search with the selected hit" button), and every event that searches
    (it writes the galleries and the status line)."""
    config = requests.get(f"{url}config", timeout=10).json()
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    search = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "search")
    follow_up = next(d["id"] for d in config["dependencies"]
                     if ids["again"] in d["outputs"] and ids["gallery-resnet50"] in d["outputs"])
    searching = {d["id"] for d in config["dependencies"]
                 if ids["status"] in d["outputs"] and ids["gallery-resnet50"] in d["outputs"]}
    return search, follow_up, searching


def searched_link(page, query: Path, **params: object) -> None:
    """Wait until the page's address names this search: the last step of a search's follow-up, so the
    search, its follow-up and the link step have all run."""
    wanted = [f"q={read_raw(query).sha256[:16]}", *(f"{key}={value}" for key, value in params.items())]
    page.wait_for_function("(wanted) => wanted.every(w => location.search.includes(w))", arg=wanted, timeout=60_000)


@needs_chromium
def test_browser_upload_fills_both_galleries(served_app, pages):
    url, photos, _ = served_app
    k = 8
    OUTPUT.mkdir(exist_ok=True)
    page = pages(url)
    page.set_input_files("#query input[type=file]", str(photos / "nested" / "rocket.jpg"))
    for model in ("resnet50", "vgg16"):
        captions = page.locator(f"#gallery-{model} .caption-label")
        captions.nth(k - 1).wait_for(timeout=60_000)
        texts = captions.all_inner_texts()
        assert len(texts) == k and all(CAPTION.match(t) for t in texts), texts
    assert re.search(r"\d of 8 in both lists|of their top 8", page.locator("#agreement").inner_text())
    # indexing was over before the page loaded: the page says nothing about it, and shows examples
    assert page.locator("#startup").inner_text().strip() == ""
    assert page.locator("#examples img").count() == 8
    page.screenshot(path=str(OUTPUT / "app-search.png"), full_page=True)
    # a second upload replaces the first (Gradio fires `change` twice then): the page asks for one
    # search and its one follow-up, and the app searches once
    searched_link(page, photos / "nested" / "rocket.jpg")
    log = photos.parent / "app.log"
    before, joins = len(log.read_text()), []
    page.on("request", lambda r: joins.append((r.post_data_json or {}).get("fn_index")) if "/queue/join" in r.url
            else None)
    page.set_input_files("#query input[type=file]", str(photos / "coffee.jpg"))
    searched_link(page, photos / "coffee.jpg")
    searches = log.read_text()[before:].count("searched with coffee.jpg")
    search_id, follow_up_id, searching = dependency_ids(url)
    asked = [fn for fn in joins if fn in searching | {follow_up_id}]
    assert searches == 1 and asked == [search_id, follow_up_id], (searches, joins)

    page.locator("#gallery-vgg16 .thumbnail-item").nth(1).click()
    details = page.locator("#details")
    details.get_by_text("ResNet50:").wait_for(timeout=30_000)
    chosen = re.search(r"path: (\S+)", details.inner_text()).group(1)
    assert Path(chosen).is_file() and "VGG16: #2" in details.inner_text()
    page.locator("#again").click()
    page.locator("#status").get_by_text(Path(chosen).name).wait_for(timeout=60_000)
    own_first = re.compile(rf"^#1 ① cos \d\.\d{{3}} · \S+/{re.escape(Path(chosen).name)} ")  # similar photos: DBA+αQE
    page.locator("#gallery-resnet50 .caption-label").first.get_by_text(own_first).wait_for(timeout=60_000)
    assert (OUTPUT / "app-search.png").stat().st_size > 10_000


@needs_chromium
def test_browser_intent_folder_and_several_photos(served_app, pages):
    """A first page looks for similar photos; the same-photo intent sets its options (the address keeps
    it); a search within a folder shows only that folder's photos; 2 photos searched together show
    them in a row and their joint result."""
    url, photos, _ = served_app
    page = pages(url)
    assert page.locator("#intent input[value=similar]").is_checked()
    assert "re-ranked with DBA+αQE" in page.locator("#status").inner_text()
    page.locator("#intent input[value=same]").check()
    page.locator("#status").get_by_text("also searched turned and mirrored").wait_for(timeout=60_000)
    page.wait_for_function("() => location.search.includes('i=same')", timeout=30_000)
    page.locator("#advanced").get_by_text("Advanced").click()
    assert page.locator("#robust input").is_checked() and page.locator("#rerank input[value=none]").is_checked()
    page.locator("#within input").click()
    page.get_by_role("option", name="photos/nested", exact=True).click()
    captions = page.locator("#gallery-resnet50 .caption-label")
    page.wait_for_function("() => { const c = [...document.querySelectorAll('#gallery-resnet50 .caption-label')];"
                           " return c.length === 4 && c.every(e => e.innerText.includes(' · nested/')); }",
                           timeout=60_000)
    assert captions.count() == 4  # the folder holds 4 photos
    page.set_input_files("#together input[type=file]", [str(photos / "coffee.jpg"), str(photos / "astronaut.jpg")])
    page.locator("#together .thumbnail-item").nth(1).wait_for(timeout=30_000)  # the query photos in a row
    page.locator("#together-go").click()
    page.locator("#status").get_by_text("coffee.jpg + astronaut.jpg").wait_for(timeout=60_000)
    page.screenshot(path=str(OUTPUT / "app-together.png"), full_page=True)


def upload(page, path: Path, k: int) -> None:
    """Upload a photo and wait for its own result: its name in the status line, k captions. A photo of the
    name the page shows already (the first example, searched at load) could not be told from it."""
    assert path.name not in page.locator("#status").inner_text(), "the page shows that photo already"
    page.set_input_files("#query input[type=file]", str(path))
    page.locator("#status").get_by_text(path.name).wait_for(timeout=60_000)
    page.locator("#gallery-vgg16 .caption-label").nth(k - 1).wait_for(timeout=60_000)


@needs_chromium
def test_browser_selection_follows_the_search_and_k_searches_again(served_app, pages):
    url, photos, _ = served_app
    page = pages(url)
    details = page.locator("#details")
    # with nothing selected there is no panel, so "Search with the selected hit" can't be pressed
    upload(page, photos / "coffee.jpg", 8)
    searched_link(page, photos / "coffee.jpg")
    assert page.locator("#selection").is_hidden() and not page.locator("#again").is_visible()
    # a selection shows in a panel beside both lists, which stay whole (before: a preview replaced the list)
    page.locator("#gallery-vgg16 .thumbnail-item").nth(2).click()
    details.get_by_text("VGG16: #3").wait_for(timeout=30_000)
    assert page.locator("#gallery-vgg16 .preview").count() == 0
    assert page.locator("#gallery-vgg16 .thumbnail-item").count() == 8 and page.locator("#selection").is_visible()
    page.wait_for_function("() => !document.querySelector('#again').disabled", timeout=30_000)
    page.screenshot(path=str(OUTPUT / "app-selected.png"))
    # then a new upload: the selection belongs to the old result and goes, panel and all
    upload(page, photos / "nested" / "chelsea.jpg", 8)
    page.locator("#selection").wait_for(state="hidden", timeout=30_000)
    # nothing to search with: the button is gone with the panel, or disabled
    page.wait_for_function("() => !document.querySelector('#again')?.checkVisibility() "
                           "|| document.querySelector('#again').disabled", timeout=30_000)
    # changing k searches again, and the agreement line follows
    entries = page.evaluate("() => history.length")
    page.locator("#topk input[type=number]").fill("5")
    page.locator("#topk input[type=number]").press("Enter")
    page.locator("#agreement").get_by_text(re.compile(r"of 5 in both lists|of their top 5")).wait_for(timeout=60_000)
    assert page.locator("#gallery-resnet50 .caption-label").count() == 5
    searched_link(page, photos / "nested" / "chelsea.jpg", k=5)  # the follow-up that hides the selection has run
    assert page.evaluate("() => history.length") == entries  # a new k replaces the entry; before: one more
    assert not page.locator("#why").is_visible()  # the old hit's heatmaps, even if they came late, are gone
    page.mouse.move(0, 0)  # the pointer still hovered the hit clicked before, which showed it framed
    page.screenshot(path=str(OUTPUT / "app-compare.png"), full_page=True)
    # bold capitals are bold: the agreement's bold text must not start with a thin capital
    widths = page.evaluate("""() => { const p = document.querySelector('#agreement p');
        const probe = (tag) => { const e = document.createElement(tag); e.textContent = 'AAAAAAAAAA';
                                 p.appendChild(e); const w = e.getBoundingClientRect().width; e.remove(); return w; };
        return [probe('strong'), probe('span')]; }""")
    assert widths[0] > 1.06 * widths[1], widths


@needs_chromium
def test_browser_phone_shows_a_comparison_on_its_first_screen_and_results_rank_by_rank(served_app, pages):
    url, photos, _ = served_app
    page = pages(url, 390, 844)  # the first example searched at load
    firsts = [page.locator(f"#gallery-{m} .thumbnail-item").first.bounding_box() for m in ("resnet50", "vgg16")]
    # before: the results began about 1,700 px down, under the intro, the examples and every control
    assert all(0 < hit["y"] and hit["y"] + hit["height"] <= 844 for hit in firsts), firsts
    upload(page, photos / "coffee.jpg", 8)
    # the view moves to the results (before: nothing on screen changed, they began ~1,300 px down)
    page.wait_for_function("() => Math.abs(document.querySelector('#status').getBoundingClientRect().top) < 40",
                           timeout=30_000)
    query, button = page.locator("#query").bounding_box(), page.locator("#search").bounding_box()
    resnet = page.locator("#gallery-resnet50").bounding_box()
    vgg = page.locator("#gallery-vgg16").bounding_box()
    examples = page.locator("#examples").bounding_box()
    # the query, the examples right under it, the results, and the controls below them
    assert query["y"] < examples["y"] < resnet["y"] < button["y"], (examples, resnet, button)
    # the two lists stay side by side, so rank r of each is on the same row
    assert abs(resnet["y"] - vgg["y"]) < 2 and vgg["x"] > resnet["x"] + resnet["width"] - 2
    assert vgg["x"] + vgg["width"] <= 390
    rows = [page.locator(f"#gallery-{m} .thumbnail-item").nth(4).bounding_box()["y"] for m in ("resnet50", "vgg16")]
    assert abs(rows[0] - rows[1]) < 2
    page.locator("#examples img").nth(7).wait_for(timeout=30_000)
    assert page.locator("#startup").inner_text().strip() == ""
    # every hit's thumbnail loads once scrolled to (they load lazily below the fold)
    page.locator("#gallery-vgg16 .thumbnail-item").nth(7).scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.querySelectorAll('#gallery-resnet50 img, #gallery-vgg16 img')]"
                           ".filter(i => i.complete && i.naturalWidth > 0).length === 16", timeout=30_000)
    page.screenshot(path=str(OUTPUT / "app-phone.png"), full_page=True)
    page.locator("#gallery-vgg16 .thumbnail-item").nth(3).click()
    details = page.locator("#details")
    details.get_by_text("VGG16: #4").wait_for(timeout=30_000)
    box = details.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box  # the details are not cut off
    assert details.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    details.screenshot(path=str(OUTPUT / "app-phone-details.png"))


@needs_chromium
def test_browser_index_tab_empties_the_upload_box_and_says_when_dba_is_current(indexing_app, pages, tmp_path):
    url, photos, _, _ = indexing_app
    upload_file = tmp_path / "new-crop.jpg"
    Image.open(photos / "coffee.jpg").crop((0, 0, 320, 200)).save(upload_file)
    page = pages(url)
    page.get_by_role("tab", name="Index").click()
    files = page.locator("#files input[type=file]")
    files.wait_for(state="attached", timeout=30_000)  # the tab's panel is there
    with page.expect_response(lambda r: "/gradio_api/upload" in r.url and r.ok, timeout=30_000):
        files.set_input_files(str(upload_file))
    # the box lists the file (its stem and suffix in elements of their own)
    page.wait_for_function("() => document.querySelector('#files').innerText.includes('new-crop')", timeout=30_000)
    with page.expect_request(lambda r: "/queue/join" in r.url, timeout=30_000):
        page.locator("#index").click()
    page.locator("#summary").get_by_text("indexed 1").wait_for(timeout=60_000)
    page.wait_for_function("() => !document.querySelector('#files').innerText.includes('new-crop')",
                           timeout=30_000)
    page.locator("#summary").get_by_text("their DBA vectors are current").wait_for(timeout=60_000)
    assert "indexed 1" in page.locator("#summary").inner_text()
    page.screenshot(path=str(OUTPUT / "app-index-settled.png"))
    page.locator("#index").click()  # a second click sends nothing again
    page.locator("#summary").get_by_text("Give a folder under the allowed roots").wait_for(timeout=60_000)


@needs_chromium
def test_browser_page_is_served_while_the_app_indexes_at_startup(cli_env, many_photos, tmp_path, pages):
    # fp32, one image a batch and no cache: slow enough for the page to see it
    env = {**cli_env, "SEARCHCORE_REDIS_URL": "", "SEARCHCORE_BATCH_SIZE": "1", "SEARCHCORE_PRECISION": "fp32"}
    proc, url = start_app(env, many_photos, tmp_path / "app.log", indexed=False)
    try:
        assert f"indexing {many_photos}:" not in (tmp_path / "app.log").read_text()  # served before it is done
        page = pages(url)
        page.locator("#startup").get_by_text(re.compile(r"Indexing the photos: \d+ of 48 done")).wait_for(
            timeout=60_000)
        page.set_input_files("#query input[type=file]", str(next(many_photos.iterdir())))
        page.locator("#gallery-vgg16 .caption-label").first.wait_for(timeout=60_000)  # what is indexed so far
        page.wait_for_function("() => !document.querySelector('#startup').innerText.includes('Indexing')",
                               timeout=300_000)
        page.locator("#examples .gallery-item, #examples button").first.wait_for(timeout=30_000)
        assert f"indexing {many_photos}: indexed 48" in (tmp_path / "app.log").read_text()
    finally:
        stop_app(proc)


@needs_chromium
def test_browser_url_keeps_the_search_for_reload_back_and_links(served_app, pages):
    url, photos, _ = served_app
    coffee = read_raw(photos / "coffee.jpg")
    page = pages(url)
    page.get_by_label("ResNet50", exact=True).check()
    page.set_input_files("#query input[type=file]", str(photos / "coffee.jpg"))
    page.locator("#gallery-resnet50 .caption-label").nth(7).wait_for(timeout=60_000)
    page.wait_for_function(f"() => location.search.includes('q={coffee.sha256[:16]}') && "
                           "location.search.includes('mode=ResNet50')", timeout=30_000)
    page.reload()  # Reload: the same search again, from the URL alone
    page.locator("#status").get_by_text("coffee.jpg").wait_for(timeout=60_000)
    first = page.locator("#gallery-resnet50 .caption-label").first
    first.get_by_text(re.compile(r"^#1 cos \d\.\d{3} · photos/coffee\.jpg ")).wait_for(timeout=60_000)
    assert page.locator("#mode input[value=ResNet50]").is_checked()
    page.set_input_files("#query input[type=file]", str(photos / "nested" / "chelsea.jpg"))
    cat = read_raw(photos / "nested" / "chelsea.jpg").sha256[:16]
    page.wait_for_function(f"() => location.search.includes('q={cat}')", timeout=60_000)
    page.go_back()  # Back: the coffee search
    page.locator("#status").get_by_text("coffee.jpg").wait_for(timeout=60_000)
    shared = pages(f"{url}?q={coffee.sha256[:16]}&mode=VGG16&k=3")  # a link opened elsewhere
    shared.locator("#status").get_by_text("coffee.jpg").wait_for(timeout=60_000)
    shared.locator("#gallery-vgg16 .caption-label").nth(2).wait_for(timeout=60_000)
    assert shared.locator("#gallery-vgg16 .caption-label").count() == 3


def test_search_api_reranks_and_fuses_by_rank(served_app):
    url, photos, _ = served_app
    client = Client(url, verbose=False)
    query = handle_file(str(photos / "coffee.jpg"))
    plain = client.predict(query, "Fused (RRF)", 5, "none", api_name="/search")
    _, _, fused, *_, as_json, status = client.predict(query, "Fused (RRF)", 5, "dba+qe", api_name="/search")
    assert as_json["rerank"] == "dba+qe" and "re-ranked with DBA+αQE" in status
    assert len(fused) == len(as_json["rrf"]) == 5 and "photos/coffee.jpg ·" in fused[0]["caption"]
    assert [i["caption"].split(" · ")[1] for i in fused] == [
        "/".join(h["file"].split("/")[-2:]) for h in as_json["rrf"]]  # the gallery shows the RRF list
    assert as_json["rrf"][0]["self"] and plain[7]["rrf"][0]["self"] and plain[7]["rerank"] == "none"
    with pytest.raises(Exception, match="not in the list of choices"):
        client.predict(query, "Side by side", 5, "dba+everything", api_name="/search")
    *_, as_json, status = client.predict(query, "Side by side", 3, "none", True, api_name="/search")
    assert as_json["robust"] and "also searched turned and mirrored" in status and as_json["hits"]["vgg16"][0]["self"]


def test_robustness_api_says_where_the_original_lands_after_an_edit(served_app, tmp_path):
    url, photos, _ = served_app
    client = Client(url, verbose=False)
    query = handle_file(str(photos / "nested" / "chelsea.jpg"))
    folders_before = sorted(Path(tempfile.gettempdir()).glob("edit-*"))
    edited, table, said = client.predict(query, "rotate", 90, api_name="/robustness")
    assert "Where the original lands after **rotate**" in said and "not indexed" not in said
    rows = {row[0]: row[1:] for row in table["data"]}
    assert set(rows) == {"ResNet50", "VGG16", "Fused", "Fused (RRF)"}
    assert all(re.fullmatch(r"#\d+|not in the top 50", cell) for cells in rows.values() for cell in cells)
    assert rows["ResNet50"][1] == "#1" and rows["VGG16"][1] == "#1"  # the robust query finds the turned photo
    with Image.open(edited) as image:
        original = Image.open(photos / "nested" / "chelsea.jpg")
        assert image.size == (original.height, original.width)  # turned by 90 degrees
    _, table, said = client.predict(query, "crop", 0.5, api_name="/robustness")
    assert "after **crop**" in said and len(table["data"]) == 4
    assert sorted(Path(tempfile.gettempdir()).glob("edit-*")) == folders_before  # before: a new folder per edit
    _, table, said = client.predict(query, "crop", -180, api_name="/robustness")
    assert "the share of the area kept must be from 0.1 to 1.0, not -180" in said and "/tmp" not in said
    _, table, said = client.predict(None, "mirror", 0, api_name="/robustness")
    assert "Search with a photo on the Search tab first" in said and table["data"] in ([], [[]], [["", "", "", ""]])
    # a photo the index lacks is refused before anything runs (it filled 12 cells with "not in the top 50")
    stranger = tmp_path / "stranger.jpg"
    Image.open(photos / "coffee.jpg").crop((0, 0, 150, 150)).save(stranger)
    edited, table, said = client.predict(handle_file(str(stranger)), "mirror", 0, api_name="/robustness")
    assert said == "⚠️ stranger.jpg is not indexed, so its original cannot land anywhere: pick one of the examples " \
                   "on the Search tab, or index the photo first."
    assert edited is None and table["data"] in ([], [[]], [["", "", "", ""]])


@needs_chromium
def test_browser_robustness_tab_edits_the_query_and_ranks_the_original(served_app, pages):
    url, photos, _ = served_app
    page = pages(url)
    upload(page, photos / "coffee.jpg", 8)
    page.get_by_role("tab", name="Robustness").click()
    page.locator("#edit-kind input").click()
    page.get_by_role("option", name="grayscale").click()
    page.locator("#edit-amount").wait_for(state="hidden", timeout=10_000)  # no amount for grayscale
    page.locator("#edit-search").click()
    page.locator("#robust-status").get_by_text("after grayscale").wait_for(timeout=60_000)
    page.wait_for_function("() => document.querySelector('#robust-table').innerText.includes('Fused (RRF)')",
                           timeout=30_000)
    words = page.locator("#robust-table").inner_text().split()
    assert words[words.index("ResNet50") + 1].startswith("#"), words
    page.locator("#edited img").wait_for(timeout=30_000)
    page.locator("#edit-original img").wait_for(timeout=30_000)  # the photo it edited, shown beside
    page.screenshot(path=str(OUTPUT / "app-robustness.png"), full_page=True)


@needs_chromium
def test_a_model_build_that_fails_is_said_on_the_page_with_its_reason(tmp_path, pages):
    """The app exited when a build failed, and a Space showed no page at all."""
    blocker = tmp_path / "a-file"
    blocker.write_text("models cannot be built under a file")
    settings = settings_in(tmp_path / "home", blocker / "models")
    proc, url = any_page_of_app({**settings_env(settings), "SEARCHCORE_MODEL_DIR": str(blocker / "models")},
                                tmp_path / "app.log")
    try:
        said = pages(url, loaded=False).locator("#waiting")
        said.get_by_text("The app cannot start: resnet50: build failed").wait_for(timeout=120_000)
        assert proc.poll() is None  # still serving the page that says why
    finally:
        stop_app(proc)


@pytest.fixture(scope="module")
def public_app(tmp_path_factory, model_dir):
    """The app as a public Space shows it (SEARCHCORE_PUBLIC=1, as SPACE_ID does): one configured
    evaluation set; yields (url, photos, the set, the folder the set lies in)."""
    folder = tmp_path_factory.mktemp("public")
    settings = settings_in(folder / "home", model_dir)
    photos = write_photos(folder / "photos")
    labelled = labelled_folder(folder / "sets" / "little", classes=3, per_class=4)
    env = {**settings_env(settings), "SEARCHCORE_PUBLIC": "1", "SEARCHCORE_EVAL_SETS": str(labelled)}
    proc, url = start_app(env, photos, folder / "app.log")
    yield url, photos, labelled, folder
    stop_app(proc)


def test_a_public_page_lets_no_visitor_index_or_name_a_server_path(public_app, tmp_path):
    """On a public page any visitor could index server folders and uploads into the index every other
    visitor sees, and evaluate any folder by typing its path; the JSON named every server path."""
    url, photos, labelled, folder = public_app
    client = Client(url, verbose=False)
    with pytest.raises(ValueError, match="index"):
        client.predict(str(photos), [], api_name="/index")  # no such endpoint on a public page
    config = requests.get(f"{url}config", timeout=10).json()
    assert not any(c["props"].get("label") == "Index" for c in config["components"])  # nor its tab
    for typed in (str(labelled), str(photos), "/etc"):
        with pytest.raises(Exception, match="not in the list of choices|choose one of the evaluation sets"):
            client.predict(typed, api_name="/evaluate")
    summary, *_, report = client.predict("little", api_name="/evaluate")
    assert "**12 images in 3 classes** from little" in summary and report["images"] == 12
    *_, as_json, status = client.predict(handle_file(str(photos / "coffee.jpg")), "Side by side", 3,
                                         api_name="/search")
    assert "this very image is indexed" in status
    for shown in (json.dumps(as_json), json.dumps(report), summary):
        assert str(folder) not in shown and "/tmp/" not in shown, shown[:300]
    assert as_json["hits"]["resnet50"][0]["file"] == "photos/coffee.jpg"


@needs_chromium
def test_a_fresh_page_shows_a_comparison_without_a_click(served_app, pages):
    """The first page showed two empty result boxes, with the examples below the fold."""
    url, photos, _ = served_app
    page = pages(url, 1366, 900)  # loaded: the first example searched and its follow-up done
    for model in ("resnet50", "vgg16"):
        assert page.locator(f"#gallery-{model} .caption-label").count() == 8
    first = page.locator("#gallery-resnet50 .caption-label").first.inner_text()
    assert re.match(r"#1 ① cos \d\.\d{3} · ", first), first  # the example itself, first in both lists
    first_row = page.locator("#gallery-vgg16 .thumbnail-item").nth(1).bounding_box()
    examples = page.locator("#examples").bounding_box()
    assert first_row["y"] + first_row["height"] < 900 and examples["y"] + 120 < 900  # above the fold
    page.mouse.move(0, 0)
    page.screenshot(path=str(OUTPUT / "app-first-screen.png"))  # the first screen only, as a visitor sees it


@needs_chromium
def test_browser_map_keeps_each_class_apart_after_a_second_folder_and_an_upload(indexing_app, pages, tmp_path):
    """Grouped by the first folder below the shared one, a second indexed folder and an upload turned
    all of the first folder's photos one colour ("tmp" and "work" were the only groups)."""
    url, photos, extra_root, _ = indexing_app
    second = labelled_folder(extra_root / "second-set", classes=2, per_class=2)
    upload = tmp_path / "map-upload.jpg"
    Image.open(photos / "coffee.jpg").crop((20, 20, 300, 240)).save(upload)
    summary, *_ = Client(url, verbose=False).predict(str(second), [handle_file(str(upload))], api_name="/index")
    assert summary.count("failed 0") == 2, summary
    page = pages(url)
    page.get_by_role("tab", name="Map").click()
    page.locator("#map-resnet50 .map-key").first.wait_for(timeout=60_000)
    keys = {key.inner_text().strip(): key.locator("i").evaluate("i => i.style.background")
            for key in page.locator("#map-resnet50 .map-key").all()}
    classes = {p.name for p in second.iterdir()}
    assert classes | {"photos", "nested", "uploads"} <= set(keys), keys
    assert len({keys[name] for name in classes | {"photos", "nested", "uploads"}}) == len(classes) + 3  # apart
    page.screenshot(path=str(OUTPUT / "app-map-groups.png"), full_page=True)


# Accessibility, checked by axe-core (npm, injected by Playwright) on every tab of the served app, on a
# desktop screen and on a phone's, after a search and with a hit selected (issue 21).
AXE = Path(sys.prefix) / "node" / "node_modules" / "axe-core" / "axe.min.js"  # make setup installs it
needs_axe = needs(AXE.is_file(), "needs axe-core (make setup installs it with npm)")
# Gradio's own markup, which the app cannot name or colour: an empty plot or image box is a div with an
# aria-label and no role.
GRADIOS_OWN = {("aria-prohibited-attr", ".empty.large.unpadded_box")}
RUN_AXE = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
  .filter(v => ['critical', 'serious'].includes(v.impact))
  .flatMap(v => v.nodes.map(n => [v.id, v.impact, n.target.join(' ')]))"""


def broken(page) -> list[list[str]]:
    """The critical and serious violations on the page, but Gradio's own."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(RUN_AXE)
    return [v for v in found if not any(rule == v[0] and part in v[2] for rule, part in GRADIOS_OWN)]


@needs_chromium
@needs_axe
def test_every_tab_has_no_critical_or_serious_violation_the_app_controls(served_app, pages):
    """Before: 8 example buttons with no name (critical), 7 contrast failures (the orange buttons and tabs,
    the grey help text) and 30 thumbnails whose name left out their caption (serious)."""
    url, photos, _ = served_app
    for width, height in ((1366, 900), (390, 844)):
        page = pages(url, width, height)
        upload(page, photos / "coffee.jpg", 8)
        page.locator("#gallery-vgg16 .thumbnail-item").nth(1).click()
        page.locator("#why img").nth(3).wait_for(timeout=60_000)
        found = {"Search": broken(page)}
        for tab, shown in (("Evaluate", "#eval-folder"), ("Map", "#map-resnet50 circle"), ("Robustness", "#edit-kind"),
                           ("Index", "#folder")):
            open_tab(page, tab)
            page.locator(shown).first.wait_for(timeout=60_000)
            # nothing still being computed: Gradio fades a pending output, and faded text fails the contrast
            page.wait_for_function("() => !document.querySelector('.pending')", timeout=60_000)
            found[tab] = broken(page)
        assert not any(found.values()), (width, found)


def open_tab(page, name: str) -> None:
    """A tab by its name; on a narrow screen the last tabs sit in Gradio's "More tabs" menu."""
    tab = page.get_by_role("tab", name=name)
    if tab.is_visible():
        tab.click()
        return
    page.get_by_role("button", name="More tabs").click()
    page.locator(".overflow-dropdown button", has_text=name).click()


@needs_chromium
def test_back_leaves_a_page_opened_without_a_link(served_app, pages):
    """The first example's search pushed its link over the bare address, so Back went to the bare
    address, which searched and pushed again: Back could not leave the app."""
    url, _, _ = served_app
    page = pages(url)  # the first example searched, its link in the address
    assert "q=" in page.url
    page.go_back()
    assert not page.url.startswith(url), page.url
