"""The query image input: uploads and `data:` URLs go to searchcore's own decoder untouched, under one size limit."""
from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

import gradio as gr

from ..files.pruning import prune
from .scratch import KEPT

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # 20 MiB, one limit for uploads (Gradio's) and data: URLs (ours)


class QueryImage(gr.Image):
    """An image input that hands the upload to searchcore's own decoder untouched, so that a broken or
    hostile upload gets searchcore's clear message instead of a generic failure. A `data:` URL (sent
    through the API instead of an upload) is size-checked before it is decoded from base64, and then
    takes the same path: Gradio never decodes the picture itself."""

    def get_block_name(self) -> str:
        return "image"

    def preprocess(self, payload):
        if payload is None:
            return None
        if (payload.url or "").startswith("data:"):
            return save_data_url(payload.url, Path(self.GRADIO_CACHE) / "pasted")
        if payload.path:
            return str(payload.path)
        return super().preprocess(payload)


def save_data_url(url: str, folder: Path) -> str:
    """The bytes of a base64 `data:` URL in a file of their own, or gr.Error before any decoding."""
    header, _, body = url.partition(",")
    if ";base64" not in header:
        raise gr.Error("A data: URL must be base64-encoded.")
    if len(body) > (MAX_UPLOAD_BYTES + 2) // 3 * 4 + 4:
        raise gr.Error(f"The image is over the upload limit of {MAX_UPLOAD_BYTES} bytes (20 MiB).")
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise gr.Error("The data: URL is not valid base64.") from None
    folder.mkdir(parents=True, exist_ok=True)
    prune(folder, KEPT - 1)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}-pasted-image"
    path.write_bytes(data)
    return str(path)
