"""The app's display thumbnails: generated title cards, real covers, broken images."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from sicsrec.app.thumbnails import NEUTRAL, PALETTE, category_colour, thumbnail_for, title_card
from sicsrec.data import load_demo


def test_a_demo_row_gets_a_cached_card(tmp_path: Path) -> None:
    ds = load_demo()
    heat = ds.items[ds.items["item_id"] == "6"].iloc[0]  # Heat (1995), a table row (pd.Series)
    card = thumbnail_for(heat, tmp_path)
    assert Path(card).is_file() and thumbnail_for(heat.to_dict(), tmp_path) == card


def test_title_card() -> None:
    card = title_card("Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb (1964)", "Comedy")
    assert card.size == (200, 300) and card.mode == "RGB"
    assert title_card("x", "", size=(100, 150)).size == (100, 150)
    assert category_colour("Comedy") == category_colour("comedy") in PALETTE
    assert category_colour("") == NEUTRAL
    assert len({category_colour(g) for g in ("Action", "Comedy", "Drama", "Horror", "Romance", "Thriller")}) >= 4
    top = card.getpixel((100, 3))  # the card is tinted with the category colour
    assert top == Image.new("RGB", (1, 1), category_colour("Comedy")).getpixel((0, 0))


def test_thumbnail_generated_and_cached(tmp_path: Path) -> None:
    row = {"item_id": "a/b 1", "title": "Heat (1995)", "category": "Action", "image_path": ""}
    path = Path(thumbnail_for(row, tmp_path))
    assert path.parent == tmp_path and path.suffix == ".png"
    stamp = path.stat().st_mtime_ns
    assert Path(thumbnail_for(row, tmp_path)) == path and path.stat().st_mtime_ns == stamp
    assert thumbnail_for({**row, "title": "Heat (1996)"}, tmp_path) != str(path)  # title change: new card
    with Image.open(path) as im:
        assert im.size == (200, 300)


def test_real_image_used_and_corrupt_one_falls_back(tmp_path: Path) -> None:
    real = tmp_path / "1.jpg"
    Image.new("RGB", (20, 30), "blue").save(real)
    row = {"item_id": "1", "title": "One", "category": "", "image_path": str(real)}
    assert thumbnail_for(row, tmp_path / "cache") == str(real)
    broken = tmp_path / "2.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    truncated = tmp_path / "3.jpg"
    truncated.write_bytes(real.read_bytes()[:200])
    for path in (broken, truncated, tmp_path / "gone.jpg"):
        out = thumbnail_for({**row, "image_path": str(path)}, tmp_path / "cache")
        assert out != str(path) and out.endswith(".png")
        with Image.open(out) as im:
            im.load()
