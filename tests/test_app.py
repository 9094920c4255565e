"""The web app, served for real: its API through gradio_client, its page through headless Chromium."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from gradio_client import Client, handle_file
from PIL import Image

from tests.conftest import ROOT, free_port

CAPTION = re.compile(r"^#\d+ · L2 \d+\.\d\d( · both)?$")
OUTPUT = ROOT / "test-output"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(params=["redis"])
def app(request, cli_env, photo_dir, tmp_path):
    """`python app.py --images PHOTOS` on a free port; yields (url, photo_dir, extra_root).
    With the param "no-redis" the configured Redis is unreachable, as on a Hugging Face Space."""
    extra_root = tmp_path / "more"
    extra_root.mkdir()
    port = free_port()
    env = {**cli_env, "SEARCHCORE_INDEX_ROOTS": str(extra_root), "GRADIO_ANALYTICS_ENABLED": "False"}
    if request.param == "no-redis":
        env["SEARCHCORE_REDIS_URL"] = "redis://127.0.0.1:1/0"
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py", "--images", str(photo_dir), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "app.log").read_text()
        try:
            if requests.get(url, timeout=2).ok:
                break
        except requests.RequestException:
            time.sleep(0.5)
    else:
        pytest.fail("the app did not start: " + (tmp_path / "app.log").read_text())
    yield url, photo_dir, extra_root
    proc.terminate()
    proc.wait(timeout=30)
    log.close()
    if request.param == "no-redis":
        assert (tmp_path / "app.log").read_text().count("unreachable") == 1


def test_search_api_gives_both_models_side_by_side(app):
    url, photos, _ = app
    client = Client(url, verbose=False)
    resnet, vgg, fused, agreement, as_json, status = client.predict(
        handle_file(str(photos / "coffee.jpg")), "Side by side", 5, api_name="/search")
    for gallery in (resnet, vgg):
        assert len(gallery) == 5 and all(CAPTION.match(item["caption"]) for item in gallery)
        assert gallery[0]["caption"] == "#1 · L2 0.00 · both"  # the query itself is indexed
    assert "overlap@5" in agreement and "Jaccard" in agreement and "Kendall τ" in agreement
    shared = {h["id"] for h in as_json["hits"]["resnet50"]} & {h["id"] for h in as_json["hits"]["vgg16"]}
    assert sum("· both" in item["caption"] for item in resnet) == len(shared)
    assert as_json["hits"]["resnet50"][0]["file"] == str((photos / "coffee.jpg").resolve())
    assert {"l2", "cosine", "id", "file"} <= set(as_json["hits"]["vgg16"][0])
    assert "this very image is indexed" in status
    _, _, fused, *_ = client.predict(handle_file(str(photos / "coffee.jpg")), "Fused", 3, api_name="/search")
    assert len(fused) == 3 and fused[0]["caption"].startswith("#1 · cos 1.00")


def test_files_outside_the_roots_are_not_served(app):
    url, photos, _ = app
    for path in ("/etc/passwd", str(ROOT / "app.py")):
        response = requests.get(f"{url}gradio_api/file={path}", timeout=10)
        assert response.status_code in (403, 404), (path, response.status_code)
    assert requests.get(f"{url}gradio_api/file={photos / 'coffee.jpg'}", timeout=10).status_code == 200


@pytest.mark.parametrize("app", ["no-redis"], indirect=True)
def test_bad_uploads_get_a_clear_message_and_the_app_keeps_serving(app, tmp_path):
    url, photos, _ = app
    client = Client(url, verbose=False)
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes((photos / "coffee.jpg").read_bytes()[:3000])
    huge = tmp_path / "huge.png"
    Image.new("1", (10_000, 6_000)).save(huge)
    for path, reason in ((text, "not an image"), (truncated, "truncated"), (huge, "over the limit")):
        resnet, vgg, *_, status = client.predict(handle_file(str(path)), "Side by side", 3, api_name="/search")
        assert (resnet, vgg) == ([], [])
        assert path.name in status and reason in status, status
    too_big = tmp_path / "big.jpg"
    too_big.write_bytes((photos / "coffee.jpg").read_bytes() + os.urandom(21 * 1024 * 1024))
    with pytest.raises(Exception, match="(?i)size|large|limit"):
        client.predict(handle_file(str(too_big)), "Side by side", 3, api_name="/search")
    resnet, *_ = client.predict(handle_file(str(photos / "coffee.jpg")), "ResNet50", 2, api_name="/search")
    assert len(resnet) == 2


def test_index_api_only_under_configured_roots(app, tmp_path):
    url, photos, extra_root = app
    client = Client(url, verbose=False)
    summary, _ = client.predict(str(tmp_path), [], api_name="/index")
    assert "not under an allowed folder" in summary
    (extra_root / "sub").mkdir()
    shutil.copy(photos / "nested" / "chelsea.jpg", extra_root / "sub" / "cat-copy.jpg")
    Image.open(photos / "coffee.jpg").rotate(90, expand=True).save(extra_root / "sub" / "coffee-rotated.jpg")
    (extra_root / "sub" / "broken.png").write_text("nope")
    upload = tmp_path / "upload-crop.jpg"
    Image.open(photos / "nested" / "rocket.jpg").crop((0, 0, 200, 300)).save(upload)
    summary, stats = client.predict(str(extra_root), [handle_file(str(upload)), handle_file(str(photos / "coffee.jpg"))],
                                    api_name="/index")
    assert "indexed 2, already there 0, duplicates 2, failed 1" in summary, summary
    assert "broken.png" in summary and "not an image" in summary
    assert [row[1] for row in stats["data"]] == [10, 10]
    *_, as_json, status = client.predict(handle_file(str(upload)), "Side by side", 1, api_name="/search")
    assert as_json["hits"]["vgg16"][0]["self"] and "upload-crop.jpg" in as_json["hits"]["vgg16"][0]["file"]
    assert client.predict(api_name="/stats")["data"] == stats["data"]


@pytest.mark.skipif(not CHROMIUM.exists() and os.environ.get("CI") != "true",
                    reason="needs Debian's chromium (.ci/run installs it)")
def test_browser_upload_fills_both_galleries(app):
    from playwright.sync_api import sync_playwright

    url, photos, _ = app
    k = 8
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(url)
        page.set_input_files("#query input[type=file]", str(photos / "nested" / "rocket.jpg"))
        for model in ("resnet50", "vgg16"):
            captions = page.locator(f"#gallery-{model} .caption-label")
            captions.nth(k - 1).wait_for(timeout=60_000)
            texts = captions.all_inner_texts()
            assert len(texts) == k and all(CAPTION.match(t) for t in texts), texts
        assert "overlap@8" in page.locator("#agreement").inner_text()
        page.screenshot(path=str(OUTPUT / "app-search.png"), full_page=True)

        page.locator("#gallery-vgg16 .thumbnail-item").nth(1).click()
        details = page.locator("#details")
        details.get_by_text("ResNet50:").wait_for(timeout=30_000)
        chosen = re.search(r"path: (\S+)", details.inner_text()).group(1)
        assert Path(chosen).is_file() and "VGG16: #2" in details.inner_text()
        page.locator("#again").click()
        page.locator("#status").get_by_text(Path(chosen).name).wait_for(timeout=60_000)
        page.locator("#gallery-resnet50 .caption-label").first.get_by_text("#1 · L2 0.00").wait_for(timeout=60_000)
        browser.close()
    assert (OUTPUT / "app-search.png").stat().st_size > 10_000
