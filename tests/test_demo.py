"""The demo collection (SEARCHCORE_DEMO_URL, issue 20): fetched over real HTTP from a server on 127.0.0.1,
extracted safely, indexed at start-up and offered by Evaluate; hostile archives leave nothing behind."""
from __future__ import annotations

import io
import random
import tarfile
import threading
import zipfile
from dataclasses import replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from searchcore.engine import Engine
from searchcore.files.demo import DemoError, Limits, ensure_demo
from searchcore.files.samples import sample_files
from searchcore.web import views
from searchcore.web.evaluate_tab import chosen_folder
from searchcore.web.startup import StartupIndexing, index_roots
from tests.conftest import labelled_folder


class Served(SimpleHTTPRequestHandler):
    """Files of one folder; `/stream/NAME` sends NAME without a Content-Length (as a proxy may)."""

    requests: list[str]

    def do_GET(self):  # noqa: N802 - http.server's name
        self.requests.append(self.path)
        if self.path.startswith("/stream/"):
            body = (Path(self.directory) / self.path.removeprefix("/stream/")).read_bytes()
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (folder, base URL, requests seen)."""
    folder = tmp_path / "www"
    folder.mkdir()
    requests: list[str] = []
    handler = type("Handler", (Served,), {"requests": requests})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{httpd.server_port}", requests
    httpd.shutdown()
    httpd.server_close()


def tar_of(folder: Path, target: Path, wrapper: str = "corel-demo") -> Path:
    with tarfile.open(target, "w:gz") as tar:
        tar.add(folder, arcname=wrapper)
    return target


def tar_with(target: Path, members: dict[str, bytes], links: dict[str, str] = {}) -> Path:
    with tarfile.open(target, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, points_to in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, points_to
            tar.addfile(info)
    return target


def tar_bytes() -> bytes:
    """A gzipped tar of a few kilobytes, to be cut short."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for n in range(3):
            info = tarfile.TarInfo(f"a/{n}.jpg")
            payload = random.Random(n).randbytes(1500)  # incompressible: the cut falls inside the members
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return data.getvalue()


