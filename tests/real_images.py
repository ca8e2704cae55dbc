"""Real photographs for tests, without any download.

The photos ship inside installed packages: scikit-image's ``skimage/data`` (astronaut, cat, coffee,
rocket, motorcycle, ... when the dev extra installed it) and matplotlib's ``mpl-data/sample_data``
(Grace Hopper). Each photo is cut into a grid of square crops at a few scales, so a handful of photos
gives a folder of many different natural-image inputs at the size a test needs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

# RGB photographs (not drawings, not synthetic images)
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
)
MATPLOTLIB_PHOTOS = ("grace_hopper.jpg",)
MIN_CONTRAST = 6.0  # pixel standard deviation (0-255) below which a crop is skipped


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def photo_files() -> list[Path]:
    """Every shipped photo found on this machine."""
    found = []
    skimage = _package_dir("skimage")
    if skimage is not None:
        found += [skimage / "data" / n for n in SKIMAGE_PHOTOS]
    mpl = _package_dir("matplotlib")
    if mpl is not None:
        found += [mpl / "mpl-data" / "sample_data" / n for n in MATPLOTLIB_PHOTOS]
    return [p for p in found if p.is_file()]


def make_photo_folder(dest: Path, count: int = 64, crop: int = 96) -> Path:
    """Write ``count`` PNG crops (``crop`` px squares, resampled from 1x, 1.5x and 2x windows) of the
    shipped photos into ``dest``; skip the test when no photo is installed."""
    from PIL import Image

    photos = photo_files()
    if not photos:
        pytest.skip("no shipped photos found (scikit-image / matplotlib sample data not installed)")
    dest.mkdir(parents=True, exist_ok=True)
    images = []
    for photo in photos:
        with Image.open(photo) as img:
            images.append((photo.stem, img.convert("RGB")))
    windows = [[] for _ in images]  # per photo: every grid cell at every scale
    for i, (_, rgb) in enumerate(images):
        for scale in (1.0, 1.5, 2.0):
            size = round(crop * scale)
            for top in range(0, rgb.height - size + 1, size):
                windows[i] += [(left, top, size) for left in range(0, rgb.width - size + 1, size)]
    written = 0
    for k in range(max(len(w) for w in windows)):  # round robin over the photos
        for (stem, rgb), cells in zip(images, windows, strict=True):
            if k >= len(cells) or written >= count:
                continue
            left, top, size = cells[k]
            piece = rgb.crop((left, top, left + size, top + size)).resize((crop, crop), Image.BILINEAR)
            if float(np.asarray(piece, dtype=np.float32).std()) < MIN_CONTRAST:
                continue  # a black border (retina, deep field) or a flat sky: not an informative input
            piece.save(dest / f"{stem}_{k:03d}.png")
            written += 1
    return dest
