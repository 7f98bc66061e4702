"""Hostile uploads: zip bombs (ratio, total size, lying headers), zip-slip names, links, duplicate and impossible
names, oversized archives and hostile images are refused or skipped with a message; nothing is ever written
outside the upload's own folder (checked on generated archives too)."""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import sicsrec.app.tabs.data as data_tab
from sicsrec.app.studio import Studio
from sicsrec.app.tabs.data import MAX_RATIO, DataTab, UploadError, safe_extract

ITEMS = "item_id,title,image\n" + "".join(f"i{k},Title {k},images/i{k}.png\n" for k in range(6))
CLICKS = "user_id,item_id,timestamp\n" + "".join(f"u{u},i{(u + t) % 6},{t}\n" for u in range(4) for t in range(6))


def make_zip(path: Path, entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def files_under(root: Path) -> set[Path]:
    return {Path(d) / f for d, _, fs in os.walk(root) for f in fs}


def test_a_zip_bomb_is_refused_on_its_ratio_before_anything_is_written(tmp_path: Path) -> None:
    bomb = make_zip(tmp_path / "bomb.zip", {"items.csv": b"0" * (8 * 2**20)})  # 8 MiB of zeros: ~8 KB deflated
    with pytest.raises(UploadError, match=rf"'items\.csv' unpacks to over {MAX_RATIO}x its compressed size"):
        safe_extract(bomb, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    make_zip(tmp_path / "fine.zip", {"items.csv": b"0" * 2**20})  # highly compressible but small: allowed
    assert safe_extract(tmp_path / "fine.zip", tmp_path / "ok") == tmp_path / "ok"


def test_a_zip_lying_about_its_sizes_is_refused(tmp_path: Path) -> None:
    # the headers say 100 bytes; the data inflates to 8 MiB: the reader stops at 100 and the CRC fails
    honest = make_zip(tmp_path / "honest.zip", {"items.csv": b"0" * (8 * 2**20)}).read_bytes()
    data = bytearray(honest)
    data[22:26] = struct.pack("<I", 100)  # local header: uncompressed size
    central = data.index(b"PK\x01\x02")
    data[central + 24 : central + 28] = struct.pack("<I", 100)
    (tmp_path / "liar.zip").write_bytes(bytes(data))
    with pytest.raises(UploadError, match="corrupt"):
        safe_extract(tmp_path / "liar.zip", tmp_path / "out")
    assert sum(p.stat().st_size for p in files_under(tmp_path / "out")) <= 100


def test_total_size_and_entry_count_caps_count_every_entry(tmp_path: Path) -> None:
    junk = make_zip(tmp_path / "junk.zip", {**{f"__MACOSX/._{i}": b"" for i in range(12)}, "items.csv": b"x"})
    with pytest.raises(UploadError, match="13 entries, over the limit of 10"):
        safe_extract(junk, tmp_path / "out", max_files=10)
    big = make_zip(tmp_path / "big.zip", {"a.csv": b"1" * 600, "b.csv": b"2" * 600}, zipfile.ZIP_STORED)
    with pytest.raises(UploadError, match="over the limit of 0 MB"):
        safe_extract(big, tmp_path / "out", max_bytes=1000)


@pytest.mark.parametrize(
    "name", ["..\\evil.csv", "a/../../evil.csv", "/tmp/evil.csv", "\\\\server\\evil.csv", "D:evil.csv"]
)
def test_zip_slip_names_are_refused(tmp_path: Path, name: str) -> None:
    bad = make_zip(tmp_path / "slip.zip", {"items.csv": b"item_id,title\n1,a\n", name: b"x"})
    with pytest.raises(UploadError, match=r"absolute path|leaves its folder"):
        safe_extract(bad, tmp_path / "up" / "out")
    assert files_under(tmp_path) == {tmp_path / "slip.zip"}


def test_a_link_in_the_destination_is_not_followed(tmp_path: Path) -> None:
    outside, dest = tmp_path / "outside", tmp_path / "out"
    outside.mkdir()
    dest.mkdir()
    (dest / "data").symlink_to(outside, target_is_directory=True)  # left there by someone else
    upload = make_zip(tmp_path / "up.zip", {"data/items.csv": b"item_id,title\n1,a\n"})
    with pytest.raises(UploadError, match="leaves its folder"):
        safe_extract(upload, dest)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "entries,message",
    [
        ({"items.csv": b"1", "./items.csv": b"2"}, "twice"),
        ({"data": b"a file", "data/items.csv": b"1"}, "cannot be unpacked"),
        ({"x" * 300 + ".csv": b"1"}, "cannot be unpacked"),
        ({"folder/": b""}, "empty"),
    ],
)
def test_impossible_names_are_refused_with_a_message(tmp_path: Path, entries: dict[str, bytes], message: str) -> None:
    with pytest.raises(UploadError, match=message):
        safe_extract(make_zip(tmp_path / "odd.zip", entries), tmp_path / "out")


HOSTILE_PARTS = st.sampled_from(
    [
        "..",
        ".",
        "",
        "/",
        "\\",
        "C:",
        "~",
        "a",
        "b",
        "items.csv",
        "é",
        "\u202e",
        " ",
        "..\\..",
        "%2e%2e",
        "con",
        "x" * 80,
        "a:b",
        "\x7f",
    ]
)


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")  # duplicates are part of the test
@settings(database=None, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.lists(HOSTILE_PARTS, min_size=1, max_size=5).map("/".join), st.binary(max_size=64)),
        min_size=1,
        max_size=6,
    )
)
def test_generated_archives_never_write_outside_their_folder(entries: list[tuple[str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with zipfile.ZipFile(root / "up.zip", "w") as zf:
            for name, data in entries:
                zf.writestr(zipfile.ZipInfo(name or "x"), data)
        dest = root / "uploads" / "one"
        try:
            safe_extract(root / "up.zip", dest)
        except UploadError as e:
            assert str(e)
        outside = {p for p in files_under(root) if not p.resolve().is_relative_to(dest.resolve())}
        assert outside == {root / "up.zip"}


# --- through the Data tab ---------------------------------------------------------------------------


def test_an_oversized_upload_is_refused_unread(studio: Studio, tmp_path: Path, monkeypatch) -> None:
    upload = make_zip(tmp_path / "big.zip", {"items.csv": os.urandom(4096)}, zipfile.ZIP_STORED)
    monkeypatch.setattr(data_tab, "MAX_ARCHIVE_BYTES", 1000)
    before = set(studio.config.uploads.iterdir()) if studio.config.uploads.is_dir() else set()
    report = DataTab(studio).upload(str(upload))[0]
    assert "Upload refused" in report and "over the limit of 0 MB" in report
    assert (set(studio.config.uploads.iterdir()) if studio.config.uploads.is_dir() else set()) == before


def test_hostile_images_in_an_upload_are_skipped_with_their_reasons(studio: Studio, tmp_path: Path) -> None:
    def png(img: Image.Image) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    images = {
        "images/i0.png": png(Image.new("RGB", (8, 12), "red")),
        "images/i1.png": png(Image.new("1", (7_000, 7_000))),  # a 49 MP bomb in a few KB
        "images/i2.png": b"<html>not found</html>",
        "images/i3.png": png(Image.effect_noise((32, 32), 64))[:400],  # truncated inside its pixel data
        "images/i4.png": png(Image.new("RGB", (4_000, 2), "green")),  # a strip
        "images/i5.png": png(Image.new("LA", (8, 12))),  # grayscale + alpha: converted, fine
    }
    upload = make_zip(
        tmp_path / "pics.zip", {"items.csv": ITEMS.encode(), "interactions.csv": CLICKS.encode(), **images}
    )
    report, _preview, choices = DataTab(studio).upload(str(upload))
    assert "ready to train on" in report and "4 image(s) do not decode" in report, report
    for reason in (
        "i1 (too large: 7000 x 7000 pixels",
        "i2 (not an image)",
        "i3 (truncated or corrupt",
        "i4 (extreme aspect ratio",
    ):
        assert reason in report
    assert choices.value in studio.datasets and "Traceback" not in report
