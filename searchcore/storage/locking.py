"""Reads and writes of one Milvus Lite collection kept apart, for the consistency Lite lacks."""
from __future__ import annotations

import contextlib
import os
import threading


class ReadWriteLock:
    """Many readers or one writer; a waiting writer goes before readers that come after it, so that a
    stream of searches never starves a flush. Not re-entrant: no guarded call makes another."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.readers = 0
        self.writer_active = False
        self.writers_waiting = 0
        self.readers_waiting = 0  # for a test that holds a writer until a reader waits behind it

    @contextlib.contextmanager
    def reading(self):
        with self.changed:
            self.readers_waiting += 1
            self.changed.notify_all()
            self.changed.wait_for(lambda: not self.writer_active and not self.writers_waiting)
            self.readers_waiting -= 1
            self.readers += 1
        try:
            yield
        finally:
            with self.changed:
                self.readers -= 1
                self.changed.notify_all()

    @contextlib.contextmanager
    def writing(self):
        with self.changed:
            self.writers_waiting += 1
            self.changed.wait_for(lambda: not self.writer_active and not self.readers)
            self.writers_waiting -= 1
            self.writer_active = True
        try:
            yield
        finally:
            with self.changed:
                self.writer_active = False
                self.changed.notify_all()


def held(lock: ReadWriteLock | None, writes: bool):
    """The lock held for a write or a read; nothing to hold without a lock (a Milvus server)."""
    if lock is None:
        return contextlib.nullcontext()
    return lock.writing() if writes else lock.reading()


_LITE_LOCKS: dict[tuple[str, str], ReadWriteLock] = {}
_LITE_LOCKS_LOCK = threading.Lock()


def lite_lock(uri: str, name: str) -> ReadWriteLock | None:
    """The lock of one Milvus Lite collection, shared by every store of this process on it (keyed as Lite
    keys its in-process servers: by absolute path); None for a Milvus server, which keeps its reads
    consistent itself, or when no URI is given. Milvus Lite 3.2.2 does not: a flush (asked for, or its
    own inside a large write) swaps in an empty memtable before the frozen rows reach a segment, and a
    read in between misses them (`milvus_lite/engine/collection.py`, `_trigger_flush`).

    Not covered: a write that passes its timeout lets the lock go while Lite finishes it, and Lite's own
    flushes when it loads or closes a collection."""
    if not uri or "://" in uri:
        return None
    with _LITE_LOCKS_LOCK:
        return _LITE_LOCKS.setdefault((os.path.abspath(os.path.expanduser(uri)), name), ReadWriteLock())
