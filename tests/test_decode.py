"""The one decode path: every odd kind of image becomes RGB, every bad one a DecodeError naming the file."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from searchcore.decode import DecodeError, content_id, decode, raw_from_bytes, read_raw

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


@pytest.mark.parametrize("mode", ["L", "LA", "P", "CMYK", "1", "I;16"])
def test_any_mode_becomes_rgb(mode):
    image = Image.new("RGB", (16, 16), (10, 200, 30)).convert(mode if mode != "I;16" else "L")
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    if mode == "I;16":
        image = Image.fromarray(np.full((16, 16), 40000, np.uint16))
    out = decoded(encoded(image, fmt))
    assert out.mode == "RGB" and out.size == (16, 16)


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


def test_pillow_bomb_guard_becomes_decode_error(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = encoded(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(DecodeError, match="too large"):
        decoded(data, "big.png")


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


def test_empty_and_missing_files(tmp_path: Path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DecodeError, match="empty.png: file is empty"):
        read_raw(tmp_path / "empty.png")
    with pytest.raises(DecodeError, match="gone.png"):
        read_raw(tmp_path / "gone.png")


def test_content_id_is_stable_and_positive():
    raw = raw_from_bytes(b"same bytes", "a")
    assert raw.id == raw_from_bytes(b"same bytes", "b").id == content_id(raw.sha256)
    assert 0 <= raw.id < 2**63
