"""Safe image loading and a background-decoding DataLoader for the image encoders.

A cover that is missing, unreadable, truncated, not an image, larger than MAX_PIXELS (a decompression
bomb declares huge dimensions in a few bytes) or of an extreme aspect ratio never raises here: it becomes
`None` (from `load_image`) or a blank tensor with `valid=False` (from the DataLoader), so one bad file cannot
stop a feature-extraction run over thousands of items (extraction counts them as unreadable images).
`image_problem` says why a file is refused. Grayscale, palette, CMYK and 16-bit images are converted to
RGB; transparent ones are laid on white.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

logger = logging.getLogger(__name__)

ImageTransform = Callable[[Image.Image], torch.Tensor]

MAX_PIXELS = 40_000_000  # ~6300 x 6300, 120 MB as RGB: far above any cover, far below what a bomb declares
MAX_ASPECT = 20  # longest / shortest side: resizing the short side of a 1 x 10^6 strip would be the bomb


class ImageProblem(Exception):
    """An image file that is not used; the message says why in a few words."""


def open_image(path: str | os.PathLike, draft: bool = False) -> Image.Image:
    """Check the declared size, then fully decode an image as RGB; ImageProblem saying why it cannot be used.

    `draft` decodes JPEGs at 1/8 scale: as strict about broken data, for checks that need no pixels.
    """
    if not os.path.isfile(path):
        raise ImageProblem("missing file")
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > MAX_PIXELS:  # checked on the header, before anything is decoded
                raise ImageProblem(f"too large: {w} x {h} pixels (the cap is {MAX_PIXELS:,})")
            if max(w, h) > MAX_ASPECT * max(1, min(w, h)) or min(w, h) == 0:
                raise ImageProblem(f"extreme aspect ratio: {w} x {h} pixels")
            if draft:
                img.draft("RGB", (max(1, w // 8), max(1, h // 8)))  # 0 would divide by zero in PIL
            img.load()  # decode now: truncated files fail here, not later in a worker
            return _to_rgb(img)
    except ImageProblem:
        raise
    except Image.DecompressionBombError as exc:  # PIL's own cap, hit in open() by absurd declared sizes
        raise ImageProblem(f"too large ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ImageProblem("not an image") from None
    except Exception as exc:  # PIL raises many types for broken data (OSError, SyntaxError, ValueError, ...)
        raise ImageProblem(f"truncated or corrupt ({type(exc).__name__}: {exc})") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB of any mode: 16-bit and float images scaled to 8 bits (a plain convert clips them to white),
    transparent ones laid on white (a plain convert shows whatever colour the transparent pixels hold)."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        a = np.asarray(img, dtype=np.float64)
        low, high = float(a.min()), float(a.max())
        img = Image.fromarray(((a - low) * (255 / max(high - low, 1e-12))).astype(np.uint8), "L")
    if "A" in img.getbands() or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return img.convert("RGB")


def image_problem(path: str | os.PathLike) -> str | None:
    """Why an image file would be skipped ("missing file", "not an image", "too large: ...", ...), or None."""
    try:
        open_image(path, draft=True)
    except ImageProblem as exc:
        return str(exc)
    return None


def load_image(path: str | os.PathLike | None) -> Image.Image | None:
    """Open and fully decode an image as RGB, or None for a missing/corrupt/truncated/oversized file."""
    if not path:
        return None
    try:
        return open_image(path)
    except ImageProblem as exc:
        logger.debug("image %s skipped: %s", path, exc)
        return None


def default_num_workers() -> int:
    """Background decoding processes: min(2, CPU count), so decoding overlaps the encoder."""
    return min(2, os.cpu_count() or 1)


class ImageDataset(Dataset):
    """Decodes and transforms images by index; yields (tensor [3, H, W], valid) pairs.

    An image that cannot be loaded or transformed yields a zero tensor of the transform's output
    shape and valid=False, so batches always stack.
    """

    def __init__(self, paths: Sequence[str], transform: ImageTransform) -> None:
        self.paths = [str(p) if p else "" for p in paths]
        self.transform = transform
        self.blank = torch.zeros_like(transform(Image.new("RGB", (64, 64))))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, bool]:
        img = load_image(self.paths[index])
        if img is None:
            return self.blank, False
        try:
            return self.transform(img), True
        except Exception as exc:  # e.g. a degenerate 0-sized image
            logger.debug("could not transform image %s: %s", self.paths[index], exc)
            return self.blank, False


def image_loader(
    paths: Sequence[str],
    transform: ImageTransform,
    batch_size: int = 32,
    num_workers: int | None = None,
) -> DataLoader:
    """DataLoader over `paths` in order, yielding (images [B, 3, H, W], valid [B] bool)."""
    workers = default_num_workers() if num_workers is None else num_workers
    return DataLoader(
        ImageDataset(paths, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
    )
