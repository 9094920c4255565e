"""Milvus: one collection per model, id = content hash, HNSW over L2 on unit vectors."""
from __future__ import annotations

import contextlib
import functools
import json
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Protocol

import grpc
import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from ..batching import spans
from ..config import IndexType
from ..retrying import retried
from ..similarity import cosine_from_squared_l2, l2_from_cosine
from .locking import held, lite_lock

MAX_PATH = 4096
MODEL_PROPERTY = "searchcore.onnx_sha256"
# Requests stay small: one search of 360 query rows, and one fetch of the regions of hundreds of
# images, outlasted the timeout of Milvus Lite in a robustness run.
SEARCH_CHUNK = 64  # query rows per search request
GET_CHUNK = 256  # ids per fetch
EXACT_ROWS = 2000  # a search within a folder of up to this many rows compares the query with each of them
WRITE_FLOATS = 64 * 1024  # floats per write request: 32 rows of 2048, 128 of 512 (regions come 30 an image)
MAX_RETRY_WAIT = 15.0  # seconds between two tries of a patient call, at most
log = logging.getLogger("searchcore")
_PATIENCE: ContextVar[float] = ContextVar("milvus_patience", default=0.0)


@contextlib.contextmanager
def patient(seconds: float):
    """Inside it, a Milvus call that fails is tried again, with a doubling wait, for up to `seconds`:
    an index run outlives a slow or paused server (its writes are idempotent upserts), where a search
    outside it fails at once."""
    token = _PATIENCE.set(seconds)
    try:
        yield
    finally:
        _PATIENCE.reset(token)


@dataclass(frozen=True)
class Hit:
    """One search result. Milvus' L2 metric is squared; l2 here is the true distance."""

    id: int
    path: str
    sha256: str
    l2: float
    cosine: float

    @classmethod
    def from_squared_l2(cls, id: int, path: str, sha256: str, squared: float) -> "Hit":
        return cls.from_cosine(id, path, sha256, cosine_from_squared_l2(squared))

    @classmethod
    def from_cosine(cls, id: int, path: str, sha256: str, cosine: float) -> "Hit":
        return cls(id=id, path=path, sha256=sha256, l2=l2_from_cosine(cosine), cosine=float(cosine))


class Collection(Protocol):
    """What search, fusion and re-ranking ask of a model's vectors: the Milvus collection (VectorStore),
    the grouped search over several rows per image (regions.GroupedSearch), or vectors in memory
    (memory.InMemoryCollection, for fast tests of the search rules)."""

    def search(self, vectors: np.ndarray, k: int, under: str | None = None) -> list[list[Hit]]:
        """The k nearest images of each query row, best first; with `under`, of the images whose stored
        path lies under that folder only."""
        ...

    def image_vectors(self, images: Mapping[int, str]) -> dict[int, np.ndarray]:
        """Each image's (id -> sha256) stored rows that are here, as a (rows, dim) array."""
        ...

    def vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The stored vector of each id that is here, for alpha-QE (a grouped search takes no re-ranking)."""
        ...


@dataclass(frozen=True)
class InFolder:
    """A collection searched within one folder: search, fusion and re-ranking take it as they take the
    collection, and see only the images under that folder."""

    collection: Collection
    folder: str

    def search(self, vectors: np.ndarray, k: int, under: str | None = None) -> list[list[Hit]]:
        """Within this collection's folder (a folder given here as well must be that one)."""
        if under not in (None, self.folder):
            raise ValueError(f"a search within {self.folder!r} cannot also be within {under!r}")
        return self.collection.search(vectors, k, self.folder)

    def image_vectors(self, images: Mapping[int, str]) -> dict[int, np.ndarray]:
        return self.collection.image_vectors(images)

    def vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        return self.collection.vectors(ids)


def _not_lite_noise(record: logging.LogRecord) -> bool:
    """Milvus Lite's in-process server logs a traceback for an RPC pymilvus probes and tolerates."""
    return "Method not implemented" not in record.getMessage()


