"""Time from upload to both galleries filled, in a real browser, against the engine's own time for
the same queries.

    python scripts/bench_app.py ../shared/datasets/corel1k [--index 200] [--searches 20] [--k 8]
                                [--precision fp32|int8]

Starts app.py on a temp index of --index images from the folder, Redis off (every query runs
both models), then uploads --searches other images one by one through headless Chromium. Once the
app has stopped, an Engine on the same index searches with the same files (what the app's search
does before the web layer) and the script prints both medians and the web layer's share.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402
from searchcore import Engine, Settings  # noqa: E402
from searchcore.config import MODEL_NAMES, PRECISIONS  # noqa: E402
from searchcore.files.decode import IMAGE_SUFFIXES  # noqa: E402
from searchcore.retrieval.options import SearchOptions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--index", type=int, default=200)
    parser.add_argument("--searches", type=int, default=20)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--app-log", type=Path, default=Path(os.devnull), help="where the app's log goes")
    args = parser.parse_args()
    files = sorted(p for p in args.folder.resolve().rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    indexed, queries = files[::len(files) // args.index][:args.index], []
    queries = [f for f in files[2::len(files) // args.searches] if f not in indexed][:args.searches]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "index"
        folder.mkdir()
        for i, f in enumerate(indexed):
            shutil.copyfile(f, folder / f"{i:05d}{f.suffix}")
        port = free_port()
        env = {**os.environ, "SEARCHCORE_HOME": tmp, "SEARCHCORE_REDIS_URL": "", "SEARCHCORE_PRECISION": args.precision,
               "SEARCHCORE_MODEL_DIR": os.environ.get("SEARCHCORE_MODEL_DIR",
                                                      str(Path.home() / ".cache/searchcore/models"))}
        log = args.app_log.open("w")
        app = subprocess.Popen([sys.executable, "app.py", "--images", str(folder), "--port", str(port)], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=log)
        url = f"http://127.0.0.1:{port}/"
        try:
            while True:
                try:
                    if requests.get(url, timeout=2).ok:
                        break
                except requests.RequestException:
                    assert app.poll() is None, "app exited"
                    time.sleep(1)
            times = search_times(url, queries, args.k)
        finally:
            app.terminate()
            app.wait()
        engine_times = engine_search_times(Settings.from_env(home=Path(tmp), redis_url="",
                                                             precision=args.precision), queries, args.k)
    browser, engine = statistics.median(times), statistics.median(engine_times)
    print(f"{len(indexed)} images indexed, {len(times)} searches, k={args.k}, both models side by side, "
          f"{args.precision}")
    print(f"upload -> both galleries filled: median {browser:.3f} s (min {min(times):.3f}, max {max(times):.3f})")
    print(f"engine search, same files:       median {engine:.3f} s (min {min(engine_times):.3f}, "
          f"max {max(engine_times):.3f})")
    print(f"web layer: {1000 * (browser - engine):.0f} ms over the engine's median")


def engine_search_times(settings: Settings, queries: list[Path], k: int) -> list[float]:
    """The engine's own time per query (read, decode, both models, Milvus, fusion), as the app calls it."""
    times = []
    with Engine(settings) as engine:
        for query in queries:
            start = time.perf_counter()
            engine.search_files([query], SearchOptions(k=k))
            times.append(time.perf_counter() - start)
    return times


# Checked by the page itself at every animation frame: the time (ms since the page began uploading the
# file, i.e. after the test driver has handed it over) once the status names the query and both
# galleries show k hits with their images loaded. Waiting from the test driver instead noticed it up to
# half a second late (Playwright's waits back off to 500 ms).
FILLED = """([name, models, k]) => {
  const upload = performance.getEntriesByType('resource').find(e => e.name.includes('/upload?'));
  const done = (document.querySelector('#status')?.innerText || '').includes(name) && models.every(m => {
    const imgs = [...document.querySelectorAll(`#gallery-${m} .thumbnail-item img`)].slice(0, k);
    return document.querySelectorAll(`#gallery-${m} .caption-label`).length >= k && imgs.length === k &&
      imgs.every(i => i.complete && i.naturalWidth > 0);
  });
  return done && upload ? performance.now() - upload.startTime : false;
}"""


def search_times(url: str, queries: list[Path], k: int) -> list[float]:
    """Seconds from handing the file to the page to both galleries filled, per query."""
    times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(url)
        # the app serves its page while it still indexes at start-up: time searches only once that is over
        page.wait_for_function("() => document.querySelector('#gallery-resnet50') && "
                               "!(document.querySelector('#startup')?.innerText || '').includes('ndexing')",
                               timeout=600_000)
        page.locator("#topk input[type=number]").fill(str(k))
        page.locator("#topk input[type=number]").press("Enter")
        for query in queries:
            with tempfile.TemporaryDirectory() as tmp:
                upload = Path(tmp) / f"{query.parent.name}-{query.name}"
                upload.write_bytes(query.read_bytes())
                page.evaluate("performance.clearResourceTimings()")
                page.set_input_files("#query input[type=file]", str(upload))
                filled = page.wait_for_function(FILLED, arg=[upload.name, list(MODEL_NAMES), k], polling="raf",
                                                timeout=120_000)
                times.append(filled.json_value() / 1000)
                page.wait_for_timeout(300)  # the duplicate `change` and the follow-up events settle
        browser.close()
    return times


if __name__ == "__main__":
    main()
