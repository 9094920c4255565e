"""Real parts only: built ONNX models (cached), Milvus Lite in temp dirs, the Redis on 127.0.0.1:6379."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import redis
import skimage.data
from PIL import Image

from searchcore import MODEL_NAMES, Engine, Settings
from searchcore.build import build_models

ROOT = Path(__file__).resolve().parent.parent
COREL = ROOT.parent / "shared" / "datasets" / "corel1k"
REDIS_URL = "redis://127.0.0.1:6379/0"
SAMPLES = Path(skimage.data.__file__).parent
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
          "hubble_deep_field.jpg", "retina.jpg", "ihc.png")


@pytest.fixture(scope="session")
def model_dir() -> Path:
    directory = Settings.from_env().model_dir
    build_models(directory, MODEL_NAMES)
    return directory


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"searchcore-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def settings(tmp_path: Path, model_dir: Path, redis_prefix: str) -> Settings:
    return replace(Settings.from_env(), home=tmp_path, model_dir=model_dir, milvus_uri=str(tmp_path / "milvus.db"),
                   redis_url=REDIS_URL, redis_prefix=redis_prefix)


@pytest.fixture
def engine(settings: Settings):
    eng = Engine(settings)
    yield eng
    eng.close()


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    """Environment for `python -m searchcore` subprocesses using the same temp store and prefix."""
    return {**os.environ, "SEARCHCORE_HOME": str(settings.home), "SEARCHCORE_MODEL_DIR": str(settings.model_dir),
            "SEARCHCORE_MILVUS_URI": settings.milvus_uri, "SEARCHCORE_REDIS_URL": settings.redis_url,
            "SEARCHCORE_REDIS_PREFIX": settings.redis_prefix, "PYTHONPATH": str(ROOT)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "searchcore", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """Real photos (scikit-image's CC0 / public-domain samples) as JPEG files in a folder tree."""
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    for i, name in enumerate(PHOTOS):
        target = folder / ("nested" if i % 2 else "") / f"{Path(name).stem}.jpg"
        Image.open(SAMPLES / name).convert("RGB").save(target, quality=92)
    return folder


@pytest.fixture
def many_photos(tmp_path: Path) -> Path:
    """48 distinct real-photo images: six crops of each sample photo."""
    folder = tmp_path / "many"
    folder.mkdir()
    for name in PHOTOS:
        image = Image.open(SAMPLES / name).convert("RGB")
        w, h = image.size
        for j in range(6):
            box = (j * w // 20, j * h // 30, w - j * w // 25, h - j * h // 35)
            image.crop(box).save(folder / f"{Path(name).stem}-{j}.jpg", quality=90)
    return folder