def connect(uri: str, token: str = "", timeout: float = 10.0) -> MilvusClient:
    """Milvus Lite at a local path (created if missing), or any Milvus server URI."""
    if "://" not in uri:
        Path(uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
        logging.getLogger("grpc._server").addFilter(_not_lite_noise)
    try:
        # No keepalive pings on an idle channel: Milvus Lite's server answers them with GOAWAY.
        return MilvusClient(uri=uri, token=token, timeout=timeout,
                            grpc_options={"grpc.keepalive_permit_without_calls": False})
    except (MilvusException, grpc.RpcError) as exc:
        raise StoreUnavailableError(f"Milvus at {uri} did not answer ({_short(exc)})") from exc


def disconnect(client: MilvusClient, uri: str) -> None:
    """Close the client; for Milvus Lite also stop its in-process server, which otherwise keeps writing
    into its folder, and keeps it locked against other processes, until this process exits (a temp
    folder removed after close then failed). That server is shared by every client of this process on
    the same path: disconnect the last of them."""
    client.close()
    if "://" not in uri:
        from milvus_lite.server_manager import server_manager_instance
        server_manager_instance.release_server(str(Path(uri).expanduser()))


class StoreMismatchError(RuntimeError):
    """The collection holds vectors of another model build; mixing them would be silently wrong."""


class StoreUnavailableError(RuntimeError):
    """Milvus did not answer (server down, restarting, unreachable): one line that names the URI."""


def _short(exc: Exception) -> str:
    message = getattr(exc, "message", None) or getattr(exc, "details", lambda: None)() or str(exc)
    return str(message).splitlines()[0][:200]


def _guarded(method, writes: bool):
    """Turn any failure of the Milvus client inside a VectorStore method into StoreUnavailableError,
    after trying again while a `patient` block allows. A collection that a restarted server has not
    loaded again yet is loaded, and the call tried once more. On Milvus Lite, a write holds its
    collection alone and reads share it (`lite_lock`)."""
    @functools.wraps(method)
    def wrapper(self: "VectorStore", *args, **kwargs):
        def said(exc: Exception, wait: float, tries: int) -> None:
            log.warning("Milvus at %s did not answer (%s); %s tried again in %.1f s", self.uri, _short(exc),
                        method.__name__, wait)

        def attempt():
            with held(self.lite_lock, writes):
                return _loaded(self, method, args, kwargs)
        try:
            return retried(attempt, lambda exc: isinstance(exc, (MilvusException, grpc.RpcError)) and transient(exc),
                           said, 0.5, MAX_RETRY_WAIT, _PATIENCE.get())
        except (MilvusException, grpc.RpcError) as exc:
            raise StoreUnavailableError(f"Milvus at {self.uri} did not answer ({_short(exc)})") from exc
    return wrapper


def guarded_read(method):
    """A guarded read (`_guarded`)."""
    return _guarded(method, writes=False)


def guarded_write(method):
    """A guarded write or flush (`_guarded`)."""
    return _guarded(method, writes=True)


TRANSIENT_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
                   grpc.StatusCode.RESOURCE_EXHAUSTED}
TRANSIENT_WORDS = ("deadline", "unavailable", "timeout", "timed out", "connect", "not ready", "closed", "cancel")


def transient(exc: Exception) -> bool:
    """A failure that trying again may cure (the server slow, restarting or unreachable), not one of the
    request itself (bad parameters, a dropped collection)."""
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        return exc.code() in TRANSIENT_CODES
    return any(word in str(exc).lower() for word in TRANSIENT_WORDS)


def _loaded(store: "VectorStore", method, args, kwargs):
    try:
        return method(store, *args, **kwargs)
    except MilvusException as exc:
        if "not loaded" not in str(exc):
            raise
        store.client.load_collection(store.name, timeout=store.timeout)
        return method(store, *args, **kwargs)


def folder_start(folder: str) -> str:
    """What every path under a folder starts with: the folder and one "/"."""
    return folder.rstrip("/") + "/"


def under_folder(folder: str) -> str:
    """A Milvus filter for the paths under a folder: a range of strings, [folder/, folder0), since "0"
    follows "/". `like` would take a `%` or `_` of the folder's name for a wildcard (Milvus lets no
    escape of them), and a range needs none."""
    start = folder_start(folder)
    return f"path >= {_literal(start)} and path < {_literal(start[:-1] + '0')}"


def _literal(text: str) -> str:
    """A Milvus string literal: quotes and backslashes escaped, other characters as they are."""
    return json.dumps(text, ensure_ascii=False)


