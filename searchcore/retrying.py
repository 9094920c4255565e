"""The one loop that tries a call again: a wait that doubles up to a cap, for as long as a patience allows
(Milvus calls in an index run; the app waiting for Milvus at start, for ever)."""
from __future__ import annotations

import math
import time
from typing import Callable, TypeVar

T = TypeVar("T")


def retried(attempt: Callable[[], T], worth_retrying: Callable[[Exception], bool],
            said: Callable[[Exception, float, int], None], first_wait: float, max_wait: float,
            patience: float = math.inf) -> T:
    """attempt() until it returns. A failure that worth_retrying() accepts is said (the error, the wait
    before the next try, the tries so far) and tried again, unless the next try would start after
    `patience` seconds; any other failure, or the last, is raised as it is."""
    deadline, wait, tries = time.monotonic() + patience, first_wait, 1
    while True:
        try:
            return attempt()
        except Exception as exc:
            if not worth_retrying(exc) or time.monotonic() + wait > deadline:
                raise
            said(exc, wait, tries)
        time.sleep(wait)
        wait, tries = min(2 * wait, max_wait), tries + 1
