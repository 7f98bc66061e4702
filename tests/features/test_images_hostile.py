"""Hostile images: decompression bombs and huge dimensions are refused on their header, broken files of every
kind are skipped with a reason, odd modes (grayscale, alpha, palette, CMYK, 16-bit) become faithful RGB."""

from __future__ import annotations

import io
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from torchvision import transforms as T

from sicsrec.app.thumbnails import thumbnail_for
from sicsrec.features.images import MAX_PIXELS, ImageDataset, image_problem, load_image, open_image

SMALL = T.Compose([T.Resize(32), T.CenterCrop(32), T.ToTensor()])  # resizes the short side, like the encoders


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares width x height (a decompression bomb's trick): a 1x1 PNG, IHDR rewritten."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    at = data.index(b"IHDR")
    data[at + 4 : at + 12] = struct.pack(">II", width, height)
    data[at + 17 : at + 21] = struct.pack(">I", zlib.crc32(bytes(data[at : at + 17])))
    path.write_bytes(bytes(data))
    return path


def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    decoded: list[object] = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda img: decoded.append(img) or real_load(img))
    over_ours = png_declaring(tmp_path / "ours.png", 8_000, 8_000)  # 64 MP: over MAX_PIXELS, under PIL's warning
    over_pils = png_declaring(tmp_path / "pils.png", 30_000, 30_000)  # 900 MP: PIL's DecompressionBombError
    assert image_problem(over_ours) == f"too large: 8000 x 8000 pixels (the cap is {MAX_PIXELS:,})"
    assert image_problem(over_pils).startswith("too large")
    assert load_image(over_ours) is None and load_image(over_pils) is None
    assert decoded == []  # refused on the declared size: no pixel was decoded


def test_a_real_bomb_small_on_disk_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    Image.new("1", (7_000, 7_000)).save(bomb)  # 49 MP of one colour: a few KB of PNG
    assert bomb.stat().st_size < 100_000 and image_problem(bomb).startswith("too large: 7000 x 7000")


def test_an_extreme_strip_is_refused_not_resized_into_a_bomb(tmp_path: Path) -> None:
    strip = tmp_path / "strip.png"
    Image.new("RGB", (20_000, 2)).save(strip)  # 40 KP, but resizing its short side to 32 makes 320,000 x 32
    assert image_problem(strip) == "extreme aspect ratio: 20000 x 2 pixels"
    x, ok = ImageDataset([str(strip)], SMALL)[0]
    assert not ok and x.shape == (3, 32, 32)


