"""The demo collection (SEARCHCORE_DEMO_URL): a zip or tar of a labelled photo folder, fetched once with a
size cap and extracted safely, so that a Space shows real photos and Evaluate has a set to score.

Extraction writes every file itself, under the target only: a member with an absolute path, a `..` part,
a link or a device refuses the whole archive (an archive that tries to escape is not trusted at all);
only image files are kept; the file count and the bytes written are bounded. A single folder that wraps
everything is stripped, so that the set's class folders sit right under the target. The finished folder
is renamed into place and kept with the URL it came from: a restart with the same URL reuses it (one
that stopped between removing an older set and the rename fetches it again). Messages name the URL
without its query or user part, which may carry a token.
"""
from __future__ import annotations

import http.client
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterable, Iterator

from .decode import IMAGE_SUFFIXES

CHUNK = 1 << 20
URL_FILE = ".demo-url"


class DemoError(RuntimeError):
    """The demo archive could not be fetched or was refused; the message says which and why."""


@dataclass(frozen=True)
class Limits:
    download_bytes: int = 1 << 30  # the archive as fetched
    files: int = 20_000  # image files kept
    file_bytes: int = 64 << 20  # one image, unpacked
    total_bytes: int = 4 << 30  # every image, unpacked


@dataclass(frozen=True)
class Member:
    """One file of an archive: its path inside it, its size as declared, and how to open it."""

    name: str
    size: int
    open: Callable[[], BinaryIO]


def demo_folder(home: Path, url: str) -> Path:
    """Where the set of this URL lives: home/demo/<the archive's name without its extensions>."""
    stem = PurePosixPath(urllib.parse.urlsplit(url).path).name.split(".")[0] or "demo"
    return home / "demo" / stem


def ensure_demo(url: str, folder: Path, limits: Limits = Limits(),
                on_progress: Callable[[int, int], None] | None = None) -> Path:
    """The folder with the set extracted, fetched first unless it holds this URL's set already.
    `on_progress(bytes fetched, bytes expected or 0)`. DemoError says what went wrong; a refused archive
    leaves nothing behind."""
    if (folder / URL_FILE).is_file() and (folder / URL_FILE).read_text() == url:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".fetch-") as tmp:
        archive = Path(tmp) / "archive"
        extracted = Path(tmp) / "set"
        try:
            fetch(url, archive, limits.download_bytes, on_progress)
            extract(archive, extracted, limits)
        except DemoError:
            raise
        except UNREADABLE as exc:  # a cut-off download, a truncated or damaged archive: no server path said
            raise DemoError(f"the demo archive from {shown_url(url)} could not be read ({type(exc).__name__})") from exc
        (extracted / URL_FILE).write_text(url)
        if folder.exists():
            shutil.rmtree(folder)
        extracted.rename(folder)
    return folder


# What reading a damaged download or archive raises besides DemoError
UNREADABLE = (OSError, EOFError, ValueError, RuntimeError, zipfile.BadZipFile, tarfile.TarError,
              http.client.HTTPException)


def shown_url(url: str) -> str:
    """The URL as messages name it: scheme, host and path, without a query or user part (a token)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


def fetch(url: str, target: Path, max_bytes: int, on_progress: Callable[[int, int], None] | None = None) -> None:
    """Download url (http or https only) to target, refusing it once it is larger than max_bytes."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DemoError(f"demo URL {shown_url(url)!r}: only http and https URLs are fetched")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, target.open("wb") as out:
            expected = int(response.headers.get("Content-Length") or 0)
            named = f"demo URL {shown_url(url)}"
            if expected > max_bytes:
                raise DemoError(f"{named}: {expected:,} bytes is over the cap of {max_bytes:,} bytes")
            _copy_bounded(response, out, max_bytes, f"{named}: more than the cap of {max_bytes:,} bytes",
                          on_progress and (lambda fetched: on_progress(fetched, expected)))
    except OSError as exc:  # URLError, HTTPError, timeouts
        raise DemoError(f"demo URL {shown_url(url)} could not be fetched: {exc}") from exc


