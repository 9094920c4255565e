"""Real parts only: built ONNX models (cached), Milvus Lite in temp dirs, the Redis on 127.0.0.1:6379.

Hermetic: no SEARCHCORE_* variable of the developer's reaches a test (a test sets what it needs), and
the fixtures run the int8 builds (about 3x faster) unless fp32 is what a test is about. In CI (CI=true)
a missing chromium or a missing ../shared fails instead of skipping."""
from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import redis
import requests
import skimage.data
from PIL import Image

from searchcore import MODEL_NAMES, Engine, Settings
from searchcore.config import PRECISIONS
from searchcore.encoding.build import build_models
from searchcore.web.startup import FAILED as STARTUP_FAILED, OVER as STARTUP_OVER
from searchcore.web.waiting import TITLE as WAITING_TITLE

from tests.milvus_standalone import MilvusStandalone

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"
COREL = ROOT.parent / "shared" / "datasets" / "corel1k"
REDIS_URL = "redis://127.0.0.1:6379/0"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SAMPLES = Path(skimage.data.__file__).parent
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
          "hubble_deep_field.jpg", "retina.jpg", "ihc.png")


# where the built models are cached is the developer's choice (read before the variables go, and only
# that); what they compute is not
MODEL_DIR = Path(os.environ.get("SEARCHCORE_MODEL_DIR") or
                 Path(os.environ.get("SEARCHCORE_HOME") or Path.home() / ".cache" / "searchcore") / "models").expanduser()
# evaluation vectors kept across runs, beside the model cache, named as evaluate.py names them (the
# files' paths, sizes and mtimes, and each model build's cache key): a rebuilt model is embedded anew
EVALUATIONS = MODEL_DIR.parent / "test-evaluations"
FIXTURE_PRECISION = "int8"


@pytest.fixture(scope="session", autouse=True)
def hermetic_environment():
    """Every SEARCHCORE_* variable and SPACE_ID removed for the whole run (SEARCHCORE_PRECISION=int8,
    _REGIONS, _TURNS, _MAX_PIXELS, _INDEX_ROOTS or a Space's id would change what the tests see)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("SEARCHCORE_") or n == "SPACE_ID"]:
            patch.delenv(name)
        patch.setenv("SEARCHCORE_PERSISTENT_DIR", "")  # a /data on the machine is not the tests' home
        yield


def needs(present: bool, reason: str):
    """Skip when something the test needs is missing, outside CI only: in CI its absence fails the test."""
    return pytest.mark.skipif(not present and not IN_CI, reason=reason)


def needs_corel(why: str):
    """For a test that needs Corel-1k's real photos (`why`: what the stand-in labelled folders lack)."""
    return needs(COREL.is_dir(), f"needs ../shared/datasets/corel1k: {why}")


@pytest.fixture(scope="session")
def model_dir(hermetic_environment) -> Path:
    """Both models in both precisions, built once; test workers running at once build one at a time."""
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    with (MODEL_DIR / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build_models(MODEL_DIR, MODEL_NAMES, precisions=PRECISIONS)
    return MODEL_DIR


def settings_in(home: Path, model_dir: Path, **overrides) -> Settings:
    """The defaults (no SEARCHCORE_* variables), a home with its own Milvus Lite, no Redis, int8 builds."""
    chosen = {"home": home, "model_dir": model_dir, "milvus_uri": str(home / "milvus.db"), "redis_url": "",
              "precision": FIXTURE_PRECISION, **overrides}
    return replace(Settings.from_env(), **chosen)


def delete_redis_keys(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"searchcore-test:{uuid.uuid4().hex}:"
    yield prefix
    delete_redis_keys(prefix)


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory, model_dir: Path) -> Settings:
    """Settings shared by one test module (its own home, Milvus Lite file and Redis prefix), for tests
    that only read what one app or engine holds."""
    home = tmp_path_factory.mktemp("module")
    prefix = f"searchcore-test:{uuid.uuid4().hex}:"
    yield settings_in(home, model_dir, redis_url=REDIS_URL, redis_prefix=prefix)
    delete_redis_keys(prefix)


@pytest.fixture
def settings(tmp_path: Path, model_dir: Path, redis_prefix: str) -> Settings:
    return settings_in(tmp_path, model_dir, redis_url=REDIS_URL, redis_prefix=redis_prefix)


@pytest.fixture
def engine(settings: Settings):
    eng = Engine(settings)
    yield eng
    eng.close()


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    """Environment for `python -m searchcore` subprocesses using the same temp store and prefix."""
    return settings_env(settings)


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory) -> MilvusStandalone:
    """One real Milvus standalone for the whole run (fault tests kill and restart it; `milvus_uri` and
    test_server's app start it again when a test left it killed). Killed at the end: nothing is kept."""
    server = MilvusStandalone(tmp_path_factory.mktemp("milvus-standalone") / "data").start()
    yield server
    server.kill()


