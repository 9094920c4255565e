"""A cap on every request's body, applied before the app reads it: by the declared Content-Length, and
for a body sent in chunks, as soon as the bytes received pass the cap. Gradio parsed a JSON body whole
(a 200 MB `data:` URL, say) before any check of ours could run, and kept the memory."""
from __future__ import annotations

from typing import Awaitable, Callable

from starlette.formparsers import MultiPartException

from .upload import MAX_UPLOAD_BYTES

# A JSON request carries at most one image as a data: URL (base64: 4/3 of the bytes) and some fields.
MAX_JSON_BYTES = MAX_UPLOAD_BYTES * 4 // 3 + 1024 * 1024
# An upload request streams its files to disk, each under MAX_UPLOAD_BYTES (Gradio's max_file_size).
MAX_UPLOAD_REQUEST_BYTES = 25 * MAX_UPLOAD_BYTES


class BodyTooLarge(MultiPartException):
    """A multipart parse failure to Gradio's upload parser, so that it removes the part files it wrote
    and answers 413 itself (its message says "maximum allowed size")."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"Request body exceeded maximum allowed size of {cap} bytes.")


class BodyLimit:
    """ASGI middleware: 413 for a body over the cap of its route (uploads, or everything else)."""

    def __init__(self, app, json_bytes: int = MAX_JSON_BYTES, upload_bytes: int = MAX_UPLOAD_REQUEST_BYTES) -> None:
        self.app, self.json_bytes, self.upload_bytes = app, json_bytes, upload_bytes

    def cap(self, path: str) -> int:
        return self.upload_bytes if path.rstrip("/").endswith("/upload") else self.json_bytes

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.cap(scope.get("path", ""))
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > cap):
            await refuse(send, cap)
            return
        received, started = 0, False

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise BodyTooLarge(cap)
            return message

        async def watched(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)
        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if not started:  # else the app answered already (Gradio's upload route: 413 of its own)
                await refuse(send, cap)


async def refuse(send, cap: int) -> None:
    body = f"request body over the limit of {cap} bytes".encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
