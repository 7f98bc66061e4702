"""Data tab: upload a dataset zip, extract it safely, validate it, and offer it to the Train tab's dataset list."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import gradio as gr
from PIL import Image

from sicsrec.app.shell import UI
from sicsrec.app.studio import READY_MARK, Studio
from sicsrec.data import DataError, Dataset, load_dataset
from sicsrec.utils import atomic_write_text

log = logging.getLogger("sicsrec.app")

MAX_BYTES = 200 * 2**20  # uncompressed size of all entries
MAX_FILES = 20_000
CHUNK = 2**20
JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db")
LAYOUTS = """Accepted layouts (zip the folder or its contents):

* **csv**: `items.csv` (item_id, title, optional genres/category, description, image) + `interactions.csv`
  (user_id, item_id, timestamp or order), optional `images/<item_id>.jpg`
* **RecBole**: `<name>.item` + `<name>.inter` (tab-separated, `field:type` headers)
* **NineRec**: a domain's `sequential_data.txt` + `*_item_sort.csv` (or `*_item.csv`), optional `*_cover/` images
* **MovieLens**: `movies.csv` + `ratings.csv` (ml-latest / ml-latest-small layout)

Limits: 200 MB uncompressed, 20,000 files; no absolute paths, `..` or symbolic links inside the zip."""


def safe_name(text: str) -> str:
    """A short file-system-safe name made from `text`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:40] or "dataset"


class UploadError(Exception):
    """An uploaded archive that cannot be used; the message says why in plain words."""


def _entry_parts(name: str) -> tuple[str, ...]:
    """The path parts of a zip entry name, rejecting absolute paths, drive letters and '..'."""
    unified = name.replace("\\", "/")
    path = PurePosixPath(unified)
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise UploadError(f"the zip contains an absolute path ({name!r}); re-create it with relative paths")
    if ".." in path.parts:
        raise UploadError(f"the zip contains a path that leaves its folder ({name!r}); it was not extracted")
    return tuple(p for p in path.parts if p not in ("", "."))


def safe_extract(archive: str | Path, dest: str | Path, max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES) -> Path:
    """Extract a zip into `dest` after checking every entry; returns the dataset folder inside it.

    Refuses (UploadError) non-zips, encrypted or corrupt archives, more than `max_files` entries,
    more than `max_bytes` uncompressed (declared or actually read), absolute or '..' paths and
    symbolic links. A single top-level folder is descended into.
    """
    archive, dest = Path(archive), Path(dest)
    if not zipfile.is_zipfile(archive):
        raise UploadError(f"{archive.name} is not a zip archive")
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not any(i.filename.startswith(j) or i.filename.endswith(j) for j in JUNK)]
            if len(infos) > max_files:
                raise UploadError(f"the zip holds {len(infos):,} entries, over the limit of {max_files:,}")
            declared = sum(i.file_size for i in infos)
            if declared > max_bytes:
                raise UploadError(f"the zip unpacks to {declared / 2**20:,.0f} MB, over the limit of {max_bytes / 2**20:,.0f} MB")
            plan = []
            for info in infos:
                parts = _entry_parts(info.filename)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise UploadError(f"the zip contains a symbolic link ({info.filename!r}); links are not extracted")
                if info.flag_bits & 0x1:
                    raise UploadError("the zip is password-protected; upload an unencrypted one")
                if parts:
                    plan.append((info, parts))
            if not any(not info.is_dir() for info, _ in plan):
                raise UploadError("the zip is empty")
            dest.mkdir(parents=True, exist_ok=True)
            written = 0
            for info, parts in plan:
                target = dest.joinpath(*parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise UploadError(f"the zip unpacks to more than {max_bytes / 2**20:,.0f} MB")
                        out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise UploadError(f"the zip is corrupt or uses an unsupported compression ({e})") from None
    root = dest
    while len(children := list(root.iterdir())) == 1 and children[0].is_dir():
        root = children[0]
    return root


def corrupt_images(ds: Dataset) -> list[str]:
    """Item ids whose image file does not decode (the content layer gives them no image feature)."""
    bad = []
    for iid, path in zip(ds.items["item_id"], ds.items["image_path"]):
        if not path:
            continue
        try:
            with Image.open(path) as im:
                im.verify()
        except Exception:  # PIL raises many types for broken files
            bad.append(iid)
    return bad


def report_markdown(name: str, ds: Dataset, bad_images: list[str]) -> str:
    """The validation report as markdown: counts, then every problem with file:line [column]."""
    rep = ds.report
    c = rep.counts
    lines = [f"### ✓ `{name}` is ready to train on",
             f"**{c.get('items', 0):,} items · {c.get('users', 0):,} users · {c.get('interactions', 0):,} interactions · "
             f"{c.get('images', 0):,} images** (format detected automatically).",
             "Before cleaning: " + ", ".join(f"{k.removeprefix('raw_').replace('_', ' ')} {v:,}"
                                             for k, v in c.items() if k.startswith("raw_")) + "."]
    if bad_images:
        shown = ", ".join(bad_images[:10]) + (" …" if len(bad_images) > 10 else "")
        lines.append(f"**{len(bad_images):,} image(s) do not decode** and will be skipped (no image feature for those "
                     f"items): {shown}")
    if rep.kind_counts:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in rep.kind_counts.items())
        listed = "\n".join(str(p) for p in rep.problems)
        lines.append(f"**Problems found** ({kinds}); rows were skipped or fixed as listed "
                     f"(at most {rep.max_listed_per_kind} per kind):\n\n```\n{listed}\n```")
    else:
        lines.append("No problems found.")
    return "\n\n".join(lines)