def zip_with(target: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(target, "w") as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    return target


def test_a_demo_archive_is_fetched_extracted_indexed_and_offered_by_evaluate(settings, server, tmp_path):
    www, base, requests = server
    classes = labelled_folder(tmp_path / "classes", classes=3, per_class=4)
    tar_of(classes, www / "corel-demo.tar.gz")
    settings = replace(settings, demo_url=f"{base}/corel-demo.tar.gz", public=True)
    engine = Engine(settings)
    try:
        startup = StartupIndexing(engine, None, index_roots(settings, None))
        seen, fetching = [], startup._fetching

        def fetching_and_said(fetched: int, expected: int) -> None:
            fetching(fetched, expected)
            seen.append((fetched, expected, startup.line()))
        startup._fetching = fetching_and_said
        startup.start()
        assert startup.finished.wait(timeout=300) and startup.failure is None and startup.note is None
        demo = settings.home / "demo" / "corel-demo"
        assert settings.demo_set == demo and settings.labelled_sets == (demo,)
        assert sorted(p.name for p in demo.iterdir() if p.is_dir()) == sorted(p.name for p in classes.iterdir())
        assert [s["rows"] for s in engine.stats()["models"].values()] == [12, 12]  # the demo, not the samples
        size = (www / "corel-demo.tar.gz").stat().st_size
        assert seen[-1] == (size, size, views.fetch_text(size, size))
        # Evaluate offers it by name on a public page, and scores it
        offered = chosen_folder("corel-demo", {p.name: p for p in settings.labelled_sets}, startup.roots, True)
        report = engine.evaluate(offered, roots=startup.roots)
        assert (report.images, len(report.classes)) == (12, 3)
        # a restart with the same URL reuses the folder without fetching it again
        fetches = len(requests)
        assert ensure_demo(settings.demo_url, demo) == demo and len(requests) == fetches
    finally:
        engine.close()


def test_the_page_says_how_far_the_fetch_is():
    assert views.fetch_text(12_300_000, 40_000_000) == "Fetching the demo photos: 12.3 of 40.0 MB…"
    assert views.fetch_text(2_000_000, 0) == "Fetching the demo photos: 2.0 MB…"


@pytest.mark.parametrize("hostile, reason", [
    # deep enough that a naive extraction would write tmp_path/evil.jpg (target: home/demo/.fetch-*/set)
    (partial(tar_with, members={"a/ok.jpg": b"x", "../../../../evil.jpg": b"x"}), "outside its folder"),
    (partial(tar_with, members={"a/ok.jpg": b"x", "/tmp/searchcore-absolute.jpg": b"x"}), "outside its folder"),
    (partial(zip_with, members={"a/ok.jpg": b"x", "../evil.jpg": b"x"}), "outside its folder"),
    (partial(zip_with, members={"a/ok.jpg": b"x", "C:/evil.jpg": b"x"}), "outside its folder"),
    (partial(tar_with, members={"a/ok.jpg": b"x"}, links={"a/link.jpg": "/etc/passwd"}), "holds a link"),
    (partial(tar_with, members={"a/big.jpg": b"x" * 5000}), "over the cap of 4,096"),
    (partial(tar_with, members={f"a/{n}.jpg": b"x" for n in range(11)}), "more than 10 entries"),
    (partial(tar_with, members={f"a/{n}.txt": b"x" for n in range(11)}), "more than 10 entries"),  # any kind
    (lambda target: target.write_bytes(tar_bytes()[:2500]) or target, "could not be read"),  # cut off
    (partial(tar_with, members={"a/notes.txt": b"x"}), "holds no image files"),
    (lambda target: target.write_bytes(b"not an archive" * 10) or target, "neither a zip nor a tar"),
])
def test_a_hostile_or_oversized_archive_is_refused_and_leaves_nothing(server, tmp_path, hostile, reason):
    www, base, _ = server
    hostile(www / "set.tar")
    home = tmp_path / "home"
    with pytest.raises(DemoError, match=reason):
        ensure_demo(f"{base}/set.tar", home / "demo" / "set", Limits(files=10, file_bytes=4096))
    assert list((home / "demo").iterdir()) == []  # no set, no temporary folder
    assert not (tmp_path / "evil.jpg").exists() and not (home / "evil.jpg").exists()
    assert not Path("/tmp/searchcore-absolute.jpg").exists()


def test_a_download_over_the_cap_is_stopped_with_or_without_its_length(server, tmp_path):
    www, base, _ = server
    (www / "big.zip").write_bytes(b"z" * 50_000)
    for url in (f"{base}/big.zip", f"{base}/stream/big.zip"):
        with pytest.raises(DemoError, match="cap of 10,000 bytes"):
            ensure_demo(url, tmp_path / "demo" / "big", Limits(download_bytes=10_000))
    for url, says in ((f"{base}/missing.zip?token=secret", "404"), ("file:///etc/passwd", "only http and https")):
        with pytest.raises(DemoError, match=says) as refused:
            ensure_demo(url, tmp_path / "demo" / "x")
        assert "secret" not in str(refused.value)  # a signed URL's token is not said on the page
    assert list((tmp_path / "demo").iterdir()) == []


def test_a_demo_that_cannot_be_had_leaves_the_samples_and_says_why(settings, server):
    _, base, _ = server
    engine = Engine(replace(settings, demo_url=f"{base}/missing.tar"))
    try:
        startup = StartupIndexing(engine, None, index_roots(engine.settings, None)).start()
        assert startup.finished.wait(timeout=300) and startup.failure is None
        assert startup.line().startswith("ℹ️ The demo photos could not be had: demo URL ")
        assert "404" in startup.line() and startup.line().endswith("The app shows the bundled sample photos instead.")
        assert [s["rows"] for s in engine.stats()["models"].values()] == [len(sample_files())] * 2
    finally:
        engine.close()
