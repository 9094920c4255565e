"""The one decode path: every odd kind of image becomes RGB, every bad one a DecodeError naming the file."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from searchcore.files.decode import DecodeError, content_id, decode, raw_from_bytes, read_raw

LIMIT = 50_000_000


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def decoded(data: bytes, name: str = "x") -> Image.Image:
    return decode(raw_from_bytes(data, name), LIMIT)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = decoded(encoded(image, "JPEG", exif=exif, quality=95))
    assert out.size == (20, 40)
    assert out.getpixel((10, 5))[2] > 200  # the blue half is now on top


def test_alpha_is_composited_on_white():
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    out = decoded(encoded(image, "PNG"))
    assert out.mode == "RGB"
    assert out.getpixel((5, 5)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == (255, 0, 0)


def two_colours(mode: str) -> tuple[Image.Image, np.ndarray]:
    """A 16x16 image of this mode, half green and half purple (half transparent for LA), and the RGB
    pixels a correct decode gives for it."""
    image = Image.new("RGB", (16, 16), (10, 200, 30))
    image.paste((120, 40, 220), (0, 0, 8, 16))
    if mode == "I;16":
        levels = np.full((16, 16), 40000, np.uint16)
        levels[:, :8] = 8000
        grey = np.round(levels / 257).astype(np.uint8)
        return Image.fromarray(levels), np.repeat(grey[..., None], 3, axis=2)
    if mode == "LA":
        grey = image.convert("L")
        alpha = Image.new("L", (16, 16), 128)
        on_white = np.asarray(grey, np.float64) * 128 / 255 + 255 * (1 - 128 / 255)
        return Image.merge("LA", (grey, alpha)), np.repeat(on_white[..., None], 3, axis=2)
    converted = image.convert(mode)
    return converted, np.asarray(converted.convert("RGB"))


@pytest.mark.parametrize("mode", ["L", "LA", "P", "CMYK", "1", "I;16"])
def test_any_mode_becomes_rgb(mode):
    image, expected = two_colours(mode)
    out = decoded(encoded(image, "TIFF" if mode == "CMYK" else "PNG"))
    assert out.mode == "RGB" and out.size == (16, 16)
    assert np.abs(np.asarray(out, np.int16) - expected.astype(np.int16)).max() <= 1, (mode, np.asarray(out)[0, :9])


def test_sixteen_bit_is_scaled_not_clipped():
    image = Image.fromarray(np.full((4, 4), 32768, np.uint16))
    out = decoded(encoded(image, "PNG"))
    assert abs(out.getpixel((0, 0))[0] - 128) <= 1


def test_palette_with_transparency():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.info["transparency"] = 0
    out = decoded(encoded(image, "PNG", transparency=0))
    assert out.getpixel((0, 0)) == (255, 255, 255)


def test_first_frame_of_animation():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert decoded(data).getpixel((2, 2))[0] > 200


def test_decompression_bomb_is_a_clear_error():
    data = encoded(Image.new("1", (10_000, 6_000)), "PNG")
    with pytest.raises(DecodeError) as info:
        decoded(data, "bomb.png")
    assert info.value.source == "bomb.png" and "over the limit" in info.value.reason


@pytest.mark.parametrize("width, height", [(10_000, 10_000), (20_000, 10_000)])
def test_images_over_pillows_own_limits_get_the_configured_wording(width, height):
    # 100 MP passes Pillow's warning threshold (~89 MP); 200 MP passes its hard limit (~179 MP)
    data = encoded(Image.new("1", (width, height)), "PNG")
    with pytest.raises(DecodeError) as info:
        decoded(data, "huge.png")
    assert f"{width * height} pixels, over the limit of {LIMIT}" in info.value.reason
    assert "DOS" not in info.value.reason and info.value.kind == "too many pixels"


def test_decoding_leaves_the_process_wide_warnings_filter_alone(monkeypatch):
    """Another thread (Gradio's) that warns while searchcore decodes must not get an exception."""
    raised = []

    def warn_from_another_thread():
        try:
            warnings.warn("probe", Image.DecompressionBombWarning)
        except Image.DecompressionBombWarning as exc:
            raised.append(exc)

    real_open = Image.open

    def open_and_probe(*args, **kwargs):
        probe = threading.Thread(target=warn_from_another_thread)
        probe.start()
        probe.join()
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", open_and_probe)
    with warnings.catch_warnings(record=True):  # this test's own view; the probe runs in decode's window
        decoded(encoded(Image.new("RGB", (8, 8)), "PNG"))
    assert raised == []


def test_empty_bytes_have_one_wording_for_files_and_uploads(tmp_path: Path):
    (tmp_path / "empty.png").write_bytes(b"")
    for raw in (read_raw(tmp_path / "empty.png"), raw_from_bytes(b"", "upload.png")):
        with pytest.raises(DecodeError, match=r"(empty\.png|upload\.png): file is empty"):
            decode(raw, LIMIT)


def in_thread(function, *args):
    """Run with a deadline: a reader that blocks (a FIFO) must not hang the test run."""
    outcome = {}

    def target():
        try:
            outcome["value"] = function(*args)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the reader blocked"
    return outcome


def test_special_files_are_refused_without_blocking(tmp_path: Path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    for path, kind in ((fifo, "a FIFO"), (zero, "a character device"), (tmp_path, "a folder")):
        error = in_thread(read_raw, path)["error"]
        assert isinstance(error, DecodeError) and error.source == str(path)
        assert error.reason == f"not a regular file ({kind})"


def test_size_limit_is_counted_while_reading():
    # /proc files report st_size 0 but have content: only counting the bytes read catches them
    error = in_thread(read_raw, "/proc/self/maps", None, 100)["error"]
    assert isinstance(error, DecodeError) and "over the 100 byte limit" in error.reason


def test_links_out_of_the_roots_are_refused_and_named_by_their_own_path(tmp_path: Path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    secret = outside / "secret.jpg"
    secret.write_bytes(encoded(Image.new("RGB", (8, 8)), "JPEG"))
    (root / "x.jpg").symlink_to(secret)
    (root / "inside.jpg").symlink_to(root / "x.jpg")  # a link inside the root, to the link out
    for path in (root / "x.jpg", root / "inside.jpg"):
        with pytest.raises(DecodeError) as info:
            read_raw(path, [root])
        assert info.value.source == str(path) and str(outside) not in str(info.value)
        assert info.value.kind == "outside the allowed folders"
    assert read_raw(root / "x.jpg").data == secret.read_bytes()  # without roots (the CLI), it is read


def test_truncated_jpeg(tmp_path: Path):
    data = encoded(Image.new("RGB", (300, 300), (1, 2, 3)), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError) as info:
        decode(read_raw(path), LIMIT)
    assert str(path) in str(info.value) and "truncated" in info.value.reason


def test_not_an_image(tmp_path: Path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello, I am text")
    with pytest.raises(DecodeError, match="notes.jpg: not an image"):
        decode(read_raw(path), LIMIT)


def test_missing_files(tmp_path: Path):
    with pytest.raises(DecodeError, match="gone.png: No such file"):
        read_raw(tmp_path / "gone.png")


def test_content_id_is_stable_and_positive():
    raw = raw_from_bytes(b"same bytes", "a")
    assert raw.id == raw_from_bytes(b"same bytes", "b").id == content_id(raw.sha256)
    assert 0 <= raw.id < 2**63


DECODING_PEAK = """
import sys
from searchcore.files.decode import decode, read_raw
raw = read_raw(sys.argv[1])
def kib(field):
    return int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith(field)))
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # the peak RSS starts again from here: the imports' own peak is left out
before = kib("VmRSS:")
image = decode(raw, 10**9)
print(kib("VmHWM:") - before)
"""


def decoding_peak_kib(path: Path) -> int:
    """How far decoding the file raised a fresh process's peak RSS above its RSS just before."""
    out = subprocess.run([sys.executable, "-c", DECODING_PEAK, str(path)], capture_output=True, text=True,
                         cwd=Path(__file__).parent.parent, check=True)
    return int(out.stdout)


@pytest.mark.parametrize("fmt, pixels", [("PNG", lambda g: g.astype(np.uint16)),  # I;16
                                         ("TIFF", lambda g: (g / 65535.0).astype(np.float32))])  # F
def test_high_bit_depth_images_decode_within_twice_the_memory_of_an_8_bit_one(tmp_path, fmt, pixels):
    """A 16-bit photo took 7 times the memory of an 8-bit one of the same size (a float64 copy and its
    temporaries); each process here measures one decode, so the comparison holds on any machine."""
    gradient = np.add.outer(np.arange(3000), np.arange(4000)) * 5 % 65536
    eight, deep = tmp_path / "eight.png", tmp_path / f"deep.{fmt.lower()}"
    Image.fromarray(np.stack([(gradient >> 8).astype(np.uint8)] * 3, -1)).save(eight)
    Image.fromarray(pixels(gradient)).save(deep, fmt)
    cost_eight, cost_deep = decoding_peak_kib(eight), decoding_peak_kib(deep)
    assert 30_000 < cost_eight and cost_deep <= 2 * cost_eight, (cost_deep, cost_eight)  # 8-bit RGB: 36 MB
    assert decode(read_raw(deep), 10**9).getpixel((3999, 2999)) == decode(read_raw(eight), 10**9).getpixel((3999, 2999))