class DataTab:
    """Handlers of the Data tab."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def upload(self, file: str | None) -> tuple[str, gr.Dataframe, gr.Dropdown]:
        """Extract, validate and register an uploaded zip; (report, item preview, Train dataset choices)."""
        no_change, hidden = gr.Dropdown(choices=self.studio.dataset_choices()), gr.Dataframe(visible=False)
        if not file:
            return "Choose a `.zip` file first.", hidden, no_change
        path = Path(file)
        digest = hashlib.sha1(path.read_bytes()).hexdigest()[:8]
        name = f"{safe_name(path.stem)}-{digest}"
        dest = self.studio.config.uploads / name
        shutil.rmtree(dest, ignore_errors=True)
        try:
            root = safe_extract(path, dest)
            ds = load_dataset(root, name=name, confine_images=True)
            bad = corrupt_images(ds)
        except UploadError as e:
            shutil.rmtree(dest, ignore_errors=True)
            return f"### Upload refused\n{e}.\n\n{LAYOUTS}", hidden, no_change
        except DataError as e:
            shutil.rmtree(dest, ignore_errors=True)
            message = str(e).replace(f"{dest}/", "").replace(str(dest), "(zip)")
            return f"### Not a usable dataset\n{message}\n\n{LAYOUTS}", hidden, no_change
        except Exception as e:  # never show a traceback for a bad upload
            log.exception("upload failed")
            shutil.rmtree(dest, ignore_errors=True)
            return f"### Could not read this upload\n{type(e).__name__}: {e}", hidden, no_change
        atomic_write_text(dest / READY_MARK, json.dumps({"root": str(root), "counts": ds.report.counts}))
        self.studio.datasets[name] = str(root)
        preview = gr.Dataframe(ds.items[["item_id", "title", "category"]].head(12), visible=True)
        return report_markdown(name, ds, bad), preview, gr.Dropdown(choices=self.studio.dataset_choices(), value=name)


def render(studio: Studio, datasets: gr.Dropdown) -> None:
    """Build the Data tab; a validated upload is added to `datasets` (the Train tab's dataset dropdown)."""
    tab = DataTab(studio)
    with gr.Tab("Data", id="data"):
        gr.Markdown(LAYOUTS)
        upload = gr.File(label="Dataset zip", file_types=[".zip"], type="filepath", elem_id="dataset-upload")
        report = gr.Markdown()
        preview = gr.Dataframe(interactive=False, label="First items", visible=False)
    upload.upload(tab.upload, upload, [report, preview, datasets], **UI)


__all__ = ["DataTab", "LAYOUTS", "MAX_BYTES", "MAX_FILES", "UploadError", "corrupt_images", "render", "report_markdown",
           "safe_extract", "safe_name"]
