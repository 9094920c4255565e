"""The typed API that the CLI and the app share: one record per model (spec, encoder, store), the cache
and the Milvus client, wired once."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .config import MODEL_NAMES, SPECS, ModelSpec, Settings
from .encoding.cache import EmbeddingCache
from .files.decode import (DecodeError, Failure, RawImage, read_each, read_many, read_raw,
                     safe_file_name)
from .encoding.embed import TURNS, Embedder
from .encoding.encoder import Encoder
from .encoding.preprocess import resize
from .evaluation.evaluate import EmbeddingsFile, EvalReport, evaluate
from .files.shown import Thumbnails
from .index import Indexer, IndexReport
from .inspection import maps
from .inspection.explain import SpatialSimilarity, spatial_similarity
from .retrieval import dba
from .retrieval.options import COMPARED_OPTIONS, Rerank, SearchOptions
from .retrieval.rerank import RERANK_LABELS
from .retrieval.search import FUSED, RRF, FusedHit, Query, QueryResult, search, search_many
from .retrieval.similarity import best_cosines
from .storage import store
from .storage.regions import GroupedSearch, regions_per_image, row_id
from .storage.store import Hit

log = logging.getLogger("searchcore")


@dataclass(frozen=True)
class Model:
    """Everything of one model: what it is called, how it encodes, where its vectors are (`store`)
    and where their database-side augmented versions are (`dba`)."""

    spec: ModelSpec
    encoder: Encoder
    store: store.VectorStore
    dba: store.VectorStore
    regions: store.VectorStore | None = None  # with SEARCHCORE_REGIONS on
    turns: store.VectorStore | None = None  # with SEARCHCORE_TURNS on

    def searched(self, rerank: Rerank, regions: bool = False, turns: bool = False) -> store.VectorStore | GroupedSearch:
        """The collection a search with this re-ranking (or on regions, or on the indexed turns) runs on."""
        if regions:
            if self.regions is None:
                raise ValueError("region search needs SEARCHCORE_REGIONS=1 while indexing")
            return GroupedSearch(self.regions, self.rows_per_image("regions"))
        if turns:
            return GroupedSearch(self.turns, self.rows_per_image("turns"))
        return self.dba if rerank.augmented else self.store

    def grouped(self) -> dict[str, store.VectorStore]:
        """The collections of several rows per image that this model keeps: "regions", "turns"."""
        return {kind: rows for kind, rows in (("regions", self.regions), ("turns", self.turns)) if rows is not None}

    def rows_per_image(self, kind: str) -> int:
        """Rows per image in the collection of this kind of Model.grouped: the regions of this model's own
        feature grid, or the turns."""
        return regions_per_image(self.encoder.feature_grid) if kind == "regions" else TURNS

    def turns_cover_the_index(self) -> bool:
        """Every indexed image has its turns (not so for images indexed before SEARCHCORE_TURNS was on)."""
        return self.turns is not None and self.turns.count() == TURNS * self.store.count()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def label(self) -> str:
        return self.spec.label


@dataclass(frozen=True)
class Explanation:
    """What one model saw of the query and the hit (its resized input pixels), the images' own sizes
    (width, height) and where they match."""

    query_pixels: np.ndarray
    hit_pixels: np.ndarray
    query_size: tuple[int, int]
    hit_size: tuple[int, int]
    similarity: SpatialSimilarity


@dataclass(frozen=True)
class HitScore:
    """A hit under one model: its rank in that model's list (None: not in it) and its exact cosine to
    the query (None: that model has no vector of it)."""

    rank: int | None
    cosine: float | None


class Engine:
    """Open once, use for many calls: ONNX sessions, the Milvus client and Redis are reused."""

    def __init__(self, settings: Settings | None = None, models: Sequence[str] = MODEL_NAMES) -> None:
        self.settings = settings or Settings.from_env()
        unknown = set(models) - set(MODEL_NAMES)
        if unknown:
            raise ValueError(f"unknown model(s) {sorted(unknown)}; choose from {MODEL_NAMES}")
        s = self.settings
        self.cache = EmbeddingCache(s.redis_url, s.redis_prefix, s.cache_ttl_seconds)
        self.client = store.connect(s.milvus_uri, s.milvus_token, s.milvus_timeout)
        try:
            self.models: dict[str, Model] = {name: self._open_model(SPECS[name]) for name in MODEL_NAMES
                                             if name in models}
        except BaseException:  # a missing build, another build's collection: let go of Milvus (Lite's lock)
            store.disconnect(self.client, s.milvus_uri)
            raise
        self.embedder = Embedder({m.name: m.encoder for m in self.models.values()}, self.cache, s.max_pixels,
                                 s.batch_size, s.decode_workers, s.regions, s.turns,
                                 Thumbnails(s.home / "thumbnails"))
        self._maps: dict[str, maps.MapPoints] = {}

    def _open_model(self, spec: ModelSpec) -> Model:
        s = self.settings
        encoder = Encoder(s.model_path(spec.name))

        def collection(name: str) -> store.VectorStore:
            return store.VectorStore(self.client, name, encoder.dim, encoder.manifest.onnx_sha256, s.milvus_uri,
                                     s.milvus_timeout, (s.hnsw_m, s.hnsw_ef_construction))
        return Model(spec, encoder, collection(s.collection(spec.name)), collection(s.collection(spec.name, "dba_")),
                     collection(s.collection(spec.name, "regions_")) if s.regions else None,
                     collection(s.collection(spec.name, "turns_")) if s.turns else None)

    def _models(self, models: Sequence[str] | None) -> tuple[str, ...]:
        chosen = tuple(models or self.models)
        missing = [m for m in chosen if m not in self.models]
        if missing:
            raise ValueError(f"model(s) {missing} not loaded; this engine has {tuple(self.models)}")
        return chosen

    def _stores(self, models: Sequence[str], rerank: Rerank = Rerank.NONE, regions: bool = False,
                turns: bool = False) -> dict:
        return {m: self.models[m].searched(rerank, regions, turns) for m in models}

    def _indexer(self, models: Sequence[str] | None, roots: Sequence[Path] | None,
                 on_progress: Callable[[int, int], None] | None = None) -> Indexer:
        chosen = self._models(models)
        grouped: dict[str, dict[str, store.VectorStore]] = {}
        for m in chosen:
            for kind, rows in self.models[m].grouped().items():
                grouped.setdefault(kind, {})[m] = rows
        return Indexer(self.embedder, self._stores(chosen), self.settings.batch_size, roots, on_progress, grouped)

    def index(self, paths: Sequence[Path | str], models: Sequence[str] | None = None,
              roots: Sequence[Path] | None = None, on_progress: Callable[[int, int], None] | None = None,
              ) -> IndexReport:
        """Index files and folders. With `roots`, files whose real path is outside them are refused;
        `on_progress(done, total)` follows the run. The DBA vectors follow (see `augment`)."""
        report = self._indexer(models, roots, on_progress).run(paths)
        with report.stages.stage("augment"):
            self.augment(report.new_ids, models)
        self._seal(report)
        return report

    def _seal(self, report: IndexReport) -> None:
        """Every collection that a run wrote to is sealed after it, so that searches use the index: Milvus
        Lite searches unsealed rows one by one, and the app searches in the process that indexed."""
        if report.new_ids:
            for m in self.models.values():
                for rows in (m.store, m.dba, *m.grouped().values()):
                    rows.flush()

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
        self.augment(report.new_ids)
        self._seal(report)
        uploads.mkdir(parents=True, exist_ok=True)
        for raw in raws:
            kept = Path(raw.source)
            if raw.source in report.stored and not kept.exists():
                kept.write_bytes(raw.data)
        return report, names

    def search_raw(self, raws: Sequence[RawImage], options: SearchOptions = SearchOptions(),
                   models: Sequence[str] | None = None) -> list[QueryResult]:
        """Queries given as bytes (files or uploads), embedded in one batched pass and searched with one
        Milvus search per model. `robust` also matches each query turned by 90, 180 and 270 degrees and
        mirrored, keeping each hit's best cosine: against the indexed turns when every indexed image has
        them (SEARCHCORE_TURNS; one model run per query) and no re-ranking is chosen, else by running the
        query's turns (one batch per model). `regions` searches the indexed images' regions (for crops)."""
        chosen, o = self._models(models), options
        indexed_turns = (o.robust and o.rerank is Rerank.NONE and not o.regions
                         and all(self.models[m].turns_cover_the_index() for m in chosen))
        stores = self._stores(chosen, o.rerank, o.regions, indexed_turns)
        queries, results = [], []
        for raw, vectors in self._query_vectors(raws, chosen, o.robust and not indexed_turns):
            if isinstance(vectors, DecodeError):
                results.append(QueryResult(query=raw.source, id=raw.id, hits={}, error=str(vectors)))
            else:
                queries.append(Query(raw.id, raw.source, vectors))
                results.append(None)
        found = iter(search_many(queries, stores, o.k, o.rerank.expands, o.rerank.value))
        results = [r or next(found) for r in results]
        for result in results:
            result.regions, result.robust, result.turns_indexed = o.regions, o.robust, indexed_turns
        return results

    def _query_vectors(self, raws: Sequence[RawImage], models: Sequence[str], turns: bool,
                       ) -> list[tuple[RawImage, dict[str, np.ndarray] | DecodeError]]:
        """Each query's vector per model (all queries in one batched pass), or with `turns` its turns'
        vectors (one batch per query and model); a query that cannot be decoded gets the error."""
        if not turns:
            return [(item.raw, item.error or {m: item.vectors[m] for m in models})
                    for item in self.embedder.embed(list(raws), models)]
        embedded = []
        for raw in raws:
            try:
                embedded.append((raw, self.embedder.embed_turns(raw, models)))
            except DecodeError as exc:
                embedded.append((raw, exc))
        return embedded

    def search_files(self, paths: Sequence[Path | str], options: SearchOptions = SearchOptions(),
                     models: Sequence[str] | None = None) -> list[QueryResult]:
        outcomes = [outcome for _, outcome in read_each(paths)]
        found = iter(self.search_raw([o for o in outcomes if isinstance(o, RawImage)], options, models))
        return [next(found) if isinstance(o, RawImage) else QueryResult(query=o.source, id=-1, hits={},
                                                                         error=f"{o.source}: {o.reason}")
                for o in outcomes]

    def search_id(self, image_id: int, options: SearchOptions = SearchOptions(),
                  models: Sequence[str] | None = None) -> QueryResult:
        """Search with an indexed image's stored vectors (no decoding, no inference; the plain vectors, so
        the robust and region options do not apply)."""
        chosen = self._models(models)
        stores = self._stores(chosen)
        vectors = {m: st.vectors([image_id]).get(image_id) for m, st in stores.items()}
        missing = [m for m, v in vectors.items() if v is None]
        if missing:
            return QueryResult(query=f"id:{image_id}", id=image_id, hits={},
                               error=f"id {image_id} is not indexed for {', '.join(missing)}")
        row = stores[chosen[0]].rows([image_id])[image_id]
        return search(image_id, row["path"], vectors, self._stores(chosen, options.rerank), options.k,
                      options.rerank.expands, options.rerank.value)

    def where_it_lands(self, edited: RawImage, original_id: int, k: int = 50) -> dict[str, dict[str, int | None]]:
        """Search with an edited photo, plain, with the robust option and with DBA+alpha-QE, and give the
        original's rank in each model's list and both fused lists (None: not in the first k)."""
        ranks: dict[str, dict[str, int | None]] = {}
        for option, compared in COMPARED_OPTIONS.items():
            result = self.search_raw([edited], replace(compared, k=k))[0]
            if result.error:
                raise DecodeError(edited.source, result.error)
            lists = {**result.hits, FUSED: result.fused, RRF: result.rrf}
            ranks[option] = {name: next((r for r, h in enumerate(hits, 1) if h.id == original_id), None)
                             for name, hits in lists.items()}
        return ranks

    def hit_scores(self, result: QueryResult, hit: Hit | FusedHit) -> dict[str, HitScore]:
        """One hit under every model of a result: its rank in that model's list and its exact cosine to
        the query, from the stored vector(s) searched (also for a model whose list does not hold it)."""
        scores = {}
        for name, query_vector in result.vectors.items():
            searched = self.models[name].searched(Rerank(result.rerank), result.regions, result.turns_indexed)
            cosine = best_cosines(searched.image_vectors({hit.id: hit.sha256}), query_vector).get(hit.id)
            ranks = [r for r, h in enumerate(result.hits.get(name, []), 1) if h.id == hit.id]
            scores[name] = HitScore(rank=ranks[0] if ranks else None, cosine=cosine)
        return scores

    def explain(self, query: Path | str, hit_path: str, hit_sha256: str, roots: Sequence[Path] | None = None,
                ) -> dict[str, Explanation]:
        """Per model, heat grids over the query and the hit that show which regions drive their
        similarity. The hit is read only under `roots`, and only if it still has the indexed bytes."""
        hit_raw = read_raw(hit_path, roots)
        if hit_raw.sha256 != hit_sha256:
            raise DecodeError(hit_path, "file changed since it was indexed", kind="changed")
        images = [self.embedder.decode(raw) for raw in (read_raw(query), hit_raw)]
        explained = {}
        for name, m in self.models.items():
            pixels = np.stack([resize(image, m.encoder.resize_key) for image in images])
            query_map, hit_map = m.encoder.feature_maps(m.encoder.preprocess(pixels))
            explained[name] = Explanation(pixels[0], pixels[1], images[0].size, images[1].size,
                                          spatial_similarity(query_map, hit_map))
        return explained

    def map_points(self, model: str, method: str = "PCA") -> maps.MapPoints:
        """The model's indexed vectors in 2-D (a seeded sample of at most maps.MAX_POINTS), cached per
        model build, indexed images and method."""
        m = self.models[self._models([model])[0]]
        ids = m.store.all_ids()
        key = maps.index_state(m.encoder.manifest.onnx_sha256, ids, method)
        if key not in self._maps:
            sample = maps.sample_ids(ids)
            rows = m.store.rows(sample, with_vectors=True)
            sample = [i for i in sample if i in rows]  # removed meanwhile
            vectors = np.asarray([rows[i]["vector"] for i in sample], np.float32).reshape(-1, m.store.dim)
            paths = [rows[i]["path"] for i in sample]
            self._maps[key] = maps.MapPoints(model, method, sample, paths, [rows[i]["sha256"] for i in sample],
                                             maps.top_level_groups(paths), maps.project(vectors, method), len(ids))
        return self._maps[key]

    def row(self, image_id: int) -> dict | None:
        """An indexed image's path and SHA-256, or None."""
        return self.models[next(iter(self.models))].store.rows([image_id]).get(image_id)

    def sample_rows(self, limit: int) -> list[dict]:
        """Up to `limit` indexed rows (path, sha256) of the first model."""
        return self.models[next(iter(self.models))].store.sample(limit)

    def labels(self, modes: Sequence[str] = ()) -> dict[str, str]:
        """Names on the page: the models' labels, Fused and Fused (RRF), and those of re-ranked modes
        such as `resnet50+dba+qe` (ResNet50 · DBA+αQE) among `modes`."""
        base = {**{name: m.label for name, m in self.models.items()}, FUSED: "Fused", RRF: "Fused (RRF)"}
        named = dict(base)
        for mode in modes:
            head, _, rerank = mode.partition("+")
            if rerank in RERANK_LABELS and head in base:
                named[mode] = f"{base[head]} · {RERANK_LABELS[rerank]}"
        return named

    def is_empty(self) -> bool:
        return all(m.store.count() == 0 for m in self.models.values())

    def evaluate(self, root: Path | str, models: Sequence[str] | None = None) -> EvalReport:
        """Scores of every mode on a labelled folder; its vectors are kept for the next evaluation."""
        return evaluate(Path(root).resolve(), self.embedder, self._models(models),
                        EmbeddingsFile(self.settings.evaluations_dir))

    def stats(self) -> dict:
        return {"milvus_uri": self.settings.milvus_uri, "redis_cache": self.cache.available,
                "models": {name: {"label": m.label, "collection": m.store.name, "rows": m.store.count(),
                                  "dim": m.store.dim, "precision": m.encoder.manifest.precision,
                                  "weights": m.encoder.manifest.weights.get("source"),
                                  "weights_package": m.encoder.manifest.weights.get("package"),
                                  "onnx_sha256": m.encoder.manifest.onnx_sha256}
                           for name, m in self.models.items()}}

    def remove(self, target: str | Path) -> int:
        """Remove a file's row, or every row under a folder, from every model's collection."""
        path = os.path.abspath(Path(target).expanduser())  # stored paths are absolute, links unresolved
        return self._remove(lambda m: m.store.ids_under(path))

    def remove_ids(self, ids: Sequence[int]) -> int:
        """Remove these indexed images (by id) from every model's collection."""
        return self._remove(lambda m: list(ids))

    def _remove(self, ids_of: Callable[[Model], list[int]]) -> int:
        removed = set()
        for m in self.models.values():
            present = list(m.store.existing(ids_of(m)))
            touched = dba.neighbours(m.store, present)  # their DBA vectors were made with the removed ones
            shas = [r["sha256"] for r in m.store.rows(present).values()]
            for kind, rows in m.grouped().items():
                rows.delete([row_id(sha, n) for sha in shas for n in range(m.rows_per_image(kind))])
            m.store.delete(present)
            m.dba.delete(list(m.dba.existing(present)))
            dba.augment(m.store, m.dba, touched - set(present))
            removed.update(present)
        return len(removed)

    def augment(self, ids: set[int], models: Sequence[str] | None = None) -> int:
        """The DBA vectors kept current after an index run (dba.catch_up), per model."""
        return sum(dba.catch_up(self.models[m].store, self.models[m].dba, ids) for m in self._models(models))

    def rebuild_dba(self, models: Sequence[str] | None = None) -> int:
        """Every DBA vector computed anew from the current index (exact)."""
        return sum(dba.rebuild(self.models[m].store, self.models[m].dba) for m in self._models(models))

    def close(self) -> None:
        store.disconnect(self.client, self.settings.milvus_uri)

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
