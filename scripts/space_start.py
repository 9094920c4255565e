"""A Hugging Face Space's cold start, measured: a fresh clone, a fresh venv with `pip install -r
requirements.txt` and nothing else, an empty HOME, SPACE_ID set, no Redis, `python app.py`.

    .venv/bin/python scripts/space_start.py [--keep DIR]

Prints the seconds to install, to the first HTTP 200, to the app's own page, and to the first search
with hits, and the peak RSS of the largest process (the app or a model export it ran)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from gradio_client import Client, handle_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from searchcore.files.samples import sample_files  # noqa: E402
from searchcore.web.waiting import TITLE  # noqa: E402


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(check, timeout: float) -> float:
    """Seconds until check() is true (asked every 0.5 s: a measurement, not a test), or a SystemExit."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"not within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp folder, removed)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="space-start-"))
    clone, home = work / "space", work / "home"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    subprocess.run(["python3", "-m", "venv", str(clone / ".venv")], check=True)  # the machine's Python
    python = str(clone / ".venv" / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", "-r", "requirements.txt"], cwd=clone, check=True)
    installed = time.monotonic() - started
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "SPACE_ID": "measure/space-start",
           "SEARCHCORE_REDIS_URL": "redis://127.0.0.1:1/0", "SEARCHCORE_PERSISTENT_DIR": "",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    with (work / "app.log").open("w") as log:
        app = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(work / "peak-kib"), python, "app.py"],
                               cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        served = until(lambda: requests.get(url, timeout=2).ok, 120)
        own = served + until(lambda: requests.get(f"{url}config", timeout=2).json()["title"] != TITLE, 1800)
        client = Client(url, verbose=False)
        query = handle_file(str(sample_files()[1]))
        hits = own + until(lambda: client.predict(query, "Side by side", 3, api_name="/search")[0], 900)
    finally:  # stop the app itself: /usr/bin/time then writes its peak
        for child in Path(f"/proc/{app.pid}/task/{app.pid}/children").read_text().split():
            os.kill(int(child), signal.SIGTERM)
        app.wait(timeout=60)
    peak = int((work / "peak-kib").read_text().split()[-1]) / 1024 / 1024
    print(json.dumps({"pip_install_s": round(installed, 1), "first_http_200_s": round(served, 1),
                      "app_page_s": round(own, 1), "first_hits_s": round(hits, 1), "peak_rss_gib": round(peak, 2)}))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
