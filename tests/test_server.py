"""The URI path on a real Milvus standalone server: the app and the CLI as two processes on one
server, and the faults they must survive (Milvus SIGKILLed mid-index, Redis killed mid-index)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from gradio_client import Client, handle_file

from searchcore import Settings
from searchcore.decode import read_raw
from searchcore.store import connect

from tests.conftest import (REDIS_URL, ROOT, crops_of_photos, free_port, run_cli, settings_env, start_app, stop_app,
                            write_photos)

INDEXER = [sys.executable, "-m", "searchcore", "index"]


@pytest.fixture(scope="module")
def server_app(tmp_path_factory, model_dir, milvus_server):
    """app.py on the Milvus standalone, serving 8 photos; everything under `root` may be indexed and shown."""
    root = tmp_path_factory.mktemp("server-app")
    prefix = f"t{uuid.uuid4().hex[:12]}_"
    settings = replace(Settings.from_env(), home=root / "home", model_dir=model_dir, milvus_uri=milvus_server.uri,
                       collection_prefix=prefix, redis_url=REDIS_URL, redis_prefix=f"searchcore-test:{prefix}")
    env = {**settings_env(settings), "SEARCHCORE_INDEX_ROOTS": str(root)}
    photos = write_photos(root / "photos")
    proc, url = start_app(env, photos, root / "app.log")
    yield url, env, root, photos
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


def counts(uri: str, env: dict[str, str]) -> dict[str, int]:
    client = connect(uri)
    prefix = env["SEARCHCORE_COLLECTION_PREFIX"]
    try:
        return {m: int(client.query(prefix + m, filter="", output_fields=["count(*)"],
                                    consistency_level="Strong")[0]["count(*)"]) for m in ("resnet50", "vgg16")}
    finally:
        client.close()


def stored_ids(uri: str, env: dict[str, str], ids: set[int]) -> dict[str, set[int]]:
    client = connect(uri)
    try:
        return {m: {int(r["id"]) for r in client.get(env["SEARCHCORE_COLLECTION_PREFIX"] + m, ids=sorted(ids),
                                                      output_fields=["id"])} for m in ("resnet50", "vgg16")}
    finally:
        client.close()


def test_app_serves_searches_while_another_process_indexes_200_images(server_app, milvus_server):
    url, env, root, photos = server_app
    folder = crops_of_photos(root / "two-hundred", 25)
    before = counts(milvus_server.uri, env)
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
    assert out.strip().startswith("indexed 200, already there 0, duplicates 0, failed 0"), out
    assert errors == [] and searches >= 3, (searches, errors[:3])
    assert counts(milvus_server.uri, env) == {m: n + 200 for m, n in before.items()}
    ids = {read_raw(p).id for p in folder.iterdir()}
    assert stored_ids(milvus_server.uri, env, ids) == {"resnet50": ids, "vgg16": ids}
    # the CLI's search on the server finds an indexed image itself first
    query = sorted(folder.iterdir())[7]
    found = json.loads(run_cli(env, "search", str(query), "--top-k", "3", "--json").stdout)
    assert found["hits"]["vgg16"][0]["self"] and found["hits"]["resnet50"][0]["file"] == str(query)


def test_milvus_killed_mid_index_then_restarted(server_app, milvus_server):
    url, env, root, photos = server_app
    folder = crops_of_photos(root / "killed", 8, quality=85)
    ids = {read_raw(p).id for p in folder.iterdir()}
    before = counts(milvus_server.uri, env)
    env = {**env, "SEARCHCORE_BATCH_SIZE": "4", "SEARCHCORE_REDIS_URL": ""}
    indexer = subprocess.Popen([*INDEXER, str(folder)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while counts(milvus_server.uri, env)["vgg16"] == before["vgg16"] and time.monotonic() < deadline:
        assert indexer.poll() is None, indexer.communicate()
        time.sleep(0.2)
    milvus_server.kill()
    out, err = indexer.communicate(timeout=300)
    assert indexer.returncode == 3, (out, err)
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"Milvus at {milvus_server.uri} did not answer" in errors[0], err

    client = Client(url, verbose=False)
    resnet, vgg, *_, status = client.predict(handle_file(str(photos / "coffee.jpg")), "Side by side", 3,
                                             api_name="/search")
    assert (resnet, vgg) == ([], []) and f"Milvus at {milvus_server.uri} did not answer" in status, status

    milvus_server.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the same app process, not restarted
        resnet, vgg, *_, status = client.predict(handle_file(str(photos / "coffee.jpg")), "Side by side", 3,
                                                 api_name="/search")
        if len(resnet) == 3:
            break
        time.sleep(2)
    assert len(resnet) == len(vgg) == 3 and "this very image is indexed" in status, status

    rerun = run_cli(env, "index", str(folder))
    assert rerun.returncode == 0, rerun.stderr
    indexed, already = (int(part.split()[-1]) for part in rerun.stdout.split(",")[:2])
    assert already > 0 and indexed + already == len(ids), rerun.stdout
    assert counts(milvus_server.uri, env) == {m: n + len(ids) for m, n in before.items()}  # 0 lost, 0 twice
    assert stored_ids(milvus_server.uri, env, ids) == {"resnet50": ids, "vgg16": ids}


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


def test_redis_killed_mid_index_goes_on_without_the_cache_and_says_so_once(cli_env, many_photos, own_redis):
    proc, client, url = own_redis
    env = {**cli_env, "SEARCHCORE_REDIS_URL": url, "SEARCHCORE_BATCH_SIZE": "4"}
    indexer = subprocess.Popen([*INDEXER, str(many_photos)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while client.dbsize() == 0 and time.monotonic() < deadline:
        assert indexer.poll() is None, indexer.communicate()
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    out, err = indexer.communicate(timeout=300)
    assert indexer.returncode == 0, err
    assert out.strip().startswith("indexed 48, already there 0, duplicates 0, failed 0"), out
    warnings = [line for line in err.splitlines() if "Redis" in line]
    assert len(warnings) == 1 and "unreachable" in warnings[0] and "without the embedding cache" in warnings[0], err