def test_broken_files_are_skipped_with_a_reason(tmp_path: Path, make_image) -> None:
    good_png = make_image(tmp_path / "good.png", 0).read_bytes()
    good_jpg = make_image(tmp_path / "good.jpg", 1).read_bytes()
    cases = {
        "missing.jpg": None,
        "empty.jpg": b"",
        "html.png": b"<html><body>404 Not Found</body></html>",
        "text.jpg": b"item_id,title\n1,a\n",
        "png-truncated.png": good_png[: len(good_png) // 2],
        "jpg-truncated.jpg": good_jpg[: len(good_jpg) // 2],
        "png-header-only.png": good_png[:40],
        "bad-crc.png": good_png[:50] + bytes([good_png[50] ^ 0xFF]) + good_png[51:],
    }
    for name, data in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
    reasons = {name: image_problem(tmp_path / name) for name in cases}
    assert reasons["missing.jpg"] == "missing file" and image_problem(tmp_path) == "missing file"  # a folder
    assert reasons["empty.jpg"] == reasons["html.png"] == reasons["text.jpg"] == "not an image"
    assert reasons["png-header-only.png"] == "not an image"  # cut inside its header: PIL cannot even tell
    for name in ("png-truncated.png", "jpg-truncated.jpg", "bad-crc.png"):
        assert reasons[name].startswith("truncated or corrupt"), (name, reasons[name])
        assert load_image(tmp_path / name) is None


def test_odd_modes_become_faithful_rgb(tmp_path: Path) -> None:
    gradient = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    Image.fromarray((gradient * 65535).astype(np.uint16)).save(tmp_path / "gray16.png")  # 16-bit grayscale
    Image.fromarray((gradient * 255).astype(np.uint8), "L").save(tmp_path / "gray.png")
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # red in CMYK
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(tmp_path / "clear.png")  # fully transparent black
    Image.new("LA", (64, 64), (0, 0)).save(tmp_path / "clear-la.png")
    palette = Image.new("P", (64, 64), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.save(tmp_path / "palette.png", transparency=0)  # palette index 0 (black) is transparent
    images = {p.name: open_image(p) for p in tmp_path.iterdir()}
    assert all(img.mode == "RGB" and img.size == (64, 64) for img in images.values())
    lo, hi = images["gray16.png"].getextrema()[0]
    assert lo == 0 and hi == 255 and np.asarray(images["gray16.png"]).mean() == pytest.approx(127.5, abs=2)
    assert images["gray.png"].getextrema()[0] == (0, 255)
    r, g, b = np.asarray(images["cmyk.jpg"]).reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60
    for name in ("clear.png", "clear-la.png", "palette.png"):  # transparent shows as white, not as black
        assert images[name].getextrema() == ((255, 255),) * 3, name


def test_tiny_images_pass_the_quick_check(tmp_path: Path) -> None:
    # the check decodes JPEGs at 1/8 scale: a 4 x 4 one asked PIL for 0 x 0 and failed as "corrupt"
    for size in ((1, 1), (4, 4), (7, 3)):
        Image.new("RGB", size, "red").save(tmp_path / "tiny.jpg")
        assert image_problem(tmp_path / "tiny.jpg") is None and load_image(tmp_path / "tiny.jpg").size == size


def test_the_app_shows_a_title_card_for_a_bomb(tmp_path: Path) -> None:
    bomb = png_declaring(tmp_path / "bomb.png", 8_000, 8_000)
    row = {"item_id": "7", "title": "Bomb", "category": "", "image_path": str(bomb)}
    card = Path(thumbnail_for(row, tmp_path / "cards"))
    assert card.parent == tmp_path / "cards" and card != bomb


def _mutated(data: st.DataObject, good: bytes) -> bytes:
    """`good` truncated, with bytes flipped or overwritten, or random bytes altogether."""
    how = data.draw(st.sampled_from(["truncate", "flip", "overwrite", "random"]))
    at = data.draw(st.integers(0, len(good) - 1))
    if how == "truncate":
        return good[:at]
    if how == "flip":
        return good[:at] + bytes([good[at] ^ data.draw(st.integers(1, 255))]) + good[at + 1 :]
    if how == "overwrite":
        chunk = data.draw(st.binary(min_size=1, max_size=64))
        return good[:at] + chunk + good[at + len(chunk) :]
    return data.draw(st.binary(max_size=2_000))


@pytest.fixture(scope="module")
def good_images(tmp_path_factory) -> dict[str, bytes]:
    """A small valid image in each format covers come in."""
    out = {}
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 16, 3), dtype=np.uint8))
    for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"), ("GIF", "gif"), ("WEBP", "webp"), ("BMP", "bmp")):
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        out[ext] = buf.getvalue()
    tiny = io.BytesIO()
    img.crop((0, 0, 3, 2)).save(tiny, format="JPEG")  # smaller than the quick check's 1/8 scale
    out["jpeg"] = tiny.getvalue()
    return out


@settings(database=None, max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_images_load_or_are_skipped_never_raise(good_images: dict[str, bytes], data: st.DataObject) -> None:
    ext = data.draw(st.sampled_from(sorted(good_images)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"cover.{ext}"
        path.write_bytes(_mutated(data, good_images[ext]))
        img, why = load_image(path), image_problem(path)
        assert (img is None) == (why is not None)  # the app's check and the encoders agree
        if img is not None:
            assert img.mode == "RGB" and img.width * img.height <= MAX_PIXELS
            assert ImageDataset([str(path)], SMALL)[0][0].shape == (3, 32, 32)
