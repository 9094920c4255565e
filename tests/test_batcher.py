"""Dynamic batching of concurrent searches (issue 22): queries sent at once are embedded and searched
together, and each caller gets the answer it would have got alone."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from searchcore.files.decode import read_raw
from searchcore.retrieval.batcher import SearchBatcher
from searchcore.retrieval.options import Rerank, SearchOptions


def test_concurrent_searches_run_as_one_batch_and_answer_each_as_alone(engine, many_photos):
    engine.index([many_photos])
    raws = [read_raw(p) for p in sorted(many_photos.glob("*.jpg"))[:6]]
    calls = []

    def search_many(batch, options, models):  # the engine's own search, its calls counted
        calls.append(len(batch))
        return engine.search_raw(batch, options, models)
    # a batch of six runs as soon as the sixth query arrives: no waiting on the window in this test
    batcher = SearchBatcher(search_many, window=600, max_batch=len(raws))
    options = SearchOptions(k=5, rerank=Rerank.QE)
    start = threading.Barrier(len(raws))

    def one(raw):
        start.wait()
        return batcher.search(raw, options)
    with ThreadPoolExecutor(len(raws)) as pool:
        together = list(pool.map(one, raws))
    assert calls == [len(raws)]  # one batch: one model pass and one Milvus search per model for all
    for raw, batched in zip(raws, together):
        alone = engine.search_raw([raw], options)[0]
        assert batched.query == raw.source and batched.id == raw.id
        for model in alone.hits:
            assert [h.id for h in batched.hits[model]] == [h.id for h in alone.hits[model]], model
            assert [h.cosine for h in batched.hits[model]] == pytest.approx([h.cosine for h in alone.hits[model]],
                                                                            abs=1e-5)
        assert [h.id for h in batched.fused] == [h.id for h in alone.fused]


def test_queries_with_other_options_stay_apart_and_a_failure_reaches_every_caller_of_its_batch(engine, many_photos):
    raws = [read_raw(p) for p in sorted(many_photos.glob("*.jpg"))[:4]]
    calls = []

    def search_many(batch, options, models):
        calls.append((len(batch), options.k))
        if options.k == 3:
            raise RuntimeError("Milvus went away")
        return engine.search_raw(batch, options, models)
    # two queries of k=2 and two of k=3 at once; each pair fills a batch of its own (else: one of four)
    batcher = SearchBatcher(search_many, window=600, max_batch=2)
    start = threading.Barrier(len(raws))

    def one(n: int):
        start.wait()
        try:
            return batcher.search(raws[n], SearchOptions(k=2 if n % 2 else 3))
        except RuntimeError as exc:
            return exc
    with ThreadPoolExecutor(len(raws)) as pool:
        answers = list(pool.map(one, range(len(raws))))
    assert sorted(calls) == [(2, 2), (2, 3)]
    assert [type(a).__name__ for a in answers] == ["RuntimeError", "QueryResult", "RuntimeError", "QueryResult"]
    assert answers[0] is not answers[2] and str(answers[0]) == "Milvus went away"  # a copy for each caller
    assert [a.id for a in answers[1::2]] == [raws[1].id, raws[3].id]
