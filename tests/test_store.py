"""Milvus Lite in a temp dir (the same code against a Milvus server: test_server.py)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from searchcore import Engine, Settings
from searchcore.config import IndexType
from searchcore.storage import store
from searchcore.storage.store import StoreMismatchError, VectorStore
from tests.conftest import ROOT, SAMPLES


def unit(rows: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fill(vs: VectorStore, vectors: np.ndarray) -> None:
    vs.upsert([{"id": i + 1, "vector": v.tolist(), "path": f"/img/{i}.jpg", "sha256": f"{i:064x}"}
               for i, v in enumerate(vectors)])


def check_roundtrip(client, name: str = "t_model") -> None:
    vs = VectorStore(client, name, 16, "abc")
    vectors = unit(50, 16, 0)
    fill(vs, vectors)
    fill(vs, vectors)  # upserting the same ids again adds nothing
    assert vs.count() == 50
    hits = vs.search(vectors[7:8], 5)[0]
    assert hits[0].id == 8 and hits[0].path == "/img/7.jpg"
    assert hits[0].l2 == pytest.approx(0.0, abs=1e-3) and hits[0].cosine == pytest.approx(1.0, abs=1e-5)
    expected = np.linalg.norm(vectors - vectors[7], axis=1)
    for h in hits:
        assert h.l2 == pytest.approx(expected[h.id - 1], abs=1e-4)
        assert h.cosine == pytest.approx(float(vectors[h.id - 1] @ vectors[7]), abs=1e-4)
    assert set(vs.existing([1, 2, 999])) == {1, 2}
    np.testing.assert_allclose(vs.vectors([3])[3], vectors[2], atol=1e-6)
    assert sorted(vs.ids_under("/img")) == list(range(1, 51))
    assert vs.delete([1, 2]) == 2 and vs.count() == 48


def test_lite_roundtrip_l2_and_cosine(tmp_path: Path):
    client = store.connect(str(tmp_path / "a" / "m.db"))
    check_roundtrip(client)
    client.close()


def test_a_folder_holds_only_its_own_files_whatever_its_name(tmp_path: Path):
    """`%` and `_` in a folder's name are its own characters: removing `a_b` or `100%` leaves `axb` and
    `100x` alone (in Milvus' `like` they match any text)."""
    client = store.connect(str(tmp_path / "m.db"))
    vs = VectorStore(client, "t_folders", 16, "abc")
    folders = ["/img/a_b", "/img/axb", "/img/100%", "/img/100x", "/img/100%/deeper", "/img/a_bc"]
    vs.upsert([{"id": n + 1, "vector": v.tolist(), "path": f"{folder}/{n}.jpg", "sha256": f"{n:064x}"}
               for n, (folder, v) in enumerate(zip(folders, unit(len(folders), 16, 3)))])
    assert sorted(vs.ids_under("/img/a_b")) == [1]
    assert sorted(vs.ids_under("/img/100%")) == [3, 5]
    assert sorted(vs.ids_under("/img/100%/deeper/4.jpg")) == [5]
    client.close()


# Folders of one collection: names with Milvus' wildcards, a quote and accents, and neighbours that
# share their first characters; 3,000 rows in all, so that a folder is a small part of the index.
FOLDER_SIZES = {"/img/a_b": 40, "/img/axb": 500, "/img/100%": 30, "/img/100%/deeper": 10, "/img/100x": 600,
                '/img/q"uote': 20, "/img/été": 25, "/img/a_bc": 1775}


def check_within(client, name: str = "t_within", k: int = 10) -> None:
    """A search within a folder gives exactly the k nearest rows of that folder and its subfolders, as
    brute force over their vectors does, on the sealed (indexed) collection: whether the folder's rows
    are compared one by one (up to store.EXACT_ROWS) or searched with the filtered index."""
    vs = VectorStore(client, name, 64, "abc")
    paths = [f"{folder}/{n}.jpg" for folder, size in FOLDER_SIZES.items() for n in range(size)]
    vectors = unit(len(paths), 64, 5)
    vs.upsert([{"id": n + 1, "vector": v.tolist(), "path": p, "sha256": f"{n:064x}"}
               for n, (p, v) in enumerate(zip(paths, vectors))])
    vs.flush()
    queries = unit(4, 64, 6)
    for folder in FOLDER_SIZES:
        inside = np.array([p.startswith(folder + "/") for p in paths])
        found = vs.search(queries, k, under=folder)
        for query, hits in zip(queries, found):
            cosines = np.where(inside, vectors @ query, -np.inf)
            expected = [int(i) + 1 for i in np.argsort(-cosines)[:min(k, int(inside.sum()))]]
            assert [h.id for h in hits] == expected, folder
            assert all(h.path.startswith(folder + "/") for h in hits)
    assert vs.search(queries[:1], 5, under="/img/none")[0] == []


@pytest.mark.parametrize("exact_rows", [store.EXACT_ROWS, 0], ids=["rows-compared", "filtered-index"])
def test_a_search_within_a_folder_is_exact_whatever_its_name(tmp_path: Path, exact_rows, monkeypatch):
    monkeypatch.setattr(store, "EXACT_ROWS", exact_rows)
    client = store.connect(str(tmp_path / "m.db"))
    check_within(client)
    client.close()


def test_many_query_rows_go_in_requests_of_a_bounded_size(tmp_path: Path, monkeypatch):
    """A robustness run's 360 queries in one request outlasted Milvus Lite's timeout: searches go
    SEARCH_CHUNK rows per request, and the answers stay in query order."""
    client = store.connect(str(tmp_path / "m.db"))
    vs = VectorStore(client, "t_chunks", 16, "abc")
    vectors = unit(150, 16, 1)
    fill(vs, vectors)
    requests = []
    real = client.search
    monkeypatch.setattr(client, "search", lambda *a, **kw: requests.append(len(kw["data"])) or real(*a, **kw))
    found = vs.search(vectors, 1)
    assert requests == [store.SEARCH_CHUNK, store.SEARCH_CHUNK, 150 - 2 * store.SEARCH_CHUNK]
    assert [hits[0].id for hits in found] == list(range(1, 151))
    client.close()


def test_a_search_while_milvus_lite_flushes_sees_every_row(tmp_path: Path, monkeypatch):
    """Milvus Lite's flush swaps in an empty memtable, then opens a new write-ahead log, then writes the
    frozen rows to a segment: a search in between found none of them (the page's searches while an index
    run's collections were sealed). The search is started inside that window, where the new log is made;
    it must wait for the flush and then find all 50 rows."""
    from milvus_lite.engine import collection as lite_collection
    uri = str(tmp_path / "m.db")
    client = store.connect(uri)
    vs = VectorStore(client, "t_flush", 16, "abc", uri)
    vectors = unit(50, 16, 3)
    fill(vs, vectors)
    found: list[list] = []
    searchers: list[threading.Thread] = []
    searched = threading.Event()  # the search returned or raised
    lock = vs.lite_lock
    new_log = lite_collection.WAL

    def search() -> None:
        try:
            found.extend(vs.search(vectors[:1], 50))
        finally:
            with lock.changed:
                searched.set()
                lock.changed.notify_all()

    def new_log_with_a_search_inside(**kwargs):
        searchers.append(threading.Thread(target=search))
        searchers[-1].start()
        with lock.changed:  # the search is done, or waits for this flush
            assert lock.changed.wait_for(lambda: searched.is_set() or lock.readers_waiting, 60)
        return new_log(**kwargs)

    monkeypatch.setattr(lite_collection, "WAL", new_log_with_a_search_inside)
    vs.flush()
    searchers[-1].join(60)
    assert not searchers[-1].is_alive()
    assert len(found[0]) == 50
    assert vs.count() == 50
    client.close()


def test_reopened_collection_is_loaded_and_checked(tmp_path: Path):
    uri = str(tmp_path / "m.db")
    client = store.connect(uri)
    fill(VectorStore(client, "t_model", 16, "abc"), unit(5, 16, 1))
    store.disconnect(client, uri)  # Lite's server stopped: the next client reads the folder anew
    client = store.connect(uri)
    assert VectorStore(client, "t_model", 16, "abc").count() == 5
    with pytest.raises(StoreMismatchError, match="another model build"):
        VectorStore(client, "t_model", 16, "another-onnx")
    client.close()


@pytest.mark.parametrize("m, ef", [(0, 200), (4096, 200), (16, 0)])
def test_bad_hnsw_settings_are_refused_before_any_collection_is_created(tmp_path, m, ef, monkeypatch):
    """SEARCHCORE_HNSW_M / SEARCHCORE_HNSW_EF_CONSTRUCTION, as an operator sets them: refused when read,
    before any model or Milvus is opened; and a store given them creates nothing."""
    monkeypatch.setenv("SEARCHCORE_HNSW_M", str(m))
    monkeypatch.setenv("SEARCHCORE_HNSW_EF_CONSTRUCTION", str(ef))
    with pytest.raises(ValueError, match=f"HNSW {'M' if m != 16 else 'efConstruction'}="):
        Settings.from_env()
    client = store.connect(str(tmp_path / "m.db"))
    with pytest.raises(ValueError, match="HNSW"):
        VectorStore(client, "t_model", 16, "abc", hnsw=(m, ef))
    assert client.list_collections() == []  # nothing half-made that would break the next load
    client.close()


def test_a_closed_engine_lets_go_of_its_milvus_lite_folder(settings):
    """Milvus Lite runs in the process that opened it and kept its folder (and its lock) after the client
    closed: another process could not open it, and a temp folder removed after close failed in
    `make bench` ("Directory not empty: 'partitions'")."""
    with Engine(settings) as engine:
        assert engine.index([SAMPLES / "coffee.png"]).indexed == 1
    code = ("import sys; from searchcore.storage import store; c = store.connect(sys.argv[1]); "
            "print(c.query('images_vgg16_int8', filter='', output_fields=['count(*)'])[0]['count(*)'])")
    other = subprocess.run([sys.executable, "-c", code, settings.milvus_uri], capture_output=True, text=True,
                           cwd=ROOT, timeout=120)
    assert other.stdout.strip() == "1", other.stderr[-2000:]
    shutil.rmtree(settings.milvus_uri)
    assert not Path(settings.milvus_uri).exists()


def test_patience_tries_again_only_what_trying_again_may_cure(tmp_path: Path, caplog):
    """Inside `patient` every failure was tried again for minutes, also a request that can never work."""
    from pymilvus.exceptions import MilvusException

    assert store.transient(MilvusException(message="rpc deadline exceeded")) and \
        store.transient(MilvusException(message="Fail connecting to server on localhost:19530, server unavailable"))
    assert not store.transient(MilvusException(message="collection not found[collection=images_x]"))
    client = store.connect(str(tmp_path / "m.db"))
    vs = VectorStore(client, "gone", 8, "a" * 64)
    client.drop_collection("gone")
    with store.patient(600), pytest.raises(store.StoreUnavailableError):
        vs.count()
    assert "tried again" not in caplog.text


def test_the_index_type_is_a_setting_and_a_collection_keeps_the_one_it_was_made_with(tmp_path: Path, monkeypatch):
    uri = str(tmp_path / "m.db")
    client = store.connect(uri)
    ivf = VectorStore(client, "t_ivf", 16, "abc", index_type=IndexType.IVF_SQ8)
    vectors = unit(300, 16, 4)
    fill(ivf, vectors)
    ivf.flush()  # sealed: the IVF_SQ8 index answers
    assert client.describe_index("t_ivf", "vector")["index_type"] == "IVF_SQ8"
    assert [[h.id for h in hits] for hits in ivf.search(vectors[:3], 1)] == [[1], [2], [3]]
    # reopened under another setting: it keeps IVF_SQ8 and is searched with IVF_SQ8's parameters
    again = VectorStore(client, "t_ivf", 16, "abc", index_type=IndexType.HNSW)
    assert again.index_type is IndexType.IVF_SQ8 and again.search(vectors[4:5], 1)[0][0].id == 5
    client.close()
    monkeypatch.setenv("SEARCHCORE_INDEX_TYPE", "ivf_sq8")
    assert Settings.from_env().index_type is IndexType.IVF_SQ8
    monkeypatch.setenv("SEARCHCORE_INDEX_TYPE", "DISKANN")
    with pytest.raises(ValueError, match="DISKANN needs a Milvus server"):
        Settings.from_env()  # the default URI is Milvus Lite's
    monkeypatch.setenv("SEARCHCORE_INDEX_TYPE", "FAISS")
    with pytest.raises(ValueError, match="must be one of HNSW, IVF_SQ8, DISKANN, not 'FAISS'"):
        Settings.from_env()
