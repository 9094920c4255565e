"""Edits of a photo, as a user might make them before searching with it: the robustness view of the
app and scripts/robustness.py apply the same ones."""
from __future__ import annotations

import io
import random
from dataclasses import replace

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from ..files.decode import DecodeError
from ..retrieval.lists import rank_of
from ..retrieval.options import COMPARED_OPTIONS

EDITS = ("rotate 90", "rotate 180", "rotate 15", "mirror", "crop 50-90%", "jpeg q15", "brightness",
         "colour", "grayscale", "text overlay")
# The app's edits: name -> (what its amount means, lowest, highest, default), None for no amount.
APP_EDITS: dict[str, tuple[str, float, float, float] | None] = {
    "rotate": ("degrees", -180, 180, 90), "crop": ("share of the area kept", 0.1, 1.0, 0.6),
    "jpeg": ("JPEG quality", 5, 95, 15), "brightness": ("factor", 0.2, 3.0, 1.6),
    "colour": ("saturation factor", 0.0, 3.0, 0.3), "grayscale": None, "mirror": None, "text overlay": None}


def apply_edit(image: Image.Image, kind: str, rng: random.Random, amount: float | None = None) -> bytes:
    """The edited photo as JPEG bytes (quality 95, or the edit's own). `amount` overrides the seeded
    strength: degrees for a rotation, the kept share of the area for a crop, the JPEG quality, the
    enhancement factor for brightness and colour; out of the edit's range (APP_EDITS) it is a ValueError."""
    if amount is not None:
        check_amount(kind, amount)
    quality = 95
    if kind.startswith("rotate"):
        angle = amount if amount is not None else float(kind.split()[1])
        image = image.rotate(angle, expand=True, fillcolor=(255, 255, 255))
    elif kind == "mirror":
        image = ImageOps.mirror(image)
    elif kind.startswith("crop"):
        image = crop(image, amount if amount is not None else rng.uniform(0.5, 0.9), rng)
    elif kind.startswith("jpeg"):
        quality = int(amount if amount is not None else 15)
    elif kind == "brightness":
        image = ImageEnhance.Brightness(image).enhance(amount if amount is not None else rng.choice((0.5, 1.6)))
    elif kind == "colour":
        image = ImageEnhance.Color(image).enhance(amount if amount is not None else rng.choice((0.3, 2.0)))
    elif kind == "grayscale":
        image = ImageOps.grayscale(image).convert("RGB")
    elif kind == "text overlay":
        image = overlay_text(image, "SAMPLE · not for sale")
    else:
        raise ValueError(f"edit must be one of {', '.join(EDITS)}, not {kind!r}")
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def check_amount(kind: str, amount: float) -> None:
    """A ValueError naming the range, for an amount outside the edit's range (NaN included)."""
    spec = APP_EDITS.get(kind) or APP_EDITS.get(kind.split()[0])
    if spec is None:
        raise ValueError(f"the edit {kind!r} takes no amount")
    meaning, low, high, _ = spec
    if not (isinstance(amount, (int, float)) and low <= amount <= high):
        raise ValueError(f"{kind}: the {meaning} must be from {low} to {high}, not {amount!r}")


def crop(image: Image.Image, share: float, rng: random.Random) -> Image.Image:
    """A crop keeping `share` of the area, with the photo's proportions, at a random place."""
    w, h = image.size
    side = share ** 0.5
    cw, ch = max(1, round(w * side)), max(1, round(h * side))
    left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return image.crop((left, top, left + cw, top + ch))


def overlay_text(image: Image.Image, text: str) -> Image.Image:
    """Large text across the middle of the photo, white on a dark band."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    band = (0, int(h * 0.42), w, int(h * 0.58))
    draw.rectangle(band, fill=(20, 20, 20))
    size = max(10, int(h * 0.1))
    draw.text((w * 0.05, band[1] + (band[3] - band[1] - size) / 2), text, fill="white", font_size=size)
    return out


def where_it_lands(search_raw, edited, original_id: int, k: int = 50) -> dict[str, dict[str, int | None]]:
    """Search with an edited photo, plain, with the robust option and with DBA+alpha-QE (search_raw: the
    engine's), and give the original's rank in each model's list and both fused lists (None: not in the
    first k)."""
    ranks: dict[str, dict[str, int | None]] = {}
    for option, compared in COMPARED_OPTIONS.items():
        result = search_raw([edited], replace(compared, k=k))[0]
        if result.error:
            raise DecodeError(edited.source, result.error)
        ranks[option] = {name: rank_of([h.id for h in hits], original_id) for name, hits in result.lists().items()}
    return ranks
