"""A content-addressed embedding cache in Redis, shared by every process; optional by design."""
from __future__ import annotations

import logging

import numpy as np
import redis

log = logging.getLogger("searchcore")


class EmbeddingCache:
    """Vectors keyed by model, ONNX sha256 and image sha256. Without Redis every call is a miss."""

    def __init__(self, url: str, prefix: str, ttl_seconds: int) -> None:
        self.prefix = prefix
        self.ttl = ttl_seconds
        self._redis: redis.Redis | None = None
        if not url:
            log.info("embedding cache off (no Redis URL configured)")
            return
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
            client.ping()
            self._redis = client
        except (redis.RedisError, OSError, ValueError) as exc:
            self._disable(exc, url)

    @property
    def available(self) -> bool:
        return self._redis is not None

    def key(self, model_key: str, sha256: str) -> str:
        return f"{self.prefix}emb:{model_key}:{sha256}"

    def get_many(self, model_key: str, shas: list[str], dim: int) -> dict[str, np.ndarray]:
        if self._redis is None or not shas:
            return {}
        try:
            values = self._redis.mget([self.key(model_key, s) for s in shas])
        except (redis.RedisError, OSError) as exc:
            self._disable(exc)
            return {}
        return {s: np.frombuffer(v, np.float32).copy() for s, v in zip(shas, values)
                if v is not None and len(v) == 4 * dim}

    def put_many(self, model_key: str, vectors: dict[str, np.ndarray]) -> None:
        if self._redis is None or not vectors:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for sha, vector in vectors.items():
                pipe.set(self.key(model_key, sha), np.asarray(vector, np.float32).tobytes(), ex=self.ttl)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self._disable(exc)

    def _disable(self, exc: Exception, url: str = "") -> None:
        if self._redis is not None or url:
            log.warning("Redis %sunreachable (%s): working without the embedding cache", f"at {url} " if url else "", exc)
        self._redis = None
