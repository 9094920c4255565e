"""The README's screenshot: the app on the CC0 sample photos (scikit-image's) and an edited copy of each
(a mirrored copy and a crop), searched with one of them in Chromium, on a desktop screen and on a phone's;
saved as docs/screenshot.jpg and docs/screenshot-phone.jpg.

    .venv/bin/python scripts/screenshot.py [--out-dir docs] [--query chelsea]

Runs the int8 models in a temporary home (nothing of yours is indexed or changed); needs Debian's
chromium and Playwright (tests/requirements.txt)."""
from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from searchcore.files.samples import sample_files  # noqa: E402
from searchcore.web import startup  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SCREENS = {"screenshot.jpg": {"viewport": {"width": 1366, "height": 900}},
           "screenshot-phone.jpg": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
                                    "device_scale_factor": 2}}


def photos_with_copies(folder: Path) -> None:
    """Each sample photo as a JPEG, and a mirrored copy and a centre crop of 70% of its sides."""
    for path in sample_files():
        image = Image.open(path).convert("RGB")
        image.save(folder / f"{path.stem}.jpg", quality=92)
        ImageOps.mirror(image).save(folder / f"{path.stem}-mirrored.jpg", quality=92)
        w, h = image.size
        image.crop((w * 15 // 100, h * 15 // 100, w * 85 // 100, h * 85 // 100)).save(
            folder / f"{path.stem}-crop.jpg", quality=92)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs")
    parser.add_argument("--query", default="chelsea", help="the sample photo searched with (file stem)")
    parser.add_argument("--k", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        photos_with_copies(photos)
        env = {**os.environ, "SEARCHCORE_HOME": str(Path(tmp) / "home"), "SEARCHCORE_REDIS_URL": "",
               "GRADIO_ANALYTICS_ENABLED": "False"}
        port, log = free_port(), Path(tmp) / "app.log"
        with log.open("w") as out:
            app = subprocess.Popen([sys.executable, "app.py", "--images", str(photos), "--port", str(port),
                                    "--precision", "int8"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            shoot(f"http://127.0.0.1:{port}/", photos / f"{args.query}.jpg", args.k, args.out_dir, app, log)
        finally:
            app.terminate()
            app.wait(timeout=60)
    print(f"wrote {', '.join(str(args.out_dir / name) for name in SCREENS)}")


def shoot(url: str, query: Path, k: int, out_dir: Path, app: subprocess.Popen, log: Path) -> None:
    """Open the link of a search with the query once the app has indexed the photos, wait until both
    galleries show k hits, and save the page's first screen, at each size of SCREENS."""
    short = hashlib.sha256(query.read_bytes()).hexdigest()[:16]
    while startup.OVER not in log.read_text():  # the app's start-up indexing is over
        if app.poll() is not None:
            raise SystemExit(log.read_text())
        time.sleep(0.2)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, screen in SCREENS.items():
            page = browser.new_page(**screen)
            page.goto(f"{url}?q={short}&k={k}")
            page.wait_for_function("() => document.body.dataset.loaded === '1'", timeout=120_000)
            for gallery in ("#gallery-resnet50", "#gallery-vgg16"):  # the hits on screen drawn
                page.wait_for_function(f"""() => [...document.querySelectorAll('{gallery} img')].every(
                    i => i.getBoundingClientRect().top > innerHeight || (i.complete && i.naturalWidth > 0))""",
                                       timeout=120_000)
            # JPEGs well under 1 MB: a Space takes them without LFS
            page.screenshot(path=str(out_dir / name), type="jpeg", quality=85)
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