class VectorStore:
    """The collection of one model. Writes and id look-ups are Strong (an indexer never misses what was
    just written, by any process); searches are Session (they see this client's own writes without
    waiting for the server's next time tick). Every call has a timeout, so a dead server is an error
    within seconds, not a hang."""

    def __init__(self, client: MilvusClient, name: str, dim: int, model_sha256: str, uri: str = "",
                 timeout: float = 10.0, hnsw: tuple[int, int] = (16, 200), index_type: IndexType = IndexType.HNSW,
                 ) -> None:
        """uri: the client's, named in errors; a Milvus Lite path also keys the collection's lock (lite_lock).
        hnsw: (M, efConstruction), and index_type, for a collection created here, checked before anything
        is created (a bad index saved by Milvus Lite breaks the next load). A collection made before keeps
        its own index, and is searched with that index's parameters."""
        self.client, self.name, self.dim = client, name, dim
        self.uri, self.timeout = uri or "the configured URI", timeout
        self.lite_lock = lite_lock(uri, name)
        self.index_type, self.index_params = index_type, index_type.build_params(*hnsw)
        self._open(model_sha256)

    @guarded_read
    def _open(self, model_sha256: str) -> None:
        client, name = self.client, self.name
        identity = {MODEL_PROPERTY: model_sha256}
        if not client.has_collection(name):
            self._create(identity)
        stored = client.describe_collection(name).get("properties", {}).get(MODEL_PROPERTY)
        if stored != model_sha256:
            raise StoreMismatchError(
                f"collection {name!r} holds vectors of another model build (onnx sha256 {stored}); this model's "
                f"is {model_sha256}. Use another SEARCHCORE_COLLECTION_PREFIX or remove the collection.")
        self.index_type = IndexType(client.describe_index(name, "vector")["index_type"])
        client.load_collection(name)

    def _create(self, properties: dict[str, str]) -> None:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("path", DataType.VARCHAR, max_length=MAX_PATH)
        schema.add_field("sha256", DataType.VARCHAR, max_length=64)
        index = self.client.prepare_index_params()
        index.add_index(field_name="vector", index_type=self.index_type.value, metric_type="L2",
                        params=self.index_params)
        self.client.create_collection(self.name, schema=schema, index_params=index, properties=properties,
                                      consistency_level="Strong")

    @guarded_read
    def _get(self, ids: Iterable[int], fields: list[str], chunk: int = GET_CHUNK) -> dict[int, dict]:
        """Stored rows by id (absent ids are left out), with the given fields, `chunk` ids per request."""
        ids, rows = list(ids), []
        for part in spans(len(ids), chunk):
            rows += self.client.get(self.name, ids=ids[part], output_fields=fields,
                                    timeout=self.timeout, consistency_level="Strong")
        return {int(r["id"]): r for r in rows}

    def existing(self, ids: Iterable[int]) -> dict[int, str]:
        """Which of these ids are stored, with their paths."""
        return {i: r["path"] for i, r in self._get(ids, ["path"]).items()}

    def upsert(self, rows: list[dict]) -> None:
        """Write rows, WRITE_FLOATS at a time (a region collection gets 30 rows per image), each request
        guarded (and, in a patient block, tried again) on its own."""
        for part in spans(len(rows), max(1, WRITE_FLOATS // self.dim)):
            self._upsert(rows[part])

    @guarded_write
    def _upsert(self, rows: list[dict]) -> None:
        self.client.upsert(self.name, rows, timeout=self.timeout)

    def search(self, vectors: np.ndarray, k: int, under: str | None = None, chunk: int = SEARCH_CHUNK,
               ) -> list[list[Hit]]:
        """The k nearest rows of each query row, `chunk` query rows per request; with `under`, only rows
        whose path lies under that folder: exactly, from their vectors, for a folder of up to EXACT_ROWS
        rows (a filtered HNSW search missed some of a small folder's nearest rows), else with a filtered
        search with a wider beam."""
        vectors = np.asarray(vectors, np.float32)
        rows = self._count(under_folder(under)) if under is not None else None
        if rows == 0:
            return [[] for _ in vectors]
        if rows is not None and rows <= EXACT_ROWS:
            return self._search_exactly(vectors, k, under_folder(under))
        return self._search(vectors, k, under, chunk)

    @guarded_read
    def _search_exactly(self, vectors: np.ndarray, k: int, expression: str) -> list[list[Hit]]:
        rows = self.client.query(self.name, filter=expression, output_fields=["vector", "path", "sha256"],
                                 limit=EXACT_ROWS, timeout=self.timeout, consistency_level="Session")
        cosines = vectors @ np.asarray([r["vector"] for r in rows], np.float32).T
        return [[Hit.from_cosine(int(rows[n]["id"]), rows[n]["path"], rows[n]["sha256"], row[n])
                 for n in np.argsort(-row, kind="stable")[:k]] for row in cosines]

    @guarded_read
    def _search(self, vectors: np.ndarray, k: int, under: str | None, chunk: int) -> list[list[Hit]]:
        params = self.index_type.search_params(k, filtered=under is not None)
        results = []
        for part in spans(len(vectors), chunk):
            results += self.client.search(self.name, data=vectors[part].tolist(), limit=k,
                                          filter=under_folder(under) if under is not None else "",
                                          output_fields=["path", "sha256"], timeout=self.timeout,
                                          search_params={"metric_type": "L2", "params": params},
                                          consistency_level="Session")
        return [[Hit.from_squared_l2(int(h["id"]), h["entity"]["path"], h["entity"]["sha256"], h["distance"])
                 for h in hits] for hits in results]

    def vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        return {i: np.asarray(r["vector"], np.float32) for i, r in self._get(ids, ["vector"]).items()}

    def image_vectors(self, images: Mapping[int, str]) -> dict[int, np.ndarray]:
        """The stored vector of each image (id -> sha256) that is here, as a (1, dim) array."""
        return {i: v[None, :] for i, v in self.vectors(images).items()}

    def rows(self, ids: Iterable[int], with_vectors: bool = False) -> dict[int, dict]:
        """path and sha256 (and the vector) of stored ids."""
        return self._get(ids, ["path", "sha256"] + ["vector"] * with_vectors)

    @guarded_read
    def ids_under(self, path: str) -> list[int]:
        """Ids whose stored path is this file or lies under this folder."""
        rows = self.client.query(self.name, filter=f"path == {_literal(path)} or ({under_folder(path)})",
                                 output_fields=["path"], timeout=self.timeout, consistency_level="Strong")
        return [int(r["id"]) for r in rows]

    @guarded_write
    def flush(self) -> None:
        """Seal what was written, so that searches use the index (Milvus Lite searches unsealed rows one by
        one, which is slow for region collections; docs/benchmarks.md)."""
        self.client.flush(self.name, timeout=self.timeout)

    @guarded_write
    def delete(self, ids: list[int]) -> int:
        if not ids:
            return 0
        result = self.client.delete(self.name, ids=ids, timeout=self.timeout)
        return int(result.get("delete_count", len(ids))) if isinstance(result, dict) else len(ids)

    def count(self) -> int:
        return self._count("")

    @guarded_read
    def _count(self, expression: str) -> int:
        """The rows that match a filter ("": all of them)."""
        rows = self.client.query(self.name, filter=expression, output_fields=["count(*)"], timeout=self.timeout,
                                 consistency_level="Strong")
        return int(rows[0]["count(*)"])

    def all_ids(self) -> list[int]:
        """Every stored id."""
        return [int(r["id"]) for r in self._all("id")]

    def all_paths(self) -> list[str]:
        """Every stored path."""
        return [r["path"] for r in self._all("path")]

    @guarded_read
    def _all(self, field: str) -> list[dict]:
        """One field of every row, read in batches (a plain query stops at 16,384 rows)."""
        iterator = self.client.query_iterator(self.name, batch_size=5000, output_fields=[field],
                                              timeout=self.timeout, consistency_level="Strong")
        rows: list[dict] = []
        try:
            while batch := iterator.next():
                rows += batch
        finally:
            iterator.close()
        return rows

    @guarded_read
    def sample(self, limit: int) -> list[dict]:
        return list(self.client.query(self.name, filter="", output_fields=["path", "sha256"], limit=limit,
                                      timeout=self.timeout, consistency_level="Strong"))
