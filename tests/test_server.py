"""The URI path on a real Milvus standalone server (the one test file that starts it, so that test runs in
parallel never start two): the store's round trip and index settings, the app and the CLI as two
processes on one server, and the faults they must survive (Milvus SIGKILLed mid-index, Redis killed
mid-index)."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from gradio_client import Client, handle_file

from searchcore import MODEL_NAMES, Engine, Settings
from searchcore.files.decode import read_raw
from searchcore.config import IndexType
from searchcore.storage import store
from searchcore.storage.store import VectorStore, connect

from tests.conftest import (CHROMIUM, REDIS_URL, ROOT, any_page_of_app, crops_of_photos, free_port, needs, run_cli,
                            settings_env, settings_in, start_app, stop_app, write_photos)
from tests.test_store import check_roundtrip, check_within, fill, unit

INDEXER = [sys.executable, "-m", "searchcore", "index"]


@pytest.fixture(scope="module")
def server_app(tmp_path_factory, model_dir, milvus_server):
    """app.py on the Milvus standalone, serving 8 photos; everything under `root` may be indexed and shown.
    Its collections have a prefix of their own, so what other tests do on the server does not matter."""
    root = tmp_path_factory.mktemp("server-app")
    prefix = f"t{uuid.uuid4().hex[:12]}_"
    if milvus_server.proc is None:  # an earlier test left it killed
        milvus_server.start()
    settings = settings_in(root / "home", model_dir, milvus_uri=milvus_server.uri, collection_prefix=prefix,
                           redis_url=REDIS_URL, redis_prefix=f"searchcore-test:{prefix}")
    env = {**settings_env(settings), "SEARCHCORE_INDEX_ROOTS": str(root)}
    photos = write_photos(root / "photos")
    proc, url = start_app(env, photos, root / "app.log")
    yield url, env, root, photos, settings
    stop_app(proc)
    if milvus_server.proc is None:  # a fault test failed before it restarted the server
        milvus_server.start()
    client = connect(milvus_server.uri)
    for name in client.list_collections():
        if name.startswith(prefix):
            client.drop_collection(name)
    client.close()
    cache = redis.Redis.from_url(REDIS_URL)
    keys = list(cache.scan_iter(f"{settings.redis_prefix}*"))
    if keys:
        cache.delete(*keys)


def counts(settings: Settings) -> dict[str, int]:
    client = connect(settings.milvus_uri)
    try:
        return {m: int(client.query(settings.collection(m), filter="", output_fields=["count(*)"],
                                    consistency_level="Strong")[0]["count(*)"]) for m in MODEL_NAMES}
    finally:
        client.close()


def stored_ids(settings: Settings, ids: set[int]) -> dict[str, set[int]]:
    client = connect(settings.milvus_uri)
    try:
        return {m: {int(r["id"]) for r in client.get(settings.collection(m), ids=sorted(ids), output_fields=["id"])}
                for m in MODEL_NAMES}
    finally:
        client.close()


def test_app_serves_searches_while_another_process_indexes(server_app, milvus_server):
    url, env, root, photos, settings = server_app
    folder = crops_of_photos(root / "ninety-six", 12)
    before = counts(settings)
    indexer = subprocess.Popen([*INDEXER, str(folder)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    client = Client(url, verbose=False)
    errors, searches = [], 0
    deadline = time.monotonic() + 900
    while indexer.poll() is None and time.monotonic() < deadline:
        try:
            resnet, vgg, *_, status = client.predict(handle_file(str(photos / "coffee.jpg")), "Side by side", 5,
                                                     api_name="/search")
            if not (len(resnet) == len(vgg) == 5 and "⚠️" not in status):
                errors.append(status)
        except Exception as exc:  # noqa: BLE001 - every failure counts
            errors.append(repr(exc))
        searches += 1
    out, err = indexer.communicate(timeout=60)
    assert indexer.returncode == 0, err
    assert out.strip().startswith("indexed 96, already there 0, duplicates 0, failed 0"), out
    assert errors == [] and searches >= 3, (searches, errors[:3])
    assert counts(settings) == {m: n + 96 for m, n in before.items()}
    ids = {read_raw(p).id for p in folder.iterdir()}
    assert stored_ids(settings, ids) == {"resnet50": ids, "vgg16": ids}
    # the CLI's search on the server finds an indexed image itself first
    query = sorted(folder.iterdir())[7]
    found = json.loads(run_cli(env, "search", str(query), "--top-k", "3", "--json").stdout)
    assert found["hits"]["vgg16"][0]["self"] and found["hits"]["resnet50"][0]["file"] == str(query)


def test_milvus_killed_mid_index_then_restarted_and_the_run_goes_on(server_app, milvus_server, tmp_path):
    """The index run tries a failing call again (SEARCHCORE_MILVUS_PATIENCE) while the server is down and
    restarted, then finishes: nothing lost, nothing twice. The app's searches fail at once meanwhile,
    with one clear line, and work again on the same process once the server is back."""
    url, env, root, photos, settings = server_app
    folder = crops_of_photos(root / "killed", 8, quality=85)
    ids = {read_raw(p).id for p in folder.iterdir()}
    before = counts(settings)
    env = {**env, "SEARCHCORE_BATCH_SIZE": "4", "SEARCHCORE_REDIS_URL": "", "SEARCHCORE_MILVUS_TIMEOUT": "3",
           "SEARCHCORE_MILVUS_PATIENCE": "600"}
    said = tmp_path / "indexer.err"
    with said.open("w") as err:
        indexer = subprocess.Popen([*INDEXER, str(folder)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=err, text=True)
    deadline = time.monotonic() + 300
    while counts(settings)["vgg16"] == before["vgg16"] and time.monotonic() < deadline:
        assert indexer.poll() is None, said.read_text()
        time.sleep(0.2)
    milvus_server.kill()
    while "tried again in" not in said.read_text():  # the run waits for the server, it does not end
        assert indexer.poll() is None and time.monotonic() < deadline, said.read_text()
        time.sleep(0.2)

    client = Client(url, verbose=False)
    resnet, vgg, *_, status = client.predict(handle_file(str(photos / "coffee.jpg")), "Side by side", 3,
                                             api_name="/search")
    assert (resnet, vgg) == ([], []) and f"Milvus at {milvus_server.uri} did not answer" in status, status

    milvus_server.start()
    out, _ = indexer.communicate(timeout=600)
    assert indexer.returncode == 0 and "Traceback" not in said.read_text(), (out, said.read_text())
    assert out.startswith(f"indexed {len(ids)}, already there 0, duplicates 0, failed 0"), out
    assert counts(settings) == {m: n + len(ids) for m, n in before.items()}  # 0 lost, 0 twice
    assert stored_ids(settings, ids) == {"resnet50": ids, "vgg16": ids}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the same app process, not restarted
        resnet, vgg, *_, status = client.predict(handle_file(str(photos / "coffee.jpg")), "Side by side", 3,
                                                 api_name="/search")
        if len(resnet) == 3:
            break
        time.sleep(0.25)
    assert len(resnet) == len(vgg) == 3 and "this very image is indexed" in status, status


def test_an_index_run_outlives_a_paused_milvus(tmp_path, model_dir, milvus_uri, milvus_server, many_photos):
    """SIGSTOP the server once the first batch is written: the next call passes its deadline, the run
    says it tries again, the server goes on (SIGCONT) at that word, and the run ends whole."""
    settings = settings_in(tmp_path / "home", model_dir, milvus_uri=milvus_uri, milvus_timeout=2.0,
                           milvus_patience=300.0, collection_prefix=f"paused_{os.getpid()}_")
    paused, resumed = [], []

    class ResumeOnRetry(logging.Handler):
        def emit(self, record):
            if "tried again in" in record.getMessage() and paused and not resumed:
                for pid in milvus_server.pids():
                    os.kill(pid, signal.SIGCONT)
                resumed.append(record.getMessage())

    def pause_after_the_first_batch(done: int, total: int) -> None:
        if done >= 16 and not paused:
            for pid in milvus_server.pids():
                os.kill(pid, signal.SIGSTOP)
            paused.append(done)

    handler = ResumeOnRetry()
    logging.getLogger("searchcore").addHandler(handler)
    try:
        with Engine(settings) as engine:
            report = engine.index([many_photos], on_progress=pause_after_the_first_batch)
            engine.settle()
            rows = {name: (m.store.count(), m.dba.count()) for name, m in engine.models.items()}
    finally:
        logging.getLogger("searchcore").removeHandler(handler)
        for pid in milvus_server.pids():
            os.kill(pid, signal.SIGCONT)
    assert paused and resumed, (paused, resumed)
    assert (report.indexed, report.failed) == (48, []), report.summary()
    assert rows == {"resnet50": (48, 48), "vgg16": (48, 48)}  # nothing lost, nothing twice


@pytest.fixture
def own_redis(tmp_path: Path):
    """A Redis server of this test's own (the machine's shared one is never killed)."""
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    yield proc, client, f"redis://127.0.0.1:{port}/0"
    proc.kill()
    proc.wait()


def test_redis_killed_mid_index_goes_on_without_the_cache_and_says_so_once(cli_env, some_photos, own_redis):
    proc, client, url = own_redis
    env = {**cli_env, "SEARCHCORE_REDIS_URL": url, "SEARCHCORE_BATCH_SIZE": "4"}
    indexer = subprocess.Popen([*INDEXER, str(some_photos)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while client.dbsize() == 0 and time.monotonic() < deadline:
        assert indexer.poll() is None, indexer.communicate()
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    out, err = indexer.communicate(timeout=300)
    assert indexer.returncode == 0, err
    assert out.strip().startswith("indexed 24, already there 0, duplicates 0, failed 0"), out
    warnings = [line for line in err.splitlines() if "Redis" in line]
    assert len(warnings) == 1 and "unreachable" in warnings[0] and "without the embedding cache" in warnings[0], err


def test_hnsw_settings_reach_the_index_on_the_server(tmp_path, model_dir, milvus_uri):
    """What the server reports of each collection's index (Milvus Lite's describe_index does not echo
    build parameters): the M and efConstruction that the settings chose."""
    prefix = f"t{uuid.uuid4().hex[:12]}_"
    chosen = settings_in(tmp_path, model_dir, milvus_uri=milvus_uri, collection_prefix=prefix, hnsw_m=8,
                         hnsw_ef_construction=64)
    client = store.connect(milvus_uri)
    try:
        with Engine(chosen, models=["vgg16"]) as engine:
            for model in engine.models.values():
                for collection in (model.store.name, model.dba.name):
                    index = client.describe_index(collection, "vector")
                    assert (index["index_type"], int(index["M"]), int(index["efConstruction"])) == ("HNSW", 8, 64), index
    finally:
        for name in client.list_collections():
            if name.startswith(prefix):
                client.drop_collection(name)
        client.close()


@pytest.mark.parametrize("index_type", [IndexType.IVF_SQ8, IndexType.DISKANN])
def test_each_index_type_is_made_and_searched_on_the_server(milvus_uri, index_type):
    """SEARCHCORE_INDEX_TYPE on a Milvus server: the index is the one chosen, and a sealed collection
    finds each vector itself first with that index's search parameters."""
    with collection_on(milvus_uri) as (client, name):
        chosen = VectorStore(client, name, 16, "abc", index_type=index_type)
        vectors = unit(300, 16, 5)
        fill(chosen, vectors)
        chosen.flush()
        assert client.describe_index(name, "vector")["index_type"] == index_type.value
        assert [[h.id for h in hits] for hits in chosen.search(vectors[:20], 1)] == [[n + 1] for n in range(20)]


