"""Raw images to vectors for several models: cache first, then decode, resize and preprocess
(in a thread pool, overlapping the previous batch's inference), then batched ONNX runs. Optionally
each image also gets its regional descriptors and the vectors of its TURNS (turned and mirrored)."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image

from ..files.decode import DecodeError, RawImage, decode
from ..files.shown import Thumbnails
from ..storage.regions import region_vectors
from ..timing import StageTimes
from .cache import EmbeddingCache
from .encoder import Encoder
from .preprocess import resize

Tensors = dict[str, np.ndarray]  # per model: (rows, ...) input rows of one image (1, or TURNS with `turns`)
TURNS = 5  # the photo as given, turned by 90, 180 and 270 degrees (counter-clockwise), and mirrored


def turned(pixels: np.ndarray) -> np.ndarray:
    """(TURNS, H, W, 3): square HxWx3 pixels as given, turned 90, 180, 270 degrees, and mirrored. Turning
    the resized square is turning the photo: the resize scales each axis on its own."""
    return np.stack([pixels, *(np.rot90(pixels, k) for k in (1, 2, 3)), pixels[:, ::-1]])


@dataclass
class Embedded:
    """One image's vectors per model, or the reason it could not be embedded."""

    raw: RawImage
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    regions: dict[str, np.ndarray] = field(default_factory=dict)  # (regions, dim) per model, with `regions` on
    turns: dict[str, np.ndarray] = field(default_factory=dict)  # (TURNS, dim) per model, with `turns` on
    error: DecodeError | None = None


@dataclass
class _Started:
    items: list[Embedded]
    decoding: dict[int, Future]


@dataclass(frozen=True)
class _Extras:
    """What a stream makes besides each image's vectors: only indexing makes any of these."""

    thumbnails: bool = False
    turns: bool = False
    regions: bool = False


