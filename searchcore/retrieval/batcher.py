"""Concurrent searches gathered into one: queries with the same options that arrive within a short window
of the first are embedded in one batch per model and searched with one Milvus call per model, and each
caller gets its own result, the same as if it had searched alone.

On a CPU the models run a batch of n faster than n batches of one, so many users at once are served near
the models' batched speed instead of one query at a time. A lone query waits at most the window.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Callable, Hashable, Sequence

from ..files.decode import RawImage
from .options import SearchOptions
from .search import QueryResult

WINDOW_SECONDS = 0.004  # how long the first query of a batch waits for others
MAX_BATCH = 16  # a full batch runs at once

SearchMany = Callable[[Sequence[RawImage], SearchOptions, Sequence[str] | None], list[QueryResult]]


@dataclass
class _Batch:
    raws: list[RawImage] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)  # no more room: the leader need not wait
    done: threading.Event = field(default_factory=threading.Event)
    results: list[QueryResult] = field(default_factory=list)
    error: BaseException | None = None


class SearchBatcher:
    """`search_many(raws, options, models)` (Engine.search_raw) run once per batch of concurrent queries.
    The first query of a batch leads it: it waits up to `window` seconds (less if the batch fills), then
    searches for everyone; the others wait for its answer."""

    def __init__(self, search_many: SearchMany, window: float = WINDOW_SECONDS, max_batch: int = MAX_BATCH) -> None:
        self.search_many, self.window, self.max_batch = search_many, window, max_batch
        self._open: dict[Hashable, _Batch] = {}  # the batch that still takes queries, per options and models
        self._lock = threading.Lock()

    def search(self, raw: RawImage, options: SearchOptions, models: Sequence[str] | None = None) -> QueryResult:
        key = (options, tuple(models) if models else None)
        with self._lock:
            batch = self._open.get(key)
            leads = batch is None
            if leads:
                batch = self._open[key] = _Batch()
            place = len(batch.raws)
            batch.raws.append(raw)
            if len(batch.raws) >= self.max_batch:
                del self._open[key]
                batch.full.set()
        if leads:
            self._lead(key, batch, options, models)
        batch.done.wait()
        if batch.error is not None:  # each caller raises a copy of its own: threads never share a traceback
            raise copy.copy(batch.error) from batch.error
        return batch.results[place]

    def _lead(self, key: Hashable, batch: _Batch, options: SearchOptions, models: Sequence[str] | None) -> None:
        batch.full.wait(self.window)
        with self._lock:
            if self._open.get(key) is batch:
                del self._open[key]  # closed: later queries start a batch of their own
        try:
            batch.results = self.search_many(batch.raws, options, models)
        except BaseException as exc:  # noqa: BLE001 - every caller of the batch gets the failure
            batch.error = exc
        finally:
            batch.done.set()
