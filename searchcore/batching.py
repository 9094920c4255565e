"""The one batcher: items in lists of a size (indexing, evaluation, DBA upkeep), and the slices that cut a
sequence or an array into parts (requests to Milvus, chunked scoring)."""
from __future__ import annotations

from itertools import islice
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of `size` items (the last one shorter)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def spans(length: int, size: int) -> Iterator[slice]:
    """Slices of `size` positions that cover range(length) in order (the last one shorter)."""
    for start in range(0, length, size):
        yield slice(start, min(start + size, length))
