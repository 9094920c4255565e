"""Milvus at scale: insert N seeded unit vectors into a fresh collection, build an index, search, measure.

    python scripts/scale.py --vectors 100000 --dim 2048 --standalone [--index HNSW]
    python scripts/scale.py --vectors 1000000 --dim 512 --uri http://127.0.0.1:19530 --index IVF_SQ8
    python scripts/scale.py --vectors 1000000 --dim 2048 --standalone --index IVF_SQ8 --app

Prints one line each: insert rate; index build seconds; search p50 and p99 over --queries single
queries at k=10; recall@10 against exact search; RSS of the server (or of this process for Milvus
Lite). With --app the collection is the app's own (searchcore.storage.store.VectorStore: its schema,
its index and search parameters for SEARCHCORE_INDEX_TYPE, its batched writes and its searches). `--standalone` starts a temporary Milvus standalone (PyPI milvus==2.3.5) for the run; without
--uri or --standalone a temporary Milvus Lite database is used.

The vectors look like image embeddings rather than uniform noise: unit vectors around --clusters
seeded centres. Queries are fresh draws from the same mixture, so their neighbours are real ones.
Exact neighbours are computed in chunks while the vectors are generated (nothing N x N in memory).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pymilvus import DataType, MilvusClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.milvus_standalone import MilvusStandalone  # noqa: E402

COLLECTION = "scale_bench"


def mixture(rng: np.random.Generator, centres: np.ndarray, count: int, spread: float) -> np.ndarray:
    picks = centres[rng.integers(0, len(centres), count)]
    noise = rng.standard_normal((count, centres.shape[1]), dtype=np.float32) * (spread / np.sqrt(centres.shape[1]))
    vectors = picks + noise
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def index_params(args: argparse.Namespace) -> tuple[dict, dict]:
    """(build params, search params) for the chosen index type."""
    kind = args.index
    if kind == "HNSW":
        return {"M": args.m, "efConstruction": args.ef_construction}, {"ef": args.ef}
    if kind in ("IVF_FLAT", "IVF_SQ8"):
        return {"nlist": args.nlist}, {"nprobe": args.nprobe}
    if kind == "IVF_PQ":
        return {"nlist": args.nlist, "m": args.pq_m, "nbits": 8}, {"nprobe": args.nprobe}
    if kind == "FLAT":
        return {}, {}
    raise SystemExit(f"unknown --index {kind}")


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def wait_for_index(client: MilvusClient, count: int) -> None:
    while True:
        info = client.describe_index(COLLECTION, "vector")
        if info.get("state") in ("Finished", None) and int(info.get("indexed_rows", count)) >= count:
            return
        if info.get("state") == "Failed":
            raise SystemExit(f"index build failed: {info}")
        time.sleep(1)


class RawCollection:
    """The collection through pymilvus alone, with the index and search parameters of the arguments."""

    def __init__(self, args: argparse.Namespace, client: MilvusClient) -> None:
        self.args, self.client = args, client
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=args.dim)
        client.create_collection(COLLECTION, schema=schema, consistency_level="Strong")

    def insert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.client.insert(COLLECTION, [{"id": int(i), "vector": v} for i, v in zip(ids, vectors.tolist())])

    def build(self) -> str:
        build, _ = index_params(self.args)
        self.client.flush(COLLECTION)
        prepared = self.client.prepare_index_params()
        prepared.add_index(field_name="vector", index_type=self.args.index, metric_type="L2", params=build)
        self.client.create_index(COLLECTION, prepared)
        wait_for_index(self.client, self.args.vectors)
        self.client.load_collection(COLLECTION)
        return f"{self.args.index} {build}"

    def search(self, query: np.ndarray) -> list[int]:
        _, params = index_params(self.args)
        found = self.client.search(COLLECTION, data=[query.tolist()], limit=self.args.k,
                                   search_params={"metric_type": "L2", "params": params},
                                   consistency_level=self.args.consistency)[0]
        return [int(h["id"]) for h in found]


class AppCollection:
    """The app's own collection and calls: VectorStore with the index type as SEARCHCORE_INDEX_TYPE sets it
    (made with the collection), its batched upserts, its flush, and its searches and their parameters."""

    def __init__(self, args: argparse.Namespace, client: MilvusClient, uri: str) -> None:
        from searchcore.config import IndexType
        from searchcore.storage.store import VectorStore
        self.args = args
        self.store = VectorStore(client, COLLECTION, args.dim, "scale", uri, timeout=600,
                                 index_type=IndexType(args.index))

    def insert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.store.upsert([{"id": int(i), "vector": v, "path": f"/scale/{i}.jpg", "sha256": f"{i:064x}"}
                           for i, v in zip(ids, vectors.tolist())])

    def build(self) -> str:
        self.store.flush()
        wait_for_index(self.store.client, self.args.vectors)
        return f"{self.store.index_type.value} {self.store.index_params} (the app's, built as rows arrive)"

    def search(self, query: np.ndarray) -> list[int]:
        return [h.id for h in self.store.search(query[None], self.args.k)[0]]


def run(args: argparse.Namespace, client: MilvusClient, pids: list[int] | None, uri: str) -> None:
    """pids: the processes whose RSS is reported (None: a server elsewhere, not measured)."""
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.clusters, args.dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    queries = mixture(np.random.default_rng(args.seed + 1), centres, args.queries, args.spread)
    if client.has_collection(COLLECTION):
        client.drop_collection(COLLECTION)
    collection = AppCollection(args, client, uri) if args.app else RawCollection(args, client)

    best_scores = np.full((args.queries, args.k), -np.inf, np.float32)
    best_ids = np.zeros((args.queries, args.k), np.int64)
    insert_seconds = 0.0
    for start in range(0, args.vectors, args.batch):
        vectors = mixture(rng, centres, min(args.batch, args.vectors - start), args.spread)
        ids = np.arange(start, start + len(vectors))
        began = time.perf_counter()
        collection.insert(ids, vectors)
        insert_seconds += time.perf_counter() - began
        scores = queries @ vectors.T  # exact cosine of this chunk, merged into the running top k
        merged_scores = np.concatenate([best_scores, scores], axis=1)
        merged_ids = np.concatenate([best_ids, np.broadcast_to(ids, scores.shape)], axis=1)
        top = np.argpartition(-merged_scores, args.k - 1, axis=1)[:, :args.k]
        best_scores = np.take_along_axis(merged_scores, top, 1)
        best_ids = np.take_along_axis(merged_ids, top, 1)
    print(f"insert: {args.vectors} x {args.dim} in {insert_seconds:.1f} s = {args.vectors / insert_seconds:.0f} vec/s",
          flush=True)

    began = time.perf_counter()
    built = collection.build()
    print(f"index: {built} built and loaded in {time.perf_counter() - began:.1f} s", flush=True)

    latencies, recalls = [], []
    for query, truth in zip(queries, best_ids):
        began = time.perf_counter()
        found = collection.search(query)
        latencies.append((time.perf_counter() - began) * 1000)
        recalls.append(len(set(found) & set(truth.tolist())) / args.k)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(round(0.99 * len(latencies))) - 1)]
    print(f"search ({'the app' if args.app else 'pymilvus'}): {args.queries} queries k={args.k}: "
          f"p50 {statistics.median(latencies):.1f} ms, "
          f"p99 {p99:.1f} ms", flush=True)
    print(f"recall@{args.k} {statistics.mean(recalls):.3f} (exact search as truth)", flush=True)
    print(f"rss: {rss_mb(pids):.0f} MB" if pids is not None else "rss: n/a (server elsewhere)", flush=True)
    client.drop_collection(COLLECTION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, required=True)
    parser.add_argument("--dim", type=int, required=True)
    parser.add_argument("--uri", help="a Milvus server; default: a temporary Milvus Lite database")
    parser.add_argument("--standalone", action="store_true", help="start a temporary Milvus standalone")
    parser.add_argument("--index", default="HNSW", choices=("HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "FLAT"))
    parser.add_argument("--m", type=int, default=16, help="HNSW M")
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--ef", type=int, default=64, help="HNSW search ef")
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument("--pq-m", type=int, default=64, help="IVF_PQ sub-quantizers (must divide --dim)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=1.0, help="noise norm (centres are unit vectors)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--app", action="store_true", help="the app's collection and calls (VectorStore)")
    parser.add_argument("--consistency", default="Bounded", help="of the searches (Strong waits for a time tick)")
    args = parser.parse_args()
    print(f"{args.vectors} vectors, dim {args.dim}, index {args.index}", flush=True)
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        if args.standalone:
            server = MilvusStandalone(Path(tmp) / "milvus").start()
            try:
                client = MilvusClient(uri=server.uri)
                run(args, client, server.pids(), server.uri)  # wrapper + Milvus binary
                client.close()
            finally:
                server.kill()
        else:
            uri = args.uri or str(Path(tmp) / "scale.db")
            client = MilvusClient(uri=uri)
            run(args, client, None if args.uri else [os.getpid()], uri)
            client.close()


if __name__ == "__main__":
    main()
