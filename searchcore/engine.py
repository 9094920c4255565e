"""The typed API that the CLI and the app share: one record per model (model.py), the cache and the
Milvus client, wired once. It offers what callers need (search, index, decode, thumbnails, stats); the
work is done by the modules it wires."""
from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np
from PIL import Image

from .config import MODEL_NAMES, SPECS, Settings, check_models
from .encoding.cache import EmbeddingCache
from .encoding.embed import Embedder
from .evaluation.evaluate import EmbeddingsFile, EvalReport, evaluate
from .files.decode import DecodeError, Failure, RawImage, named_only, read_each, read_raw
from .files.shown import Thumbnails
from .index import Indexer, IndexReport, keep_uploads, read_uploads
from .inspection import maps
from .inspection.edits import where_it_lands
from .inspection.explain import Explanation, explain
from .model import Model, open_model, search_plan
from .retrieval import dba
from .retrieval.batcher import SearchBatcher
from .retrieval.duplicates import FUSED_SCORING, THRESHOLDS, Group, duplicate_groups
from .retrieval.fusion import FusedHit
from .retrieval.options import Rerank, SearchOptions
from .retrieval.search import HitScore, Query, QueryResult, hit_scores, search, search_many
from .storage import store
from .similarity import l2_normalise
from .storage.store import Hit

MAX_TOGETHER = 5  # photos searched together at most
UPKEEP = "upkeep"  # the name of the thread that writes DBA vectors and seals after index runs
T = TypeVar("T")

log = logging.getLogger("searchcore")