@contextlib.contextmanager
def collection_on(uri: str):
    """(a client of the server, a new collection name), the collection dropped afterwards."""
    client = store.connect(uri)
    name = f"t{uuid.uuid4().hex[:12]}_model"
    try:
        yield client, name
    finally:
        client.drop_collection(name)
        client.close()


def test_server_uri_path_on_milvus_standalone(milvus_uri):
    """The URI path, against a real Milvus standalone server."""
    with collection_on(milvus_uri) as (client, name):
        check_roundtrip(client, name)


@pytest.mark.parametrize("exact_rows", [store.EXACT_ROWS, 0], ids=["rows-compared", "filtered-index"])
def test_a_search_within_a_folder_is_exact_on_the_server(milvus_uri, exact_rows, monkeypatch):
    """The folder filter on the standalone server: exactly the folder's k nearest, as brute force finds."""
    monkeypatch.setattr(store, "EXACT_ROWS", exact_rows)
    with collection_on(milvus_uri) as (client, name):
        check_within(client, name)


@needs(CHROMIUM.exists(), "needs Debian's chromium (.ci/run installs it)")
def test_the_page_says_it_waits_for_milvus_and_turns_into_the_app_when_milvus_answers(
        tmp_path, model_dir, milvus_server, pages):
    """A Milvus that did not answer at start made the app exit at once, with no page."""
    milvus_server.kill()
    settings = settings_in(tmp_path / "home", model_dir, milvus_uri=milvus_server.uri,
                           collection_prefix=f"w{uuid.uuid4().hex[:12]}_")
    proc, url = any_page_of_app(settings_env(settings), tmp_path / "app.log")
    try:
        page = pages(url, loaded=False)  # the page that says what the app waits for
        said = page.locator("#waiting")
        said.get_by_text(f"Waiting for Milvus: Milvus at {milvus_server.uri} did not answer").wait_for(timeout=120_000)
        milvus_server.start()
        page.locator("#query").wait_for(timeout=240_000)  # the page loaded the app by itself
        assert "Waiting for Milvus" in (tmp_path / "app.log").read_text()
    finally:
        stop_app(proc)
