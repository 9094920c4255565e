"""The request body cap, at the ASGI level: a body sent in chunks, with no Content-Length, is refused as
soon as the bytes received pass the cap, and the app never reads past it."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from searchcore.web.limits import BodyLimit
from tests.conftest import free_port


def run(middleware: BodyLimit, path: str, chunks: list[bytes], headers=()) -> tuple[list[dict], int]:
    """Send the chunks through the middleware to an app that reads the whole body; (what was sent back,
    bytes the app read)."""
    sent, read = [], []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            read.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    messages = [{"type": "http.request", "body": c, "more_body": n < len(chunks) - 1} for n, c in enumerate(chunks)]

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)
    middleware.app = app
    scope = {"type": "http", "path": path, "headers": list(headers)}
    with ThreadPoolExecutor(1) as thread:  # a loop of its own: the browser tests' Playwright runs one here
        thread.submit(asyncio.run, middleware(scope, receive, send)).result()
    return sent, sum(read)


def test_chunked_bodies_are_cut_off_at_the_cap_of_their_route():
    limit = BodyLimit(None, json_bytes=1000, upload_bytes=5000)
    sent, read = run(limit, "/gradio_api/queue/join", [b"x" * 400] * 10)
    assert sent[0]["status"] == 413 and b"over the limit of 1000 bytes" in sent[1]["body"] and read <= 1200
    sent, read = run(limit, "/gradio_api/upload", [b"x" * 400] * 10)
    assert sent[0]["status"] == 200 and read == 4000  # uploads have a cap of their own
    sent, _ = run(limit, "/gradio_api/upload", [b"x"], headers=[(b"content-length", b"5001")])
    assert sent[0]["status"] == 413
    sent, _ = run(limit, "/", [b"x"], headers=[(b"content-length", b"-1")])
    assert sent[0]["status"] == 413  # a length that is not a number is refused too


def test_an_upload_cut_off_at_the_cap_leaves_no_part_files_behind(tmp_path, monkeypatch):
    """Gradio's upload parser removes the part files it wrote only on a multipart error: a plain one
    from the cap left every part written before it on disk, where nothing removes them."""
    import gradio as gr
    import requests
    from starlette.middleware import Middleware

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    with gr.Blocks() as demo:
        gr.File()
    demo.launch(prevent_thread_lock=True, quiet=True, server_port=free_port(),
                app_kwargs={"middleware": [Middleware(BodyLimit, upload_bytes=1_000_000)]})
    try:
        boundary = "searchcore-test"

        def parts():  # sent in chunks, no Content-Length: only the running count can stop it
            for n in range(5):
                yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{n}.bin\"\r\n"
                       "Content-Type: application/octet-stream\r\n\r\n").encode() + b"x" * 400_000 + b"\r\n"
            yield f"--{boundary}--\r\n".encode()
        answer = requests.post(f"{demo.local_url}gradio_api/upload", data=parts(), timeout=60,
                               headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert answer.status_code == 413, (answer.status_code, answer.text[:200])
        assert not [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()]
    finally:
        demo.close()


def test_the_page_that_says_what_the_app_waits_for_has_the_same_cap():
    import requests

    from searchcore.web.waiting import Waiting

    waiting = Waiting()
    waiting.serve(server_port=free_port())
    try:
        answer = requests.post(f"{waiting.page.local_url}gradio_api/queue/join", data=b"x" * (40 * 2**20),
                               headers={"content-type": "application/json"}, timeout=60)
        assert answer.status_code == 413
    finally:
        waiting.close()
