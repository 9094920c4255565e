"""The Redis embedding cache: real Redis, own prefix; and the engine without any Redis."""
from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import redis

from searchcore import Engine
from searchcore.encoding.cache import EmbeddingCache
from searchcore.encoding.encoder import Encoder
from searchcore.files.decode import read_raw
from searchcore.retrieval.options import SearchOptions

from tests.conftest import REDIS_URL


def test_roundtrip_and_prefix(redis_prefix):
    cache = EmbeddingCache(REDIS_URL, redis_prefix, 60)
    assert cache.available
    vector = np.arange(4, dtype=np.float32)
    cache.put_many("m:sha", {"abc": vector})
    np.testing.assert_array_equal(cache.get_many("m:sha", ["abc", "nope"], 4)["abc"], vector)
    assert cache.get_many("m:sha", ["abc"], 8) == {}  # wrong length is a miss, not garbage
    assert cache.get_many("m:other", ["abc"], 4) == {}  # another model build never shares vectors
    assert list(redis.Redis.from_url(REDIS_URL).scan_iter(f"{redis_prefix}*")) == [
        f"{redis_prefix}emb:m:sha:abc".encode()]


def test_reindexing_skips_inference_when_cached(settings, photo_dir, monkeypatch):
    with Engine(settings) as first:
        assert first.index([photo_dir]).indexed == 8
        expected = first.models["vgg16"].store.vectors(first.models["vgg16"].store.existing(
            [read_raw(p).id for p in photo_dir.rglob("*.jpg")]))

    def no_inference(self, tensor):
        raise AssertionError("inference ran although every vector was cached")

    monkeypatch.setattr(Encoder, "run", no_inference)
    fresh = replace(settings, milvus_uri=str(settings.home / "second.db"))
    with Engine(fresh) as second:
        report = second.index([photo_dir])
        assert (report.indexed, report.failed) == (8, [])
        got = second.models["vgg16"].store.vectors(expected)
        for i, vector in expected.items():
            np.testing.assert_allclose(got[i], vector, atol=1e-6)


def test_engine_works_without_redis_and_says_so_once(settings, photo_dir, caplog):
    caplog.set_level(logging.WARNING, logger="searchcore")
    with Engine(replace(settings, redis_url="redis://127.0.0.1:1/0")) as engine:
        assert not engine.cache.available
        assert engine.index([photo_dir]).indexed == 8
        result = engine.search_files([next(photo_dir.glob("*.jpg"))], SearchOptions(k=3))[0]
        assert result.error is None and len(result.hits["resnet50"]) == 3
    warnings = [r for r in caplog.records if "Redis" in r.getMessage()]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
