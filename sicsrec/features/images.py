"""Safe image loading and a background-decoding DataLoader for the image encoders.

A cover that is missing, unreadable, truncated or not an image never raises here: it becomes
`None` (from `load_image`) or a blank tensor with `valid=False` (from the DataLoader), so one
bad file cannot stop a feature-extraction run over thousands of items.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

logger = logging.getLogger(__name__)

ImageTransform = Callable[[Image.Image], torch.Tensor]


def load_image(path: str | os.PathLike | None) -> Image.Image | None:
    """Open and fully decode an image as RGB, or return None for a missing/corrupt/truncated file."""
    if not path:
        return None
    try:
        with Image.open(path) as img:
            img.load()  # decode now: truncated files fail here, not later in a worker
            return img.convert("RGB")
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, DecompressionBombError, ...)
        logger.debug("unreadable image %s: %s", path, exc)
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