@pytest.fixture
def milvus_uri(milvus_server: MilvusStandalone) -> str:
    """The standalone's URI, the server started again first if an earlier test left it killed."""
    if milvus_server.proc is None:
        milvus_server.start()
    return milvus_server.uri


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium, started once for the whole run; each test gets contexts of its own (`pages`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def pages(chromium):
    """pages(url, width, height): a page in a fresh browser context (own history, storage and cache) at
    that size, opened at url and, with `loaded`, once the app's first load is over (its link restored or
    its first example searched: the page marks it); every context this test opened is closed after it."""
    contexts = []

    def open_page(url: str, width: int = 1500, height: int = 1100, loaded: bool = True):
        context = chromium.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.goto(url)
        if loaded:
            page.wait_for_function("() => document.body.dataset.loaded === '1'", timeout=120_000)
        return page
    yield open_page
    for context in contexts:
        context.close()


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment for `python -m searchcore` or app.py subprocesses with these settings."""
    return {**os.environ, "SEARCHCORE_HOME": str(settings.home), "SEARCHCORE_MODEL_DIR": str(settings.model_dir),
            "SEARCHCORE_MILVUS_URI": settings.milvus_uri, "SEARCHCORE_REDIS_URL": settings.redis_url,
            "SEARCHCORE_REDIS_PREFIX": settings.redis_prefix, "SEARCHCORE_COLLECTION_PREFIX": settings.collection_prefix,
            "SEARCHCORE_PRECISION": settings.precision, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False"}


def start_app(env: dict[str, str], images: Path, log_path: Path, indexed: bool = True) -> tuple[subprocess.Popen, str]:
    """`python app.py --images IMAGES` on a free port, once its own page answers (and, with `indexed`, once
    its start-up indexing is over: the page is served while it runs); (process, url)."""
    port = free_port()
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "app.py", "--images", str(images), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        alive = proc.poll() is None
        said = log_path.read_text()  # after the poll: all that a process that died said
        assert alive and STARTUP_FAILED not in said, said
        try:
            up = requests.get(f"{url}config", timeout=2)  # the app's own page, not the one that says it waits
            if up.ok and up.json().get("title") != WAITING_TITLE and (not indexed or STARTUP_OVER in said):
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the app did not start: " + log_path.read_text())


def any_page_of_app(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """`python app.py` on a free port, once any page (the waiting one, say) answers there."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if requests.get(f"{url}config", timeout=2).ok:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(log.read_text())


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "searchcore", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def write_photos(folder: Path) -> Path:
    """Real photos (scikit-image's CC0 / public-domain samples) as JPEG files in a folder tree."""
    (folder / "nested").mkdir(parents=True)
    for i, name in enumerate(PHOTOS):
        target = folder / ("nested" if i % 2 else "") / f"{Path(name).stem}.jpg"
        Image.open(SAMPLES / name).convert("RGB").save(target, quality=92)
    return folder


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    return write_photos(tmp_path / "photos")


def labelled_folder(folder: Path, classes: int = 5, per_class: int = 8) -> Path:
    """A labelled folder (one subfolder per class) of real photos: copies of the first images of Corel-1k's
    first classes when the dataset is there, else crops of the sample photos."""
    if COREL.is_dir():
        for source in sorted(p for p in COREL.iterdir() if p.is_dir())[:classes]:
            (folder / source.name).mkdir(parents=True)
            for image in sorted(source.glob("*.jpg"))[:per_class]:
                (folder / source.name / image.name).write_bytes(image.read_bytes())
        return folder
    # no dataset: `per_class` crops of the sample photos per class, photo n in class n % classes (some
    # classes hold two photos, so the models rank a class's images differently and the evaluation has
    # disagreements to show)
    crops = crops_of_photos(folder.parent / f"{folder.name}-crops", per_photo=per_class)
    members = {c: [Path(name).stem for n, name in enumerate(PHOTOS) if n % classes == c] for c in range(classes)}
    for c, stems in members.items():
        (folder / f"class{c}").mkdir(parents=True)
        for j in range(per_class):
            name = f"{stems[j % len(stems)]}-{j}.jpg"
            (crops / name).rename(folder / f"class{c}" / name)
    shutil.rmtree(crops)
    return folder


def crops_of_photos(folder: Path, per_photo: int, quality: int = 90) -> Path:
    """len(PHOTOS) * per_photo distinct real-photo images: crops of each sample photo, 320x240.
    Folders made with another JPEG quality share no bytes with this one."""
    folder.mkdir(parents=True)
    for name in PHOTOS:
        image = Image.open(SAMPLES / name).convert("RGB")
        w, h = image.size
        for j in range(per_photo):
            box = (j * w // (3 * per_photo), j * h // (5 * per_photo), w - j * w // (4 * per_photo),
                   h - j * h // (6 * per_photo))
            image.crop(box).resize((320, 240)).save(folder / f"{Path(name).stem}-{j}.jpg", quality=quality)
    return folder


@pytest.fixture
def many_photos(tmp_path: Path) -> Path:
    """48 distinct real-photo images: six crops of each sample photo."""
    return crops_of_photos(tmp_path / "many", 6)


@pytest.fixture
def some_photos(tmp_path: Path) -> Path:
    """24 distinct real-photo images, three crops of each sample photo: distractors where their number
    is not what a test is about."""
    return crops_of_photos(tmp_path / "some", 3)
