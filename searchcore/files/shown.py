"""The only files the web app serves: copies of indexed images under the allowed roots, by content.

Indexing writes a ~256 px JPEG thumbnail of every image it decodes into a private folder
(`Thumbnails`, by SHA-256). The app never serves a folder of the operator's, nor that one: when a
hit is shown and its real path lies under a root, its thumbnail is linked into the served folder
(made from the file, if it still has the indexed SHA-256, when indexing made none). The selected hit
and the examples get an exact copy, also only from an unchanged file under a root. The served folder
is the app's one allowed path, so it holds nothing but images that decoded.
"""
from __future__ import annotations

import os
import re
import stat
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Protocol, Sequence

from PIL import Image

from .decode import DecodeError, RawImage, decode, is_under, read_raw, safe_file_name

THUMBNAIL_PX = 256
SHA256 = re.compile(r"[0-9a-f]{64}")


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and SHA256.fullmatch(value) is not None


class IndexedImage(Protocol):
    """What a hit of any list names: the image's id, its path and the SHA-256 it was indexed with."""

    id: int
    path: str
    sha256: str


class Thumbnails:
    """Content-addressed JPEG thumbnails (`<sha256>.jpg`), made while indexing from the decoded image."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.folder / f"{sha256}.jpg"

    def add(self, sha256: str, image: Image.Image) -> None:
        """Write the thumbnail of an image once (a copy is made: the image itself is left as it is)."""
        if not self.path(sha256).is_file():
            write_atomically(self.path(sha256), lambda handle: save_thumbnail(image.copy(), handle))


def save_thumbnail(image: Image.Image, handle) -> None:
    """Bilinear with a reducing gap and JPEG: a third of LANCZOS and WebP's time on the indexing path, where
    it shares the cores with the models (docs/benchmarks.md), and alike at 256 px."""
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.BILINEAR, reducing_gap=2.0)
    image.save(handle, "JPEG", quality=85)


class ShownFiles:
    def __init__(self, folder: Path, roots: Sequence[Path], max_pixels: int, made: Thumbnails | None = None) -> None:
        """`made`: the thumbnails indexing wrote, linked in when an image is shown."""
        self.folder = folder
        self.roots = list(roots)
        self.max_pixels = max_pixels
        self.made = made
        self._verified: set[tuple[str, str, int, int]] = set()  # (real path, sha256, size, mtime) hashed once
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="thumbnails")
        (folder / "thumbs").mkdir(parents=True, exist_ok=True)
        (folder / "full").mkdir(parents=True, exist_ok=True)  # full/<sha256>/<name>

    def thumbnails(self, hits: Iterable[IndexedImage]) -> dict[int, Path]:
        """id -> thumbnail for the hits that can be shown (each image made once, new ones in parallel)."""
        unique = list({h.id: h for h in hits}.values())
        made = self._pool.map(lambda h: self.thumbnail(h.path, h.sha256), unique)
        return {h.id: thumb for h, thumb in zip(unique, made) if thumb}

    def thumbnails_by_path(self, files: Iterable[tuple[str, str]]) -> dict[str, Path]:
        """path -> thumbnail for (path, sha256) pairs that can be shown."""
        unique = list(dict(files).items())
        made = self._pool.map(lambda item: self.thumbnail(*item), unique)
        return {path: thumb for (path, _), thumb in zip(unique, made) if thumb}

    def thumbnail(self, path: str, sha256: str) -> Path | None:
        """A JPEG thumbnail of the indexed image, or None when its file is gone, changed or not allowed:
        the one indexing made, if the file under a root still has these bytes, else one made from it."""
        if not is_sha256(sha256):  # no path is built from anything else
            return None
        target = self.folder / "thumbs" / f"{sha256}.jpg"
        made = self.made.path(sha256) if self.made else None
        if not target.is_file() and made and made.is_file() and self.holds(path, sha256):
            try:
                os.link(made, target)
            except FileExistsError:
                pass
            except OSError:  # another file system: a copy
                write_atomically(target, lambda handle: handle.write(made.read_bytes()))
        return self._made(target, path, sha256, lambda raw, image, handle: save_thumbnail(image, handle))

    def original(self, path: str, sha256: str) -> Path | None:
        """An exact copy of the indexed file under its own (cleaned) name: same bytes, so searching
        with it finds itself, and the same name, so the page can say which image it is."""
        return self._made(self.folder / "full" / sha256 / safe_file_name(Path(path).name), path, sha256,
                          lambda raw, image, handle: handle.write(raw.data))

    def _made(self, target: Path, path: str, sha256: str, save) -> Path | None:
        """target, made once by save(raw, decoded image, handle) from the file at path, if it may be shown."""
        if target.is_file():
            return target if self.holds(path, sha256) else None
        raw = self._read(path, sha256)
        if raw is None:
            return None
        try:
            image = decode(raw, self.max_pixels, draft_size=(THUMBNAIL_PX, THUMBNAIL_PX))
        except DecodeError:
            return None
        target.parent.mkdir(exist_ok=True)
        write_atomically(target, lambda handle: save(raw, image, handle))
        return target

    def holds(self, path: str, sha256: str) -> bool:
        """The file at path is a regular file under a root whose bytes have this SHA-256: read and hashed
        once per file version (path, size, mtime), so a path and a SHA-256 of two different images never
        pass together."""
        if not is_sha256(sha256):
            return False
        try:
            real = Path(path).resolve()
            status = real.stat()
        except (OSError, RuntimeError, ValueError, TypeError):
            return False
        if not stat.S_ISREG(status.st_mode) or not is_under(real, self.roots):
            return False
        key = (str(real), sha256, status.st_size, status.st_mtime_ns)
        with self._lock:
            if key in self._verified:
                return True
        if self._read(path, sha256) is None:
            return False
        with self._lock:
            self._verified.add(key)
        return True

    def allows(self, path: str) -> bool:
        """The path is a regular file under a root (its bytes not checked)."""
        try:
            real = Path(path).resolve()
        except (OSError, RuntimeError, ValueError):
            return False
        return real.is_file() and is_under(real, self.roots)

    def _read(self, path: str, sha256: str) -> RawImage | None:
        try:
            raw = read_raw(path, self.roots)
        except DecodeError:
            return None
        return raw if raw.sha256 == sha256 else None



def write_atomically(target: Path, save) -> None:
    """Write by save(handle) into a temp file beside target, then rename: a concurrent reader never
    sees half a file."""
    handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=".tmp-", delete=False)
    try:
        with handle:
            save(handle)
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
