"""Data tab: upload a dataset zip, extract it safely and atomically, validate it, and offer it to the Train tab's
dataset list. Messages quote file names and loader errors escaped, so `<name>.inter` or `*_item.csv` show as typed."""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import gradio as gr

from sicsrec.app.shell import UI
from sicsrec.app.studio import READY_MARK, Studio
from sicsrec.data import DataError, Dataset, load_dataset
from sicsrec.features.images import image_problem
from sicsrec.utils import atomic_dir, atomic_write_text

log = logging.getLogger("sicsrec.app")

MAX_BYTES = 200 * 2**20  # uncompressed size of all entries
MAX_FILES = 20_000  # entries of any kind, junk included
MAX_ARCHIVE_BYTES = MAX_BYTES + MAX_FILES * 512  # the zip itself: its content plus generous headers per entry
# A zip bomb inflates a few KB into gigabytes: an entry over RATIO_MIN_BYTES may unpack to at most MAX_RATIO
# times its compressed size (csv files compress 3-10x, images hardly; a column of one repeated value ~100x).
MAX_RATIO = 200
RATIO_MIN_BYTES = 2**20
CHUNK = 2**20
JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db")
LAYOUTS = """Bring your own catalogue and histories: upload a zip, it is checked and cleaned here (every problem
listed with its file and line), then the Train tab trains on it.

Accepted layouts (zip the folder or its contents):

* **csv**: `items.csv` (item_id, title, optional genres/category, description, image) + `interactions.csv`
  (user_id, item_id, timestamp or order), optional `images/<item_id>.jpg`
* **RecBole**: `<name>.item` + `<name>.inter` (tab-separated, `field:type` headers)
* **NineRec**: a domain's `sequential_data.txt` + `*_item_sort.csv` (or `*_item.csv`), optional `*_cover/` images
* **MovieLens**: `movies.csv` + `ratings.csv` (ml-latest / ml-latest-small layout)

Cleaning: users with fewer than **5 interactions** are dropped (a model needs a history, a validation and a test
item per user), then items nobody interacted with. Limits: 200 MB uncompressed, 20,000 files, no file unpacking to over 200x its compressed size; no absolute
paths, `..` or symbolic links inside the zip."""


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


def check_archive(archive: Path) -> None:
    """Refuse (UploadError) what is not a zip file or is larger than MAX_ARCHIVE_BYTES, before reading it."""
    if not archive.is_file() or not zipfile.is_zipfile(archive):
        raise UploadError(f"{archive.name} is not a zip archive")
    if (size := archive.stat().st_size) > MAX_ARCHIVE_BYTES:
        raise UploadError(f"the zip is {size / 2**20:,.0f} MB, over the limit of {MAX_ARCHIVE_BYTES / 2**20:,.0f} MB")


def _check_ratio(info: zipfile.ZipInfo, size: int) -> None:
    """Refuse an entry of `size` uncompressed bytes (declared, or read so far) that inflates like a zip bomb."""
    if size > RATIO_MIN_BYTES and size > MAX_RATIO * max(info.compress_size, 1):
        raise UploadError(
            f"{info.filename!r} unpacks to over {MAX_RATIO}x its compressed size (a zip bomb?); it was not extracted"
        )