def extract(archive: Path, target: Path, limits: Limits) -> None:
    """The archive's image files under target, each checked before anything is written."""
    with _members(archive, limits.files) as members:
        names = [_checked_name(m.name) for m in members]
        kept = [(m, n) for m, n in zip(members, names) if n.suffix.lower() in IMAGE_SUFFIXES]
        _write(kept, target, limits, archive.name)


def _write(kept: list[tuple[Member, PurePosixPath]], target: Path, limits: Limits, archive_name: str) -> None:
    if not kept:
        raise DemoError(f"{archive_name}: the archive holds no image files")
    if len(kept) > limits.files:
        raise DemoError(f"the demo archive holds {len(kept):,} images, more than the cap of {limits.files:,}")
    wrapper = _common_folder([n for _, n in kept])
    written = 0
    for member, name in kept:
        if member.size > limits.file_bytes:
            raise DemoError(f"{member.name}: {member.size:,} bytes is over the cap of {limits.file_bytes:,}")
        path = target.joinpath(*name.parts[len(wrapper.parts):])
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            raise DemoError(f"{member.name}: the archive holds this file twice")
        with member.open() as source, path.open("xb") as out:
            allowed = min(limits.file_bytes, limits.total_bytes - written)
            written += _copy_bounded(source, out, allowed,
                                     f"{member.name}: unpacks to more than the caps allow ({allowed:,} bytes left)")


@contextmanager
def _members(archive: Path, cap: int) -> Iterator[list[Member]]:
    """The regular files of a zip or tar, open while in the block; DemoError for a link, a device, more
    than `cap` files of any kind (counted while the tar is listed), or an archive of another kind."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            yield [_zip_member(zipped, info) for info in _capped(zipped.infolist(), cap) if not info.is_dir()]
        return
    try:
        tarred = tarfile.open(archive)
    except tarfile.TarError as exc:
        raise DemoError(f"the demo archive is neither a zip nor a tar: {exc}") from exc
    with tarred:
        yield [_tar_member(tarred, info) for info in _capped(tarred, cap) if not info.isdir()]


def _capped(entries: Iterable, cap: int) -> Iterator:
    for count, entry in enumerate(entries, 1):
        if count > cap:
            raise DemoError(f"the demo archive holds more than {cap:,} entries, the cap")
        yield entry


def _zip_member(zipped: zipfile.ZipFile, info: zipfile.ZipInfo) -> Member:
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        raise DemoError(f"{info.filename}: the archive holds a link; links are refused")
    return Member(info.filename, info.file_size, lambda: zipped.open(info))


def _tar_member(tarred: tarfile.TarFile, info: tarfile.TarInfo) -> Member:
    if info.issym() or info.islnk():
        raise DemoError(f"{info.name}: the archive holds a link; links are refused")
    if not info.isfile():
        raise DemoError(f"{info.name}: the archive holds a device or special file; it is refused")
    return Member(info.name, info.size, lambda: tarred.extractfile(info))


def _checked_name(name: str) -> PurePosixPath:
    """A member's path as relative parts; DemoError for an absolute path or a `..` part."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ":" in (path.parts[0] if path.parts else "") or ".." in path.parts:
        raise DemoError(f"{name}: the archive names a path outside its folder; the archive is refused")
    return PurePosixPath(*(part for part in path.parts if part != "."))


def _common_folder(names: list[PurePosixPath]) -> PurePosixPath:
    """The one folder that wraps every file (stripped on extraction), or the empty path."""
    firsts = {n.parts[0] for n in names}
    if len(firsts) == 1 and all(len(n.parts) > 2 for n in names):
        return PurePosixPath(firsts.pop())
    return PurePosixPath()


def _copy_bounded(source: BinaryIO, out: BinaryIO, allowed: int, refusal: str,
                  on_progress: Callable[[int], None] | None = None) -> int:
    """The bytes copied until the source ends; DemoError(refusal) once they pass `allowed`."""
    copied = 0
    while chunk := source.read(CHUNK):
        copied += len(chunk)
        if copied > allowed:
            raise DemoError(refusal)
        out.write(chunk)
        if on_progress:
            on_progress(copied)
    return copied
