"""The typed API that the CLI and the app share: models + cache + store wired once."""
from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from .cache import EmbeddingCache
from .config import MODEL_NAMES, Settings
from .decode import Failure, RawImage, raw_from_bytes, read_each, read_many, safe_file_name
from .embed import Embedder
from .encoder import Encoder
from .evaluate import EvalReport, evaluate
from .index import Indexer, IndexReport
from .search import QueryResult, search
from . import store

log = logging.getLogger("searchcore")
MAX_TOP_K = 1000


def check_top_k(k: object) -> int:
    """k itself, if it is a whole number from 1 to MAX_TOP_K; otherwise a ValueError that says so."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_TOP_K:
        raise ValueError(f"top k must be a whole number from 1 to {MAX_TOP_K}, not {k!r}")
    return k


class Engine:
    """Open once, use for many calls: ONNX sessions, the Milvus client and Redis are reused."""

    def __init__(self, settings: Settings | None = None, models: Sequence[str] = MODEL_NAMES) -> None:
        self.settings = settings or Settings.from_env()
        unknown = set(models) - set(MODEL_NAMES)
        if unknown:
            raise ValueError(f"unknown model(s) {sorted(unknown)}; choose from {MODEL_NAMES}")
        self.models = tuple(models)
        s = self.settings
        self.encoders = {m: Encoder(s.model_dir / m) for m in self.models}
        self.cache = EmbeddingCache(s.redis_url, s.redis_prefix, s.cache_ttl_seconds)
        self.client = store.connect(s.milvus_uri, s.milvus_token, s.milvus_timeout)
        self.stores = {m: store.VectorStore(self.client, s.collection_prefix + m, e.dim, e.manifest.onnx_sha256,
                                            s.milvus_uri, s.milvus_timeout, (s.hnsw_m, s.hnsw_ef_construction))
                       for m, e in self.encoders.items()}
        self.embedder = Embedder(self.encoders, self.cache, s.max_pixels, s.batch_size, s.decode_workers)

    def _models(self, models: Sequence[str] | None) -> tuple[str, ...]:
        chosen = tuple(models or self.models)
        missing = [m for m in chosen if m not in self.encoders]
        if missing:
            raise ValueError(f"model(s) {missing} not loaded; this engine has {self.models}")
        return chosen

    def _indexer(self, models: Sequence[str] | None, roots: Sequence[Path] | None,
                 on_progress: Callable[[int, int], None] | None = None) -> Indexer:
        chosen = self._models(models)
        return Indexer(self.embedder, {m: self.stores[m] for m in chosen}, self.settings.batch_size, roots,
                       on_progress)

    def index(self, paths: Sequence[Path | str], models: Sequence[str] | None = None,
              roots: Sequence[Path] | None = None, on_progress: Callable[[int, int], None] | None = None,
              ) -> IndexReport:
        """Index files and folders. With `roots`, files whose real path is outside them are refused;
        `on_progress(done, total)` follows the run."""
        return self._indexer(models, roots, on_progress).run(paths)

    def index_uploads(self, files: Sequence[Path | str], uploads: Path) -> tuple[IndexReport, dict[str, str]]:
        """Index uploaded files (temp paths) as `uploads/<sha12>-<name>`. A file is written there only once
        it decoded and its vectors are stored, so nothing else is ever kept or served from that folder.
        Returns the report and a map from every path the report may name to the upload's own name."""
        failures: list[Failure] = []
        names: dict[str, str] = {}
        raws = []
        for path, raw in read_many(files, failures):
            kept = uploads / f"{raw.sha256[:12]}-{safe_file_name(Path(path).name)}"
            names[str(kept)] = Path(path).name
            raws.append(replace(raw, source=str(kept)))
        names.update({f.source: Path(f.source).name for f in failures})
        report = self._indexer(None, None).run_raws(raws)
        report.failed[:0] = failures
        uploads.mkdir(parents=True, exist_ok=True)
        for raw in raws:
            kept = Path(raw.source)
            if raw.source in report.stored and not kept.exists():
                kept.write_bytes(raw.data)
        return report, names

    def search_raw(self, raws: Sequence[RawImage], models: Sequence[str] | None = None,
                   k: int = 10) -> list[QueryResult]:
        """Queries given as bytes (files or uploads), embedded in one batched pass."""
        chosen = self._models(models)
        check_top_k(k)
        results = []
        for item in self.embedder.embed(list(raws), chosen):
            if item.error:
                results.append(QueryResult(query=item.raw.source, id=item.raw.id, hits={}, error=str(item.error)))
            else:
                results.append(search(item.raw.id, item.raw.source, {m: item.vectors[m] for m in chosen},
                                      {m: self.stores[m] for m in chosen}, k))
        return results

    def search_files(self, paths: Sequence[Path | str], models: Sequence[str] | None = None,
                     k: int = 10) -> list[QueryResult]:
        outcomes = [outcome for _, outcome in read_each(paths)]
        found = iter(self.search_raw([o for o in outcomes if isinstance(o, RawImage)], models, k))
        return [next(found) if isinstance(o, RawImage) else QueryResult(query=o.source, id=-1, hits={},
                                                                         error=f"{o.source}: {o.reason}")
                for o in outcomes]

    def search_bytes(self, data: bytes, name: str, models: Sequence[str] | None = None,
                     k: int = 10) -> QueryResult:
        return self.search_raw([raw_from_bytes(data, name)], models, k)[0]

    def search_id(self, image_id: int, models: Sequence[str] | None = None, k: int = 10) -> QueryResult:
        """Search with an indexed image's stored vectors (no decoding, no inference)."""
        chosen = self._models(models)
        check_top_k(k)
        vectors = {m: self.stores[m].vectors([image_id]).get(image_id) for m in chosen}
        missing = [m for m, v in vectors.items() if v is None]
        if missing:
            return QueryResult(query=f"id:{image_id}", id=image_id, hits={},
                               error=f"id {image_id} is not indexed for {', '.join(missing)}")
        row = self.stores[chosen[0]].rows([image_id])[image_id]
        return search(image_id, row["path"], vectors, {m: self.stores[m] for m in chosen}, k)

    def evaluate(self, root: Path | str, models: Sequence[str] | None = None) -> EvalReport:
        return evaluate(Path(root), self.embedder, self._models(models))

    def stats(self) -> dict:
        return {"milvus_uri": self.settings.milvus_uri, "redis_cache": self.cache.available,
                "models": {m: {"collection": st.name, "rows": st.count(), "dim": st.dim,
                               "weights": self.encoders[m].manifest.weights.get("source"),
                               "weights_package": self.encoders[m].manifest.weights.get("package"),
                               "onnx_sha256": self.encoders[m].manifest.onnx_sha256}
                           for m, st in self.stores.items()}}

    def remove(self, target: str) -> int:
        """Remove an id, a file's row, or every row under a folder, from every model's collection."""
        if target.isdigit():
            ids_per_store = {m: [int(target)] for m in self.stores}
        else:
            path = os.path.abspath(Path(target).expanduser())  # stored paths are absolute, links unresolved
            ids_per_store = {m: st.ids_under(path) for m, st in self.stores.items()}
        removed = set()
        for m, ids in ids_per_store.items():
            present = list(self.stores[m].existing(ids))
            self.stores[m].delete(present)
            removed.update(present)
        return len(removed)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