def safe_extract(archive: str | Path, dest: str | Path, max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES) -> Path:
    """Extract a zip into `dest` after checking every entry; returns the dataset folder inside it.

    Refuses (UploadError) non-zips, archives over MAX_ARCHIVE_BYTES, encrypted or corrupt ones, more than
    `max_files` entries, more than `max_bytes` uncompressed or an entry inflating over MAX_RATIO times (declared
    or actually read), absolute or '..' paths, symbolic links and names given twice. Nothing is written outside
    `dest`. A single top-level folder is descended into.
    """
    archive, dest = Path(archive), Path(dest)
    check_archive(archive)
    try:
        with zipfile.ZipFile(archive) as zf:
            entries = zf.infolist()
            if len(entries) > max_files:
                raise UploadError(f"the zip holds {len(entries):,} entries, over the limit of {max_files:,}")
            infos = [i for i in entries if not any(i.filename.startswith(j) or i.filename.endswith(j) for j in JUNK)]
            declared = sum(i.file_size for i in infos)
            if declared > max_bytes:
                raise UploadError(
                    f"the zip unpacks to {declared / 2**20:,.0f} MB, over the limit of {max_bytes / 2**20:,.0f} MB"
                )
            plan, seen = [], set()
            for info in infos:
                parts = _entry_parts(info.filename)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise UploadError(f"the zip contains a symbolic link ({info.filename!r}); links are not extracted")
                if info.flag_bits & 0x1:
                    raise UploadError("the zip is password-protected; upload an unencrypted one")
                _check_ratio(info, info.file_size)
                if parts and not info.is_dir():
                    if parts in seen:
                        raise UploadError(f"the zip holds {info.filename!r} twice; re-create it")
                    seen.add(parts)
                if parts:
                    plan.append((info, parts))
            if not seen:
                raise UploadError("the zip is empty")
            dest.mkdir(parents=True, exist_ok=True)
            inside = dest.resolve()
            written = 0
            for info, parts in plan:
                target = dest.joinpath(*parts)
                if not target.resolve().is_relative_to(inside):  # a folder link already in `dest` would lead out
                    raise UploadError(f"the zip contains a path that leaves its folder ({info.filename!r})")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "xb") as out:  # "x": never through an existing file or link
                    entry = 0
                    while chunk := src.read(CHUNK):
                        entry += len(chunk)
                        written += len(chunk)
                        if written > max_bytes:
                            raise UploadError(f"the zip unpacks to more than {max_bytes / 2**20:,.0f} MB")
                        _check_ratio(info, entry)
                        out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise UploadError(f"the zip is corrupt or uses an unsupported compression ({e})") from None
    except OSError as e:  # a name too long for the file system, a file where the zip also wants a folder, ...
        name = Path(e.filename or "").name
        raise UploadError(f"the zip cannot be unpacked here ({e.strerror or e}: {name!r})") from None
    root = dest
    while len(children := list(root.iterdir())) == 1 and children[0].is_dir():
        root = children[0]
    return root


def corrupt_images(ds: Dataset) -> dict[str, str]:
    """Item id -> why its image is skipped (does not decode, too large, ...): the content layer's own check."""
    problems = ((iid, image_problem(path)) for iid, path in zip(ds.items["item_id"], ds.items["image_path"]) if path)
    return {iid: why for iid, why in problems if why}


SEE_LAYOUTS = "_The accepted layouts and limits are listed above._"
MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")


def plain(text: str) -> str:
    """`text` shown as typed inside markdown: HTML escaped (`<name>.inter` is not a tag) and markdown marks
    backslash-escaped (`*_item.csv` is not emphasis)."""
    return MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def cleaning_table(counts: dict[str, int]) -> str:
    """Before / after cleaning as a small markdown table: items, users, interactions (rows read and kept)."""
    rows = [
        ("items", counts.get("raw_item_rows"), counts.get("items")),
        ("users", counts.get("raw_users"), counts.get("users")),
        ("interactions", counts.get("raw_interaction_rows"), counts.get("interactions")),
        ("images", None, counts.get("images")),
    ]
    cell = lambda n: "—" if n is None else f"{n:,}"
    lines = ["| | read | kept after cleaning | dropped |", "|---|--:|--:|--:|"]
    for what, before, after in rows:
        dropped = before - after if before is not None and after is not None else None
        lines.append(f"| {what} | {cell(before)} | {cell(after)} | {cell(dropped)} |")
    return "\n".join(lines)


def report_markdown(name: str, ds: Dataset, bad_images: dict[str, str]) -> str:
    """The validation report as markdown: counts, before/after cleaning, then every problem with file:line [column]."""
    rep = ds.report
    c = rep.counts
    lines = [
        f"### ✓ `{name}` is ready to train on: the Train tab has it selected",
        f"**{c.get('items', 0):,} items · {c.get('users', 0):,} users · {c.get('interactions', 0):,} interactions · "
        f"{c.get('images', 0):,} images** (format detected automatically).",
        cleaning_table(c),
    ]
    if bad_images:
        shown = plain("; ".join(f"{iid} ({why})" for iid, why in list(bad_images.items())[:10]))
        lines.append(
            f"**{len(bad_images):,} image(s) do not decode** or are refused, and will be skipped (no image "
            f"feature for those items): {shown}" + (" …" if len(bad_images) > 10 else "")
        )
    if rep.kind_counts:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in rep.kind_counts.items())
        listed = "\n".join(str(p) for p in rep.problems)
        lines.append(
            f"**Problems found** ({kinds}); rows were skipped or fixed as listed "
            f"(at most {rep.max_listed_per_kind} per kind):\n\n```\n{listed}\n```"
        )
    else:
        lines.append("No problems found.")
    return "\n\n".join(lines)


