"""Load on a running app's public /search API over plain HTTP: bounded, loopback only.

    python scripts/load.py http://127.0.0.1:7860/ --concurrency 20 --requests 60 [--images FOLDER] [--k 8]

Sends --requests searches from --concurrency threads (one HTTP session each), cycling through the images
of --images (default: scikit-image's sample photos), and prints p50, p95 and the error count; then its
throughput against the batched model floor measured in the same run, once the load is over (both
models of --precision, the builds the app serves, a batch of 16 through each: 1 / (1/r1 + 1/r2)
queries a second), and their ratio as `ratio X`.
A search counts as an error when the call fails or its status line carries a warning. The clients
do not download the galleries' image files: on the same 2 cores that cost the load generator ~1.7
CPU-seconds per search and made it, not the app, the bottleneck. A page fetches only the thumbnails
it shows, cached.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from searchcore import MODEL_NAMES, Settings  # noqa: E402
from searchcore.config import PRECISIONS  # noqa: E402
from searchcore.encoding.encoder import Encoder  # noqa: E402
from searchcore.encoding.preprocess import resize  # noqa: E402
from searchcore.files.decode import IMAGE_SUFFIXES, decode, read_raw  # noqa: E402
from searchcore.files.samples import sample_files  # noqa: E402

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--images", type=Path, help="query images (default: the sample photos)")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--mode", default="Side by side")
    parser.add_argument("--precision", choices=PRECISIONS, default="int8", help="the builds the app serves")
    args = parser.parse_args()
    host = urlparse(args.url).hostname or ""
    if host not in LOOPBACK and not host.startswith("127."):
        raise SystemExit(f"{host}: this load test only targets this machine (loopback)")
    images = (sorted(p for p in args.images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
              if args.images else sample_files())
    local = threading.local()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        began = time.perf_counter()
        try:
            status = search_once(local.session, args.url, images[i % len(images)], args.mode, args.k)
            failed = "⚠️" in status
        except Exception as exc:  # noqa: BLE001 - every failure is counted
            failed, status = True, repr(exc)
        with lock:
            latencies.append(time.perf_counter() - began)
            if failed:
                errors.append(status)

    began = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        list(pool.map(one, range(args.requests)))
    wall = time.perf_counter() - began
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * len(latencies))) - 1)]
    print(f"{args.requests} searches ({args.mode}, k={args.k}) from {args.concurrency} clients in {wall:.1f} s: "
          f"p50 {statistics.median(latencies):.2f} s, p95 {p95:.2f} s, errors {len(errors)}")
    for message in errors[:5]:
        print(f"  error: {message[:200]}")
    served, floor = args.requests / wall, batched_floor(images, args.precision)
    print(f"throughput {served:.1f} searches/s; batched model floor {floor:.1f} queries/s ({args.precision}); "
          f"ratio {served / floor:.2f}")


def search_once(session: requests.Session, url: str, image: Path, mode: str, k: int) -> str:
    """One search through the app's public /search API over plain HTTP (upload, call, read the event
    stream): the status line it returns. gradio_client cost the load generator about 0.25 CPU-seconds a
    search, a core's worth at this load, on the same two cores as the app."""
    with image.open("rb") as handle:
        uploaded = session.post(f"{url}gradio_api/upload", files={"files": handle}, timeout=60).json()[0]
    data = [{"path": uploaded, "meta": {"_type": "gradio.FileData"}}, mode, k, "none", False, False,
            "All indexed photos"]
    event = session.post(f"{url}gradio_api/call/search", json={"data": data}, timeout=60).json()["event_id"]
    answer = session.get(f"{url}gradio_api/call/search/{event}", timeout=120).text
    kind = re.findall(r"^event: (\w+)", answer, re.M)[-1]
    payload = re.findall(r"^data: (.*)$", answer, re.M)[-1]
    if kind != "complete":
        return f"⚠️ {kind}: {payload[:200]}"
    return next(value for value in reversed(json.loads(payload)) if isinstance(value, str))  # the status line


def batched_floor(images: list[Path], precision: str, batch: int = 16, rounds: int = 3) -> float:
    """Queries a second that both models could embed in batches of `batch` (medians of `rounds`)."""
    settings = Settings.from_env(precision=precision)
    pixels = [decode(read_raw(images[i % len(images)]), settings.max_pixels) for i in range(batch)]
    per_model = []
    for name in MODEL_NAMES:
        encoder = Encoder(settings.model_path(name))
        tensor = encoder.preprocess(np.stack([resize(p, encoder.resize_key) for p in pixels]))
        encoder.vectors(tensor)  # warm-up
        times = []
        for _ in range(rounds):
            began = time.perf_counter()
            encoder.vectors(tensor)
            times.append(time.perf_counter() - began)
        per_model.append(batch / statistics.median(times))
    return 1 / sum(1 / rate for rate in per_model)


if __name__ == "__main__":
    main()
