"""Seconds spent per stage of a run (read, decode, inference, write), summed over batches and threads."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

STAGES = ("read", "decode", "inference", "write")


class StageTimes:
    """Thread-safe totals per stage; decode runs on several threads, so its total is thread-seconds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def text(self) -> str:
        """`read 0.4 s · decode 3.1 s · inference 10.2 s · write 0.3 s`, known stages first."""
        names = [s for s in STAGES if s in self.seconds] + sorted(set(self.seconds) - set(STAGES))
        return " · ".join(f"{name} {self.seconds[name]:.1f} s" for name in names)