class DataTab:
    """Handlers of the Data tab."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def upload(self, file: str | None) -> tuple[str, gr.Dataframe, gr.Dropdown]:
        """Extract, validate and register an uploaded zip; (report, item preview, Train dataset choices).

        The zip is extracted and validated in a temp folder beside its final one, which it replaces only once
        it validated and carries READY_MARK: a killed process never leaves a half-extracted dataset."""
        no_change, hidden = gr.Dropdown(choices=self.studio.dataset_choices()), gr.Dataframe(visible=False)
        if not file:
            return "Choose a `.zip` file first.", hidden, no_change
        path = Path(file)
        try:
            check_archive(path)  # before hashing it: a huge upload is refused unread
        except UploadError as e:
            return f"### Upload refused\n{plain(str(e))}.\n\n{SEE_LAYOUTS}", hidden, no_change
        with path.open("rb") as f:
            digest = hashlib.file_digest(f, "sha1").hexdigest()[:8]
        name = f"{safe_name(path.stem)}-{digest}"
        dest = self.studio.config.uploads / name
        try:
            with atomic_dir(dest) as tmp:
                root = safe_extract(path, tmp)
                ds = load_dataset(root, name=name, confine_images=True)
                bad = corrupt_images(ds)
                root = dest / root.relative_to(tmp)  # where it will be once swapped in
                atomic_write_text(tmp / READY_MARK, json.dumps({"root": str(root), "counts": ds.report.counts}))
        except UploadError as e:
            return f"### Upload refused\n{plain(str(e))}.\n\n{SEE_LAYOUTS}", hidden, no_change
        except DataError as e:
            message = str(e).replace(f"{tmp}/", "").replace(str(tmp), "(zip)")  # no server paths
            return f"### Not a usable dataset\n{plain(message)}\n\n{SEE_LAYOUTS}", hidden, no_change
        except Exception as e:  # never show a traceback for a bad upload
            log.exception("upload failed")
            return f"### Could not read this upload\n{plain(f'{type(e).__name__}: {e}')}", hidden, no_change
        self.studio.datasets[name] = str(root)
        preview = gr.Dataframe(ds.items[["item_id", "title", "category"]].head(12), visible=True)
        return report_markdown(name, ds, bad), preview, gr.Dropdown(choices=self.studio.dataset_choices(), value=name)

    def checking(self) -> tuple[str, gr.Dataframe]:
        """A new file arrived: the previous report and preview go at once, before the new one is checked."""
        return "_Checking the upload…_", gr.Dataframe(visible=False)

    def cleared(self) -> tuple[str, gr.Dataframe]:
        """The file was removed: no report, no preview."""
        return "", gr.Dataframe(visible=False)


def render(studio: Studio, datasets: gr.Dropdown) -> None:
    """Build the Data tab; a validated upload is added to `datasets` (the Train tab's dataset dropdown)."""
    tab = DataTab(studio)
    with gr.Tab("Data", id="data"):
        gr.Markdown(LAYOUTS)
        # no file_types filter: a wrong file reaches `upload`, whose refusal replaces the previous report
        upload = gr.File(label="Dataset zip", type="filepath", elem_id="dataset-upload")
        report = gr.Markdown(elem_id="data-report")
        preview = gr.Dataframe(interactive=False, label="First items", visible=False)
    upload.upload(tab.checking, None, [report, preview], **UI).then(
        tab.upload, upload, [report, preview, datasets], **UI
    )
    upload.clear(tab.cleared, None, [report, preview], **UI)


__all__ = [
    "LAYOUTS",
    "MAX_ARCHIVE_BYTES",
    "MAX_BYTES",
    "MAX_FILES",
    "MAX_RATIO",
    "DataTab",
    "UploadError",
    "check_archive",
    "cleaning_table",
    "corrupt_images",
    "plain",
    "render",
    "report_markdown",
    "safe_extract",
    "safe_name",
]
