"""The request body cap, at the ASGI level: a body sent in chunks, with no Content-Length, is refused as
soon as the bytes received pass the cap, and the app never reads past it."""
from __future__ import annotations

import asyncio

from searchcore.web.limits import BodyLimit


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
    asyncio.run(middleware({"type": "http", "path": path, "headers": list(headers)}, receive, send))
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
