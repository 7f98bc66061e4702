"""Safe image loading: bad files give None / valid=False, never an exception."""

from __future__ import annotations

import torch
from PIL import Image
from torchvision import transforms as T

from sicsrec.features import ImageDataset, default_num_workers, image_loader, load_image

SMALL = T.Compose([T.Resize((32, 32)), T.ToTensor()])


def test_load_image_good_grayscale_and_alpha_become_rgb(tmp_path, make_image):
    rgb = load_image(make_image(tmp_path / "a.jpg", 0))
    gray = load_image(make_image(tmp_path / "g.jpg", 1, mode="L"))
    rgba = load_image(make_image(tmp_path / "t.png", 2, mode="RGBA"))
    for img in (rgb, gray, rgba):
        assert isinstance(img, Image.Image) and img.mode == "RGB"
    assert rgb.size == (96, 128)


def test_load_image_bad_inputs_return_none(tmp_path, make_image, write_corrupt):
    good = make_image(tmp_path / "good.jpg", 3).read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good[: len(good) // 2])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    bad = [None, "", tmp_path / "missing.jpg", tmp_path, write_corrupt(tmp_path / "c.jpg"), truncated, empty]
    assert [load_image(p) for p in bad] == [None] * len(bad)


def test_loader_yields_tensors_and_mask_in_order(tmp_path, make_image, write_corrupt):
    paths = [
        str(make_image(tmp_path / "0.jpg", 0)),
        "",
        str(write_corrupt(tmp_path / "bad.jpg")),
        str(make_image(tmp_path / "3.png", 3)),
        str(tmp_path / "missing.jpg"),
    ]
    for workers in (0, 2):
        batches = list(image_loader(paths, SMALL, batch_size=2, num_workers=workers))
        x = torch.cat([b[0] for b in batches])
        valid = torch.cat([b[1] for b in batches])
        assert x.shape == (5, 3, 32, 32)
        assert valid.tolist() == [True, False, False, True, False]
        assert x[~valid].abs().sum() == 0 and x[valid].abs().sum() > 0


def test_dataset_blank_matches_transform_shape(tmp_path):
    ds = ImageDataset(["", str(tmp_path / "nope.jpg")], SMALL)
    x, ok = ds[1]
    assert len(ds) == 2 and not ok and x.shape == (3, 32, 32)


def test_default_workers_is_at_most_two():
    assert 1 <= default_num_workers() <= 2
