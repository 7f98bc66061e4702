"""Display-only thumbnails: the item's real image (resized once, cached) when it opens, else a generated title card.

Generated cards exist only so a catalogue without images still looks like a catalogue in the UI.
They are never fed to an image encoder: a card carries nothing but the title and genre, which the
text branch already sees, so training on it would fake an image modality.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from sicsrec.data.loaders import image_listing
from sicsrec.features.images import image_problem
from sicsrec.utils import atomic_write_bytes

if TYPE_CHECKING:
    from sicsrec.app.runs import Catalogue

# Muted, mid-dark tones: white text stays readable on all of them and neighbours differ in hue.
PALETTE = (
    "#2E4A62",  # slate blue
    "#7A3B47",  # wine
    "#2F6B5E",  # teal green
    "#8A5A2B",  # bronze
    "#5B4B8A",  # violet
    "#3F6E2E",  # moss
    "#8C3F2E",  # brick
    "#2D5F86",  # ocean
    "#6B4660",  # plum
    "#4F5D2F",  # olive
    "#86434F",  # rose
    "#3C5A6E",  # steel
)
NEUTRAL = "#4B5563"  # items without a category
YEAR_SUFFIX = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")
THUMB_SIZE = (200, 300)


def category_colour(category: str) -> str:
    """A stable palette colour for a category (same on every run and machine)."""
    if not category.strip():
        return NEUTRAL
    digest = hashlib.md5(category.strip().lower().encode("utf-8")).digest()
    return PALETTE[digest[0] % len(PALETTE)]


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's default font at `size` px (a scalable font: Pillow is built with FreeType)."""
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):  # the bitmap fallback has one size: cards would not fit
        raise RuntimeError("title cards need Pillow built with FreeType (PIL.features.check('freetype2'))")
    return font


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Greedy word wrap to `width` pixels; words wider than a line are split by characters."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        while font.getlength(word) > width and len(word) > 1:
            cut = 1
            while cut < len(word) - 1 and font.getlength(word[: cut + 1]) <= width:
                cut += 1
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:cut])
            word = word[cut:]
        candidate = f"{line} {word}".strip()
        if font.getlength(candidate) <= width:
            line = candidate
        else:
            if line:
                lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def _fit_title(title: str, width: float, max_height: float, base: int) -> tuple[ImageFont.FreeTypeFont, list[str], int]:
    """The largest font (down to a floor) whose wrapped title fits; the last line is ellipsised."""
    for size in range(base, 11, -2):
        font = _font(size)
        step = int(size * 1.25)
        lines = _wrap(title, font, width)
        if len(lines) * step <= max_height:
            return font, lines, step
    lines = lines[: max(1, int(max_height // step))]
    last = lines[-1]
    while last and font.getlength(last + "…") > width:
        last = last[:-1]
    lines[-1] = last.rstrip() + "…"
    return font, lines, step


def title_card(title: str, category: str, size: tuple[int, int] = (200, 300)) -> Image.Image:
    """A generated poster-like card (display only): title, year line, genre label, category colour."""
    w, h = size
    base = Image.new("RGB", size, category_colour(category))
    dark = Image.new("RGB", size, "#111318")
    fade = Image.linear_gradient("L").resize(size).point(lambda v: int(v * 0.55))
    card = Image.composite(dark, base, fade)  # darker towards the bottom
    draw = ImageDraw.Draw(card, "RGBA")
    margin = max(8, w // 14)
    draw.rounded_rectangle(
        (margin // 2, margin // 2, w - 1 - margin // 2, h - 1 - margin // 2),
        radius=margin,
        outline=(255, 255, 255, 70),
        width=max(1, w // 150),
    )

    match = YEAR_SUFFIX.match(title.strip())
    name, year = (match["title"], match["year"]) if match else (title.strip(), None)
    name = name or title.strip() or "Untitled"
    label_h = int(h * 0.16) if category.strip() else 0
    year_font = _font(max(11, w // 14))
    year_h = int(year_font.size * 1.6) if year else 0
    font, lines, step = _fit_title(name, w - 2 * margin, h - 3 * margin - label_h - year_h, max(14, w // 8))

    y = (h - label_h - len(lines) * step - year_h) // 2
    for line in lines:
        draw.text((w / 2, y), line, font=font, fill=(255, 255, 255), anchor="ma")
        y += step
    if year:
        draw.text((w / 2, y + year_font.size * 0.4), year, font=year_font, fill=(255, 255, 255, 190), anchor="ma")

    if category.strip():
        label_font = _font(max(10, w // 17))
        label = category.strip().upper()
        while len(label) > 1 and label_font.getlength(label) > w - 4 * margin:
            label = label[:-1]
        tw = label_font.getlength(label)
        cy = h - margin - label_h // 2
        pad_x, pad_y = margin * 0.8, label_font.size * 0.55
        half_w, half_h = tw / 2 + pad_x, pad_y + label_font.size / 2
        draw.rounded_rectangle(
            (w / 2 - half_w, cy - half_h, w / 2 + half_w, cy + half_h), radius=label_font.size, fill=(255, 255, 255, 46)
        )
        draw.text((w / 2, cy), label, font=label_font, fill=(255, 255, 255, 230), anchor="mm")
    return card


def _opens(path: str) -> bool:
    """Whether a real image passes the content layer's check (truncated, corrupt or oversized files fall back
    to a card: decoding a decompression bomb here would stall the app)."""
    return image_problem(path) is None


def thumbnail_for(
    item_row: Mapping[str, Any] | pd.Series, cache_dir: str | Path, size: tuple[int, int] = (200, 300)
) -> str:
    """Path of an item's display image: its real image if it opens, else a cached generated card.

    Cards are written once per (item id, title, category, size) hash, atomically, as PNG.
    """
    image_path = str(item_row.get("image_path") or "")
    if image_path and _opens(image_path):
        return image_path
    item_id, title = str(item_row["item_id"]), str(item_row.get("title") or item_row["item_id"])
    category = str(item_row.get("category") or "")
    key = hashlib.sha1(f"{item_id}\0{title}\0{category}\0{size}".encode()).hexdigest()[:12]
    cache = Path(cache_dir)
    out = cache / f"{re.sub(r'[^A-Za-z0-9_-]', '_', item_id)[:40]}-{key}.png"
    if not out.is_file():
        buf = io.BytesIO()
        title_card(title, category, size).save(buf, format="PNG")
        atomic_write_bytes(out, buf.getvalue())
    return str(out)


class Thumbnails:
    """Display images for items: a resized copy of the real poster/cover, else a generated title card."""

    def __init__(self, cache_dir: Path, images_dir: Path | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.override = image_listing(Path(images_dir)) if images_dir is not None else {}
        self._memo: dict[tuple[str, str, str, str], str] = {}

    def path(self, cat: Catalogue, i: int) -> str:
        """Cached PNG/JPEG path of item `i` of `cat` (built on first use, safe across threads)."""
        iid = cat.item_ids[i]
        key = (iid, cat.titles[i], cat.categories[i], self.override.get(iid, cat.image_paths[i]))
        if key not in self._memo:
            row = {"item_id": iid, "title": key[1], "category": key[2], "image_path": key[3]}
            out = thumbnail_for(row, self.cache_dir, THUMB_SIZE)
            self._memo[key] = out if Path(out).parent == self.cache_dir else self._resized(out)
        return self._memo[key]

    def _resized(self, source: str) -> str:
        """A JPEG copy of a real image at thumbnail size, cached by its path and modification time."""
        src = Path(source)
        digest = hashlib.sha1(f"{src.resolve()}\0{src.stat().st_mtime_ns}".encode()).hexdigest()[:16]
        out = self.cache_dir / f"real-{digest}.jpg"
        if not out.is_file():
            with Image.open(src) as im:
                rgb = im.convert("RGB")
            rgb.thumbnail((THUMB_SIZE[0] * 2, THUMB_SIZE[1] * 2))
            buf = io.BytesIO()
            rgb.save(buf, format="JPEG", quality=85)
            atomic_write_bytes(out, buf.getvalue())
        return str(out)