class Engine:
    """Open once, use for many calls: ONNX sessions, the Milvus client and Redis are reused."""

    def __init__(self, settings: Settings | None = None, models: Sequence[str] = MODEL_NAMES) -> None:
        self.settings = s = settings or Settings.from_env()
        check_models(models)
        self.cache = EmbeddingCache(s.redis_url, s.redis_prefix, s.cache_ttl_seconds)
        self.client = store.connect(s.milvus_uri, s.milvus_token, s.milvus_timeout)
        try:
            self.models: dict[str, Model] = {name: open_model(SPECS[name], s, self.client) for name in MODEL_NAMES
                                             if name in models}
        except BaseException:  # a missing build, another build's collection: let go of Milvus (Lite's lock)
            store.disconnect(self.client, s.milvus_uri)
            raise
        self.embedder = Embedder({m.name: m.encoder for m in self.models.values()}, self.cache, s.max_pixels,
                                 s.batch_size, s.decode_workers, s.regions, s.turns,
                                 Thumbnails(s.home / "thumbnails"))
        self._maps = maps.MapCache()
        self._batcher = SearchBatcher(self.search_raw)
        self._folders: tuple[int, list[str]] = (-1, [])  # (index size, folders) of the last folders()
        self._runs, self._runs_lock = 0, threading.Lock()  # index runs under way in this engine, or their upkeep
        self._run_count = 0  # index runs begun in this engine
        self._upkeep = ThreadPoolExecutor(1, thread_name_prefix=UPKEEP)  # the one writer of DBA vectors
        self._upkeep_failure: Exception | None = None  # the first since the last settle(), which raises it
        self._dba_whole: bool | None = self._dba_covers()  # None: not known, read again when asked

    @property
    def thumbnails(self) -> Thumbnails:
        """The thumbnails indexing made, by SHA-256."""
        return self.embedder.thumbnails

    def decode(self, raw: RawImage) -> Image.Image:
        """An image's pixels, with the engine's pixel cap."""
        return self.embedder.decode(raw)

    def _chosen(self, models: Sequence[str] | None) -> dict[str, Model]:
        chosen = tuple(models or self.models)
        missing = [m for m in chosen if m not in self.models]
        if missing:
            raise ValueError(f"model(s) {missing} not loaded; this engine has {tuple(self.models)}")
        return {m: self.models[m] for m in chosen}

    def _indexer(self, models: Sequence[str] | None, roots: Sequence[Path] | None,
                 on_progress: Callable[[int, int], None] | None = None) -> Indexer:
        chosen = self._chosen(models)
        grouped: dict[str, dict[str, store.VectorStore]] = {}
        for name, m in chosen.items():
            for kind, rows in m.grouped().items():
                grouped.setdefault(kind, {})[name] = rows
        return Indexer(self.embedder, {name: m.store for name, m in chosen.items()}, self.settings.batch_size,
                       roots, on_progress, grouped)

    def index(self, paths: Sequence[Path | str], models: Sequence[str] | None = None,
              roots: Sequence[Path] | None = None, on_progress: Callable[[int, int], None] | None = None,
              ) -> IndexReport:
        """Index files and folders. With `roots`, files whose real path is outside them are refused;
        `on_progress(done, total)` follows the run. Every image is searchable when this returns; the
        DBA vectors and the sealing follow on the upkeep thread (`settle` waits for them)."""
        return self._run_then_upkeep(lambda: self._indexer(models, roots, on_progress).run(paths), models)

    def _run_then_upkeep(self, run: Callable[[], IndexReport], models: Sequence[str] | None = None) -> IndexReport:
        """An index run, then its upkeep queued: the run's images are written, sealed and searchable, and no
        model waits for the DBA step. Until the upkeep is done, DBA searches run on the plain vectors
        (search_plan). The image collections are sealed here, so that the searches right after it use their
        index (Milvus Lite searches unsealed rows one by one)."""
        self._begin_run()
        try:
            with self._patient():
                report = run()
                self._seal(report, images_only=True)
        except BaseException:  # Milvus failed the run, most likely: the next run's DBA step catches up
            self._queue_upkeep(self._end_run)
            raise
        self._queue_upkeep(lambda: self._upkeep_after(report, models))
        return report

    def _queue_upkeep(self, upkeep: Callable[[], None]) -> None:
        """The upkeep of a run queued; it ends the run (_end_run) in turn with the others."""
        try:
            self._upkeep.submit(upkeep)
        except BaseException:  # the engine is closed: no upkeep follows the run
            self._end_run()
            raise

    def _upkeep_after(self, report: IndexReport, models: Sequence[str] | None) -> None:
        """On the upkeep thread, after an index run: the DBA vectors kept current (with any image the DBA
        collection lacks), and every collection the run wrote to sealed. A failure is logged and kept for
        `settle` to raise; the next run's DBA step catches up (dba.catch_up)."""
        try:
            with self._patient():
                with report.stages.stage("augment"):
                    self._augment(report.new_ids, models)
                self._seal(report)
        except Exception as exc:  # noqa: BLE001 - a thread of its own: said in the log and by settle()
            log.exception("the DBA vectors of an index run could not be made; the next run catches up")
            with self._runs_lock:
                self._upkeep_failure = self._upkeep_failure or exc
        finally:
            self._end_run()

    def dba_current_after_upkeep(self) -> bool:
        """Wait for the upkeep queued so far, then whether a DBA search would run on the DBA vectors. Its
        failures stay for settle(): a page that asks cannot take another run's failure for its own."""
        self._upkeep_result(lambda: None)
        return self._dba_current(Rerank.DBA)

    def settle(self) -> None:
        """Wait until the upkeep of every index run so far is done: DBA vectors current, collections sealed.
        Raises the first upkeep failure since the last call (a StoreUnavailableError when Milvus is gone)."""
        self._upkeep_result(lambda: None)
        with self._runs_lock:
            failure, self._upkeep_failure = self._upkeep_failure, None
        if failure is not None:
            raise failure

    def _seal(self, report: IndexReport, images_only: bool = False) -> None:
        """Every collection that a run wrote to is sealed after it (or only the image collections), so that
        searches use the index: Milvus Lite searches unsealed rows one by one, and the app searches in
        the process that indexed."""
        if report.new_ids:
            for m in self.models.values():
                m.store.flush() if images_only else m.flush()

    def index_uploads(self, files: Sequence[Path | str], uploads: Path) -> tuple[IndexReport, dict[str, str]]:
        """Index uploaded files (temp paths) as `uploads/<sha12>-<name>`. A file is written there only once
        it decoded and its vectors are stored, so nothing else is ever kept or served from that folder.
        Returns the report and a map from every path the report may name to the upload's own name."""
        raws, failures, names = read_uploads(files, uploads)
        report = self._run_then_upkeep(lambda: self._indexer(None, None).run_raws(raws))
        report.failed[:0] = failures
        keep_uploads(raws, report)
        return report, names

    def search_raw(self, raws: Sequence[RawImage], options: SearchOptions = SearchOptions(),
                   models: Sequence[str] | None = None) -> list[QueryResult]:
        """Queries given as bytes (files or uploads), embedded in one batched pass and searched with one
        Milvus search per model. `robust` also matches each query turned by 90, 180 and 270 degrees and
        mirrored, keeping each hit's best cosine (see model.search_plan); `regions` searches the indexed
        images' regions (for crops)."""
        chosen = self._chosen(models)
        stores, o, indexed_turns = search_plan(chosen, options, self._dba_current(options.rerank))
        queries, results = [], []
        for raw, vectors in self.embedder.query_vectors(raws, list(chosen), o.robust and not indexed_turns):
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

    def search_files(self, paths: Sequence[Path | str], options: SearchOptions = SearchOptions(),
                     models: Sequence[str] | None = None) -> list[QueryResult]:
        outcomes = [outcome for _, outcome in read_each(paths)]
        found = iter(self.search_raw([o for o in outcomes if isinstance(o, RawImage)], options, models))
        return [next(found) if isinstance(o, RawImage) else _unread(o) for o in outcomes]

    def search_file(self, path: Path | str, options: SearchOptions = SearchOptions(),
                    models: Sequence[str] | None = None) -> QueryResult:
        """One query file, searched in one batch with the queries other threads send at the same time
        (SearchBatcher): the app's searches. The result is the one search_files gives."""
        _, outcome = next(iter(read_each([path])))
        return self._batcher.search(outcome, options, models) if isinstance(outcome, RawImage) else _unread(outcome)

    def search_together(self, paths: Sequence[Path | str], options: SearchOptions = SearchOptions(),
                        models: Sequence[str] | None = None) -> QueryResult:
        """Two to five photos as one query: each model searches with the normalised mean of their vectors,
        so what the photos share counts and what only one shows counts less. Plain vectors: the robust
        and region options do not apply. A photo that cannot be read or decoded is the result's error."""
        if not 2 <= len(paths) <= MAX_TOGETHER:
            raise ValueError(f"search together takes 2 to {MAX_TOGETHER} photos, not {len(paths)}")
        if options.robust or options.regions:
            raise ValueError("photos searched together use their plain vectors: no robust or region search")
        chosen = self._chosen(models)
        name, vectors = self._mean_vectors(paths, list(chosen))
        if isinstance(vectors, str):
            return QueryResult(query=name, id=-1, hits={}, error=vectors)
        stores, o, _ = search_plan(chosen, options, self._dba_current(options.rerank))
        return search(-1, name, vectors, stores, o.k, o.rerank.expands, o.rerank.value)

    def _mean_vectors(self, paths: Sequence[Path | str], models: list[str]) -> tuple[str, dict[str, np.ndarray] | str]:
        """The photos' names joined by " + ", and per model the normalised mean of their vectors, or the
        first failure, naming its photo by its name only (a page strips only the query's own path, and
        this query is several photos)."""
        outcomes = [outcome for _, outcome in read_each(paths)]
        name = " + ".join(Path(o.source).name for o in outcomes)
        for outcome in outcomes:
            if not isinstance(outcome, RawImage):
                return name, named_only(_unread(outcome).error, outcome.source)
        embedded = self.embedder.query_vectors(outcomes, models, False)
        for raw, vectors in embedded:
            if isinstance(vectors, DecodeError):
                return name, named_only(str(vectors), raw.source)
        return name, {m: l2_normalise(np.mean([v[m] for _, v in embedded], axis=0)) for m in models}

    def search_id(self, image_id: int, options: SearchOptions = SearchOptions(),
                  models: Sequence[str] | None = None) -> QueryResult:
        """Search with an indexed image's stored vectors (no decoding, no inference; the plain vectors, so
        the robust and region options do not apply)."""
        chosen = self._chosen(models)
        vectors = {name: m.store.vectors([image_id]).get(image_id) for name, m in chosen.items()}
        missing = [name for name, v in vectors.items() if v is None]
        if missing:
            return QueryResult(query=f"id:{image_id}", id=image_id, hits={},
                               error=f"id {image_id} is not indexed for {', '.join(missing)}")
        path = next(iter(chosen.values())).store.rows([image_id])[image_id]["path"]
        stores, o, _ = search_plan(chosen, replace(options, robust=False, regions=False),
                                   self._dba_current(options.rerank))
        return search(image_id, path, vectors, stores, o.k, o.rerank.expands, o.rerank.value)

    def where_it_lands(self, edited: RawImage, original_id: int, k: int = 50) -> dict[str, dict[str, int | None]]:
        """The original's rank after an edit, per compared option and list (edits.where_it_lands)."""
        return where_it_lands(self.search_raw, edited, original_id, k)

    def hit_scores(self, result: QueryResult, hit: Hit | FusedHit) -> dict[str, HitScore]:
        """One hit under every model of a result: its rank in each list and its exact cosine to the query."""
        searched = {name: self.models[name].searched(Rerank(result.rerank), result.regions, result.turns_indexed)
                    for name in result.vectors}
        return hit_scores(result, hit, searched)

    def explain(self, query: Path | str, hit_path: str, hit_sha256: str, roots: Sequence[Path] | None = None,
                ) -> dict[str, Explanation]:
        """Per model, heat grids over the query and the hit that show which regions drive their
        similarity. The hit is read only under `roots`, and only if it still has the indexed bytes."""
        hit_raw = read_raw(hit_path, roots)
        if hit_raw.sha256 != hit_sha256:
            raise DecodeError(hit_path, "file changed since it was indexed", kind="changed")
        return explain({name: m.encoder for name, m in self.models.items()}, self.decode(read_raw(query)),
                       self.decode(hit_raw))

    def map_points(self, model: str, method: str = "PCA") -> maps.MapPoints:
        """The model's indexed vectors in 2-D, cached while the index stays the same (maps.MapCache)."""
        m = self._chosen([model])[model]
        return self._maps.points(model, m.store, m.encoder.manifest.onnx_sha256, method, self.settings.home / "uploads")

    def row(self, image_id: int) -> dict | None:
        """An indexed image's path and SHA-256, or None."""
        return next(iter(self.models.values())).store.rows([image_id]).get(image_id)

    def duplicates(self, scoring: str = FUSED_SCORING, threshold: float | None = None) -> list[Group]:
        """Near-duplicate groups of the index under one model, or fused (the mean cosine of the models),
        at that way's measured threshold unless one is given (duplicates.py)."""
        if scoring not in (*self.models, FUSED_SCORING):
            raise ValueError(f"duplicates are scored by one of {', '.join((*self.models, FUSED_SCORING))}, "
                             f"not {scoring!r}")
        if threshold is not None and not 0 < threshold <= 1:
            raise ValueError(f"the threshold is a cosine from 0 to 1, not {threshold!r}")
        chosen = self._chosen(None if scoring == FUSED_SCORING else [scoring])
        return duplicate_groups({name: m.store for name, m in chosen.items()},
                                THRESHOLDS[scoring] if threshold is None else threshold)

    def folders(self) -> list[str]:
        """The folders that hold indexed images, sorted; read again only when the index's size changed."""
        first = next(iter(self.models.values())).store
        count = first.count()
        if self._folders[0] != count:
            self._folders = (count, sorted({os.path.dirname(p) for p in first.all_paths()}))
        return self._folders[1]

    def sample_rows(self, limit: int) -> list[dict]:
        """Up to `limit` indexed rows (path, sha256) of the first model."""
        return next(iter(self.models.values())).store.sample(limit)

    def is_empty(self) -> bool:
        return all(m.store.count() == 0 for m in self.models.values())

    def evaluate(self, root: Path | str, models: Sequence[str] | None = None,
                 roots: Sequence[Path] | None = None) -> EvalReport:
        """Scores of every ranking on a labelled folder: the indexed images' vectors read from the index,
        only the others embedded; its vectors are kept for the next evaluation. With `roots`, nothing
        whose real path is outside them is read."""
        return evaluate(Path(root).resolve(), self.embedder, list(self._chosen(models)),
                        EmbeddingsFile(self.settings.evaluations_dir), roots,
                        stored=lambda name, images: self.models[name].store.vectors(images))

    def stats(self) -> dict:
        return {"milvus_uri": self.settings.milvus_uri, "redis_cache": self.cache.available,
                "models": {name: m.stats() for name, m in self.models.items()}}

    def remove(self, target: str | Path) -> int:
        """Remove a file's row, or every row under a folder, from every model's collection."""
        path = os.path.abspath(Path(target).expanduser())  # stored paths are absolute, links unresolved
        return self._on_upkeep(lambda: len(set().union(*(m.remove(m.store.ids_under(path))
                                                          for m in self.models.values()))))

    def remove_ids(self, ids: Sequence[int]) -> int:
        """Remove these indexed images (by id) from every model's collection."""
        return self._on_upkeep(lambda: len(set().union(*(m.remove(list(ids)) for m in self.models.values()))))

    def augment(self, ids: set[int], models: Sequence[str] | None = None) -> int:
        """The DBA vectors kept current after an index run (dba.catch_up), per model."""
        return self._on_upkeep(lambda: self._augment(ids, models))

    def _augment(self, ids: set[int], models: Sequence[str] | None) -> int:
        return sum(dba.catch_up(m.store, m.dba, ids) for m in self._chosen(models).values())

    def rebuild_dba(self, models: Sequence[str] | None = None) -> int:
        """Every DBA vector computed anew from the current index (exact)."""
        return self._on_upkeep(lambda: sum(dba.rebuild(m.store, m.dba) for m in self._chosen(models).values()))

    def _on_upkeep(self, work: Callable[[], int]) -> int:
        """Work that writes DBA vectors, run on the upkeep thread after what is queued there, so that only
        that thread ever writes them; its result or its failure comes back here."""
        def patiently() -> int:
            with self._patient():
                return work()
        return self._upkeep_result(patiently)

    def _upkeep_result(self, work: Callable[[], T]) -> T:
        """`work` run on the upkeep thread after what is queued there; waited for here."""
        if threading.current_thread().name.startswith(UPKEEP):
            raise RuntimeError("work queued from the upkeep thread would wait for itself")
        return self._upkeep.submit(work).result()

    def _begin_run(self) -> None:
        with self._runs_lock:
            self._runs += 1
            self._run_count += 1

    def _end_run(self) -> None:
        """An index run and its upkeep are over: whether the DBA vectors cover the index is read again, and
        the run counted out at the same time (not known if Milvus does not answer: read when next asked)."""
        whole = self._dba_covers()
        with self._runs_lock:
            self._dba_whole = whole
            self._runs -= 1

    def _dba_current(self, rerank: Rerank) -> bool:
        """For a DBA search: no index run or its upkeep is under way here, and every indexed image had its
        DBA vector after the last (read again here if that was not known, unless a run began meanwhile)."""
        if not rerank.augmented:
            return False
        with self._runs_lock:
            runs, whole, began = self._runs, self._dba_whole, self._run_count
        if runs == 0 and whole is None:
            whole = self._dba_covers()
            with self._runs_lock:
                if self._run_count == began and self._dba_whole is None:
                    self._dba_whole = whole
        return runs == 0 and bool(whole)

    def _dba_covers(self) -> bool | None:
        """Whether every model's DBA vectors cover its index; None if Milvus does not say."""
        try:
            return all(m.dba_covers_the_index() for m in self.models.values())
        except Exception:  # noqa: BLE001 - DBA searches keep to the plain vectors until it is known
            log.warning("Milvus did not say whether the DBA vectors cover the index",
                        exc_info=log.isEnabledFor(logging.DEBUG))
            return None

    def _patient(self):
        """Work on the index (index runs, removals, DBA upkeep) outlives a slow or paused Milvus: each
        failing call is tried again for up to SEARCHCORE_MILVUS_PATIENCE seconds (store.patient)."""
        return store.patient(self.settings.milvus_patience)

    def close(self) -> None:
        self._upkeep.shutdown(wait=True)
        store.disconnect(self.client, self.settings.milvus_uri)

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unread(failure: Failure) -> QueryResult:
    return QueryResult(query=failure.source, id=-1, hits={}, error=f"{failure.source}: {failure.reason}")
