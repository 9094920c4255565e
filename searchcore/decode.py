"""One decode path for files and uploads: bytes in, an RGB Pillow image out, or a DecodeError."""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
BACKGROUND = (255, 255, 255)
MAX_FILE_BYTES = 100 * 1024 * 1024


class DecodeError(ValueError):
    """An image that cannot be used, with the file it came from and why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass(frozen=True)
class RawImage:
    """The bytes of one image and where they came from; identity is the content hash."""

    source: str
    data: bytes
    sha256: str

    @property
    def id(self) -> int:
        return content_id(self.sha256)


def content_id(sha256_hex: str) -> int:
    """A positive int64 from the first 63 bits of the SHA-256: the same bytes give the same id."""
    return int(sha256_hex[:16], 16) & 0x7FFF_FFFF_FFFF_FFFF


def raw_from_bytes(data: bytes, source: str) -> RawImage:
    return RawImage(source=source, data=data, sha256=hashlib.sha256(data).hexdigest())


def read_raw(path: Path | str) -> RawImage:
    """Read a file's bytes; unreadable or oversized files raise DecodeError naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DecodeError(str(path), f"file is {size} bytes, over the {MAX_FILE_BYTES} byte limit")
        data = path.read_bytes()
    except OSError as exc:
        raise DecodeError(str(path), exc.strerror or str(exc)) from exc
    if not data:
        raise DecodeError(str(path), "file is empty")
    return raw_from_bytes(data, str(path))


def decode(raw: RawImage, max_pixels: int, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode to RGB: first frame, EXIF orientation applied, alpha on white, any mode to 8-bit RGB.

    `draft_size` lets JPEG decoding shrink by DCT scaling while staying at least that size.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw.data))
            width, height = image.size
            if width * height > max_pixels:
                raise DecodeError(
                    raw.source, f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
                )
            if draft_size and image.format == "JPEG":
                image.draft("RGB", draft_size)
            image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image)
            return to_rgb(image)
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError(raw.source, f"image is too large ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise DecodeError(raw.source, "not an image file Pillow can read") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DecodeError(raw.source, f"image data is broken or truncated ({exc})") from exc
    except Exception as exc:  # a malformed file can trip any error inside a Pillow plugin
        raise DecodeError(raw.source, f"image could not be decoded ({type(exc).__name__}: {exc})") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is composited on a fixed white background."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = _high_bit_depth_to_l(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, BACKGROUND)
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def _high_bit_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit grayscale scaled to 0..255 (Pillow's own convert would clip at 255)."""
    pixels = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or pixels.max() > 255 else 255.0
    if image.mode == "F" and pixels.max() <= 1.0:
        top = 1.0
    return Image.fromarray(np.clip(pixels / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
