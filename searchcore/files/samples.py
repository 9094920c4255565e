"""The demo set used when no folder is given: scikit-image's bundled photos that are CC0 or public domain."""
from __future__ import annotations

from pathlib import Path

# file -> licence, as stated in scikit-image's skimage.data docstrings
SAMPLE_PHOTOS = {
    "astronaut.png": "public domain (NASA)",
    "chelsea.png": "CC0 (Stefan van der Walt)",
    "coffee.png": "CC0 (Rachel Michetti)",
    "rocket.jpg": "public domain (SpaceX)",
    "hubble_deep_field.jpg": "public domain (NASA)",
    "retina.jpg": "CC0",
    "ihc.png": "no known copyright restrictions",
    "coins.png": "no known copyright restrictions",
    "camera.png": "CC0 (Lav Varshney)",
    "brick.png": "CC0 (CC0Textures)",
    "grass.png": "CC0 (CC0Textures)",
    "gravel.png": "CC0 (CC0Textures)",
    "horse.png": "CC0 (Andreas Preuss)",
    "cell.png": "CC0",
    "clock_motion.png": "public domain (Stefan van der Walt)",
}


def sample_folder() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).resolve().parent


def sample_files() -> list[Path]:
    folder = sample_folder()
    return [folder / name for name in SAMPLE_PHOTOS if (folder / name).is_file()]