class Embedder:
    def __init__(self, encoders: Mapping[str, Encoder], cache: EmbeddingCache, max_pixels: int,
                 batch_size: int = 16, workers: int = 2, regions: bool = False, turns: bool = False,
                 thumbnails: Thumbnails | None = None) -> None:
        """Images indexed (streams with `indexing`) also get their regional descriptors with `regions`, the
        vectors of their turns with `turns` (then the cache, which holds only vectors, is written but not
        read), and a thumbnail in `thumbnails`."""
        self.encoders = dict(encoders)
        self.thumbnails = thumbnails
        self.regions = regions
        self.turns = turns
        self.cache = cache
        self.max_pixels = max_pixels
        self.batch_size = batch_size
        self.workers = workers
        self._draft = max(max(e.manifest.preprocessing.size) for e in self.encoders.values())

    def embed(self, raws: list[RawImage], models: Iterable[str] | None = None) -> list[Embedded]:
        """Every image through the given models (default: all), in one go."""
        wanted = frozenset(models or self.encoders)
        return [item for batch in self.stream([[(r, wanted) for r in raws]]) for item in batch]

    def embed_turns(self, raw: RawImage, models: Iterable[str]) -> dict[str, np.ndarray]:
        """The query and its turns, decoded and resized once, through each model in one batch: per model
        a (TURNS, dim) array, the first row the plain query's vector."""
        image = self.decode(raw)
        vectors = {}
        for name in models:
            encoder = self.encoders[name]
            vectors[name] = encoder.vectors(encoder.preprocess(turned(resize(image, encoder.resize_key))))
        return vectors

    def query_vectors(self, raws: Sequence[RawImage], models: Sequence[str], turns: bool,
                      ) -> list[tuple[RawImage, dict[str, np.ndarray] | DecodeError]]:
        """Each query's vector per model (all queries in one batched pass), or with `turns` its turns'
        vectors (one batch per query and model); a query that cannot be decoded gets the error."""
        if not turns:
            return [(item.raw, item.error or {m: item.vectors[m] for m in models})
                    for item in self.embed(list(raws), models)]
        embedded = []
        for raw in raws:
            try:
                embedded.append((raw, self.embed_turns(raw, models)))
            except DecodeError as exc:
                embedded.append((raw, exc))
        return embedded

    def stream(self, batches: Iterable[list[tuple[RawImage, frozenset[str]]]],
               times: StageTimes | None = None, indexing: bool = False) -> Iterator[list[Embedded]]:
        """Embed batch after batch; batch N+1 decodes while batch N runs through the models.
        `times` gets decode (thread-seconds) and inference seconds; `indexing` makes the extras too."""
        times = times or StageTimes()
        extras = _Extras(self.thumbnails is not None, self.turns, self.regions) if indexing else _Extras()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            pending: _Started | None = None
            for batch in batches:
                started = self._start(batch, pool, times, extras)
                if pending is not None:
                    yield self._finish(pending, times, extras)
                pending = started
            if pending is not None:
                yield self._finish(pending, times, extras)

    def _start(self, batch: list[tuple[RawImage, frozenset[str]]], pool: ThreadPoolExecutor,
               times: StageTimes, extras: _Extras) -> _Started:
        items = [Embedded(raw) for raw, _ in batch]
        needs = [frozenset(models) for _, models in batch]
        for name in set().union(*needs) if needs and not (extras.regions or extras.turns) else ():
            encoder = self.encoders[name]
            shas = [item.raw.sha256 for item, need in zip(items, needs) if name in need]
            found = self.cache.get_many(encoder.cache_key, shas, encoder.dim)
            for item, need in zip(items, needs):
                if name in need and item.raw.sha256 in found:
                    item.vectors[name] = found[item.raw.sha256]
        decoding = {i: pool.submit(self._tensors, item.raw, need - item.vectors.keys(), times, extras)
                    for i, (item, need) in enumerate(zip(items, needs)) if need - item.vectors.keys()}
        return _Started(items, decoding)

    def decode(self, raw: RawImage) -> Image.Image:
        """The image as every model here sees it before resizing (JPEGs shrunk by DCT scaling, never
        below the largest input size): the same pixels for indexing, searching and explaining."""
        return decode(raw, self.max_pixels, draft_size=(self._draft, self._draft))

    def _tensors(self, raw: RawImage, models: Iterable[str], times: StageTimes, extras: _Extras) -> Tensors:
        """Decode once, resize once per input size, preprocess per model: one image's model inputs."""
        with times.stage("decode"):
            image = self.decode(raw)
            if extras.thumbnails:
                self.thumbnails.add(raw.sha256, image)
            encoders = [self.encoders[m] for m in models]
            pixels = {key: resize(image, key) for key in {e.resize_key for e in encoders}}
            rows = {key: turned(p) if extras.turns else p[None] for key, p in pixels.items()}
            return {e.name: e.preprocess(rows[e.resize_key]) for e in encoders}

    def _finish(self, started: _Started, times: StageTimes, extras: _Extras) -> list[Embedded]:
        tensors: dict[int, Tensors] = {}
        for i, future in started.decoding.items():
            try:
                tensors[i] = future.result()
            except DecodeError as exc:
                started.items[i].error = exc
        for name, encoder in self.encoders.items():
            rows = [(i, r) for i in tensors if name in tensors[i] for r in range(len(tensors[i][name]))]
            outputs: dict[int, list[np.ndarray]] = {}
            maps: dict[int, np.ndarray] = {}
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start:start + self.batch_size]
                batch = np.stack([tensors[i][name][r] for i, r in chunk])
                with times.stage("inference"):
                    vectors, feature_maps = (encoder.vectors_and_maps(batch) if extras.regions
                                             else (encoder.vectors(batch), None))
                for n, ((i, r), vector) in enumerate(zip(chunk, vectors)):
                    outputs.setdefault(i, []).append(vector)
                    if feature_maps is not None and r == 0:
                        maps[i] = feature_maps[n]
            for i, vectors in outputs.items():
                item = started.items[i]
                item.vectors[name] = vectors[0]
                if extras.turns:
                    item.turns[name] = np.stack(vectors)
                if i in maps:
                    item.regions[name] = region_vectors(maps[i])
            self.cache.put_many(encoder.cache_key, {started.items[i].raw.sha256: v[0] for i, v in outputs.items()})
        return started.items
