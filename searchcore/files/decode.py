"""One decode path for files and uploads: bytes in, an RGB Pillow image out, or a DecodeError."""
from __future__ import annotations

import hashlib
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..batching import spans

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
BACKGROUND = (255, 255, 255)
HIGH_BIT_DEPTH = frozenset({"I;16", "I;16B", "I;16L", "I", "F"})  # grayscale modes of more than 8 bits
MAX_FILE_BYTES = 100 * 1024 * 1024
STRIP_ROWS = 128  # rows of a high-bit-depth image scaled to 8 bits at a time
P = TypeVar("P", Path, str)


class DecodeError(ValueError):
    """An image that cannot be used, with the file it came from and why."""

    def __init__(self, source: str, reason: str, kind: str = "") -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
        self.kind = kind or reason  # a short category, for grouping many failures


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


def read_raw(path: Path | str, roots: Sequence[Path] | None = None, max_bytes: int = MAX_FILE_BYTES) -> RawImage:
    """Read one regular file's bytes, at most `max_bytes`, counted while reading (a FIFO, a device or a
    link to one is refused without blocking). With `roots`, a file whose real path (links resolved)
    is outside them is refused; it is named by its own path, never by its target."""
    path = Path(path)
    source = str(path)
    try:
        real = path.resolve()
        if roots is not None and not is_under(real, roots):
            raise DecodeError(source, "links to a file outside the allowed folders", kind="outside the allowed folders")
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise DecodeError(source, f"not a regular file ({_file_kind(mode)})", kind="not a regular file")
            os.set_blocking(fd, True)
            with os.fdopen(fd, "rb", closefd=False) as handle:
                data = handle.read(max_bytes + 1)
        finally:
            os.close(fd)
    except DecodeError:
        raise
    except OSError as exc:
        raise DecodeError(source, exc.strerror or str(exc), kind="unreadable") from exc
    except (ValueError, RuntimeError) as exc:  # a NUL byte in the name, a symlink loop
        raise DecodeError(source, str(exc), kind="unreadable") from exc
    if len(data) > max_bytes:
        raise DecodeError(source, f"file is over the {max_bytes} byte limit", kind="file too large")
    return raw_from_bytes(data, source)


def named_only(message: str, path: str) -> str:
    """The message with the file's server path (an upload's temp path, say) cut down to its name."""
    return message.replace(str(path), Path(path).name) if path else message


@dataclass(frozen=True)
class Failure:
    """A file that could not be used: its own path, a short kind (for grouping) and the full reason."""

    source: str
    kind: str
    reason: str

    @classmethod
    def of(cls, error: DecodeError) -> "Failure":
        return cls(error.source, error.kind, error.reason)


def read_each(paths: Iterable[P], roots: Sequence[Path] | None = None) -> Iterator[tuple[P, RawImage | Failure]]:
    """The one reader for index, eval and search: each path with its bytes or the reason it failed."""
    for path in paths:
        try:
            yield path, read_raw(path, roots)
        except DecodeError as exc:
            yield path, Failure.of(exc)


def read_many(paths: Iterable[P], failures: list[Failure], roots: Sequence[Path] | None = None,
              ) -> Iterator[tuple[P, RawImage]]:
    """(path, bytes) for each readable file; the others are recorded in `failures` and skipped."""
    for path, outcome in read_each(paths, roots):
        if isinstance(outcome, Failure):
            failures.append(outcome)
        else:
            yield path, outcome


def safe_file_name(name: str, limit: int = 100) -> str:
    """A file name of letters, digits, `.`, `-` and `_` only (no control or bidi characters, no `/`)."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name).lstrip(".")
    return cleaned[-limit:] or "image"


def is_under(real: Path, roots: Sequence[Path]) -> bool:
    """True when an already resolved path is one of the roots or lies below one."""
    return any(real == root or real.is_relative_to(root) for root in roots)


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "a special file"


def _bomb_pixels(exc: Exception) -> str:
    """The pixel count Pillow's own decompression-bomb guard names in its message, if any."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return found.group(1) if found else "too many"


def decode(raw: RawImage, max_pixels: int, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode to RGB: first frame, EXIF orientation applied, alpha on white, any mode to 8-bit RGB.

    `draft_size` lets JPEG decoding shrink by DCT scaling while staying at least that size. The pixel
    limit is checked from the header, before any pixel is decoded; the process-wide warnings filter
    is left alone (other threads, Gradio's among them, share it).
    """
    if not raw.data:
        raise DecodeError(raw.source, "file is empty", kind="empty file")
    try:
        image = Image.open(io.BytesIO(raw.data))
        width, height = image.size
        if width * height > max_pixels:
            raise DecodeError(raw.source, f"image is {width}x{height} = {width * height} pixels, over the limit of "
                              f"{max_pixels}", kind="too many pixels")
        if draft_size and image.format == "JPEG":
            image.draft("RGB", draft_size)
        image.seek(0)
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # not a copy of the whole image
        if image.mode in HIGH_BIT_DEPTH:
            image = _high_bit_depth_to_l(image)  # and the deep image is let go before the RGB one is made
        return to_rgb(image)
    except DecodeError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own guard fires in open() before our check can
        limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))
        raise DecodeError(raw.source, f"image is {_bomb_pixels(exc)} pixels, over the limit of {limit}",
                          kind="too many pixels") from exc
    except UnidentifiedImageError as exc:
        raise DecodeError(raw.source, "not an image file Pillow can read", kind="not an image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DecodeError(raw.source, f"image data is broken or truncated ({exc})", kind="broken or truncated") from exc
    except Exception as exc:  # a malformed file can trip any error inside a Pillow plugin
        raise DecodeError(raw.source, f"image could not be decoded ({type(exc).__name__}: {exc})",
                          kind="broken or truncated") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode of 8 bits (decode scales deeper ones first) to RGB; transparency is composited on a
    fixed white background."""
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
    """16-bit and 32-bit grayscale scaled to 0..255 (Pillow's own convert would clip at 255), a strip of
    rows at a time: a float copy of the whole image took several times the memory of the image itself."""
    width, height = image.size
    strips = [(0, rows.start, width, rows.stop) for rows in spans(height, STRIP_ROWS)]
    peak = max((float(np.nanmax(np.asarray(image.crop(box)), initial=0)) for box in strips), default=0.0)
    top = 65535.0 if image.mode.startswith("I;16") or peak > 255 else 255.0
    if image.mode == "F" and peak <= 1.0:
        top = 1.0
    out = Image.new("L", image.size)
    for box in strips:
        pixels = np.nan_to_num(np.array(image.crop(box), dtype=np.float32), copy=False)
        pixels *= 255.0 / top
        pixels += 0.5
        out.paste(Image.fromarray(np.clip(pixels, 0, 255, out=pixels).astype(np.uint8)), box[:2])
    return out
