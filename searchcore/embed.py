"""Raw images to vectors for several models: cache first, then decode, resize and preprocess
(in a thread pool, overlapping the previous batch's inference), then batched ONNX runs."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

import numpy as np
from PIL import Image

from .cache import EmbeddingCache
from .decode import DecodeError, RawImage, decode
from .encoder import Encoder
from .preprocess import resize
from .regions import region_vectors
from .timing import StageTimes

Tensors = dict[str, np.ndarray]
# The robust query: the photo as given, turned by 90, 180 and 270 degrees, and mirrored.
VARIANTS: tuple[Image.Transpose | None, ...] = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                                                Image.Transpose.ROTATE_270, Image.Transpose.FLIP_LEFT_RIGHT)


@dataclass
class Embedded:
    """One image's vectors per model, or the reason it could not be embedded."""

    raw: RawImage
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    regions: dict[str, np.ndarray] = field(default_factory=dict)  # (regions, dim) per model, with `regions` on
    error: DecodeError | None = None


@dataclass
class _Started:
    items: list[Embedded]
    decoding: dict[int, Future]


class Embedder:
    def __init__(self, encoders: Mapping[str, Encoder], cache: EmbeddingCache, max_pixels: int,
                 batch_size: int = 16, workers: int = 2, regions: bool = False) -> None:
        """With `regions`, every image also gets its regional descriptors (so the cache, which holds
        only vectors, is written but not read)."""
        self.encoders = dict(encoders)
        self.regions = regions
        self.cache = cache
        self.max_pixels = max_pixels
        self.batch_size = batch_size
        self.workers = workers
        self._draft = max(max(e.manifest.preprocessing.size) for e in self.encoders.values())

    def embed(self, raws: list[RawImage], models: Iterable[str] | None = None) -> list[Embedded]:
        """Every image through the given models (default: all), in one go."""
        wanted = frozenset(models or self.encoders)
        return [item for batch in self.stream([[(r, wanted) for r in raws]]) for item in batch]

    def embed_variants(self, raw: RawImage, models: Iterable[str]) -> dict[str, np.ndarray]:
        """The query and its VARIANTS, decoded once and run through each model in one batch: per model
        a (len(VARIANTS), dim) array, the first row the plain query's vector."""
        image = self.decode(raw)
        turned = [image if t is None else image.transpose(t) for t in VARIANTS]
        vectors = {}
        for name in models:
            encoder = self.encoders[name]
            pixels = np.stack([resize(im, encoder.resize_key) for im in turned])
            vectors[name] = encoder.vectors(encoder.preprocess(pixels))
        return vectors

    def stream(self, batches: Iterable[list[tuple[RawImage, frozenset[str]]]],
               times: StageTimes | None = None) -> Iterator[list[Embedded]]:
        """Embed batch after batch; batch N+1 decodes while batch N runs through the models.
        `times` gets decode (thread-seconds) and inference seconds."""
        times = times or StageTimes()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            pending: _Started | None = None
            for batch in batches:
                started = self._start(batch, pool, times)
                if pending is not None:
                    yield self._finish(pending, times)
                pending = started
            if pending is not None:
                yield self._finish(pending, times)

    def _start(self, batch: list[tuple[RawImage, frozenset[str]]], pool: ThreadPoolExecutor,
               times: StageTimes) -> _Started:
        items = [Embedded(raw) for raw, _ in batch]
        needs = [frozenset(models) for _, models in batch]
        for name in set().union(*needs) if needs and not self.regions else ():
            encoder = self.encoders[name]
            shas = [item.raw.sha256 for item, need in zip(items, needs) if name in need]
            found = self.cache.get_many(encoder.cache_key, shas, encoder.dim)
            for item, need in zip(items, needs):
                if name in need and item.raw.sha256 in found:
                    item.vectors[name] = found[item.raw.sha256]
        decoding = {i: pool.submit(self._tensors, item.raw, need - item.vectors.keys(), times)
                    for i, (item, need) in enumerate(zip(items, needs)) if need - item.vectors.keys()}
        return _Started(items, decoding)

    def decode(self, raw: RawImage) -> Image.Image:
        """The image as every model here sees it before resizing (JPEGs shrunk by DCT scaling, never
        below the largest input size): the same pixels for indexing, searching and explaining."""
        return decode(raw, self.max_pixels, draft_size=(self._draft, self._draft))

    def _tensors(self, raw: RawImage, models: Iterable[str], times: StageTimes) -> Tensors:
        """Decode once, resize once per input size, preprocess per model: one image's model inputs."""
        with times.stage("decode"):
            image = self.decode(raw)
            encoders = [self.encoders[m] for m in models]
            pixels = {key: resize(image, key)[None] for key in {e.resize_key for e in encoders}}
            return {e.name: e.preprocess(pixels[e.resize_key])[0] for e in encoders}

    def _finish(self, started: _Started, times: StageTimes) -> list[Embedded]:
        tensors: dict[int, Tensors] = {}
        for i, future in started.decoding.items():
            try:
                tensors[i] = future.result()
            except DecodeError as exc:
                started.items[i].error = exc
        for name, encoder in self.encoders.items():
            todo = [i for i in tensors if name in tensors[i]]
            fresh: dict[str, np.ndarray] = {}
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start:start + self.batch_size]
                batch = np.stack([tensors[i][name] for i in chunk])
                with times.stage("inference"):
                    vectors, maps = encoder.vectors_and_maps(batch) if self.regions else (encoder.vectors(batch), None)
                for n, (i, vector) in enumerate(zip(chunk, vectors)):
                    started.items[i].vectors[name] = vector
                    fresh[started.items[i].raw.sha256] = vector
                    if maps is not None:
                        started.items[i].regions[name] = region_vectors(maps[n])
            self.cache.put_many(encoder.cache_key, fresh)
        return started.items
