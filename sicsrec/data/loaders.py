"""Dataset loaders: read a csv / RecBole / NineRec / MovieLens folder into the internal schema.

Every format has a reader in the `FORMATS` registry that only parses its files into raw tables;
the validation and cleaning that follows is shared, so every format reports problems the same way
(file, 1-based line with the header as line 1, column) and obeys the same rules:

* rows with the wrong number of fields, ids that are not integers (MovieLens, NineRec), empty ids
  and unparseable timestamps are dropped and counted; a timestamp column holds numbers or dates,
  whichever more of its values parse as, and values of the other kind count as unparseable;
* a quoted field spanning lines with the delimiter on a later line (rows swallowed by an unbalanced
  quote?) is counted as a "multi-line field"; a quote never closed before the end of the file, a
  field over csv's size limit, NUL bytes and non-UTF-8 text are fatal, naming the line;
* duplicate item ids keep the first row; an empty title is kept and replaced by the item id
  (the item still has interactions worth learning from), with a warning;
* interactions on items missing from the item table are dropped and counted;
* `min_item_interactions` (when > 0) is applied first, then `min_user_interactions`, in one pass;
  then items left without interactions leave the catalogue (catalogue = interacted items);
* image paths are recorded only for files that exist (the content layer decodes them);
* fatal problems (missing files, no id column, unreadable encoding, nothing left) raise `DataError`.

`report.counts`: items, users, interactions, images (final); raw_item_rows, raw_interaction_rows
(data rows read); raw_items, raw_users, raw_interactions (valid, before the min-count filters).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from sicsrec.data.schema import (
    INTERACTION_COLUMNS,
    ITEM_COLUMNS,
    TEXT_FIELD_PREFIX,
    DataError,
    Dataset,
    Problem,
    ValidationReport,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # priority order when one id has several files
IMAGE_DIR_NAMES = ("images", "posters", "covers")

# Column-name candidates, matched case-insensitively ignoring "_", "-", spaces and ":type" suffixes.
ITEM_ID_NAMES = ("item_id", "movieId", "iid", "item")
USER_ID_NAMES = ("user_id", "uid", "user")
TITLE_NAMES = ("title", "name", "movie_title", "item_name")
ORDER_NAMES = ("timestamp", "time", "ts", "datetime", "date", "order", "position")
IMAGE_NAMES = ("image", "image_path", "poster", "cover", "img")
GENRE_NAMES = ("genres", "genre", "category", "categories", "tags", "class")
DESCRIPTION_NAMES = ("description", "overview", "plot", "summary")

NO_GENRE = "(no genres listed)"  # MovieLens' placeholder
RECBOLE_SPLITS = ("train", "valid", "test")  # later splits win when a user's rows tie in length
RECBOLE_MAX_LIST = 50  # RecBole's default MAX_ITEM_LIST_LENGTH: lists this long may be truncated
LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what ends a line for csv.reader (and editors)

Quoting = Literal[0, 1, 2, 3]  # csv.QUOTE_MINIMAL, QUOTE_ALL, QUOTE_NONNUMERIC, QUOTE_NONE


@dataclass
class RawData:
    """What a format reader hands to the shared validation.

    items: item_id, title, extra (text after the title), category, image (path as written, or ""),
        _file, _line.  interactions: user_id, item_id, order (Int64), _file, _line.
    """

    items: pd.DataFrame
    interactions: pd.DataFrame
    item_file: str
    id_column: str | None
    title_column: str | None
    item_column: str  # column naming the item in the interaction file(s)
    name: str
    image_column: str | None = None
    image_dir: Path | None = None
    text_sep: str = ". "  # between title and extra text (dropped after a title ending in . ! ? …)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Format:
    """A registered dataset format: how to recognise its folder, how to read it, what it needs."""

    detect: Callable[[Path], bool]
    read: Callable[[Path, Path | None, ValidationReport], RawData]
    expects: str


# ---------------------------------------------------------------------------------------------
# reading helpers


def _display(path: Path, root: Path) -> str:
    """The file name used in problems: relative to the dataset folder when inside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _read_text(path: Path) -> str:
    """Read a whole file as UTF-8 text, turning every way it can fail into a DataError."""
    if not path.is_file():
        raise DataError(f"{path}: missing file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError(f"{path}: UTF-16 text (byte-order mark found); save it as UTF-8")
    nul = data.find(b"\x00")  # anywhere: a text file with binary data appended is not text either
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise DataError(f"{path}: binary data, not a text file (NUL byte at line {line})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); save it as UTF-8"
        ) from None
    if not text.strip():
        raise DataError(f"{path}: empty file")
    return text


def _csv_rows(text: str, path: Path, sep: str, quoting: Quoting) -> list[list[str]]:
    """The rows of delimited text; a csv error becomes a DataError naming the line its row starts on."""
    rows: list[list[str]] = []
    try:
        rows.extend(csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting))
    except csv.Error as e:  # `rows` holds the rows read before the failing one
        start = 1 + sum(1 + sum(len(LINE_BREAK.findall(f)) for f in row) for row in rows)
        if "field limit" in str(e):
            raise DataError(
                f"{path}: line {start}: a field is longer than {csv.field_size_limit():,} characters "
                "(a quote that is never closed?)"
            ) from None
        raise DataError(f"{path}: line {start}: unreadable as delimited text ({e})") from None
    return rows


def _sniff_sep(text: str) -> str:
    """The delimiter of a header line: the most frequent of , tab ; | (comma on ties)."""
    header = text.split("\n", 1)[0]
    return max([",", "\t", ";", "|"], key=header.count)


def _read_table(
    path: Path,
    root: Path,
    report: ValidationReport,
    *,
    sep: str | None = ",",
    quoting: Quoting = csv.QUOTE_MINIMAL,
    names: list[str] | None = None,
    min_fields: int | None = None,
) -> pd.DataFrame:
    """Parse a delimited file into string columns plus `_file` and `_line` (physical 1-based line).

    With `names` the file has no header and rows need min_fields..len(names) fields; otherwise
    line 1 is the header and rows need exactly its field count. Other rows are dropped and
    reported; blank lines are skipped silently.
    """
    text = _read_text(path)
    sep = _sniff_sep(text) if sep is None else sep
    records = _csv_rows(text, path, sep, quoting)
    columns = zip_longest(*records)  # ragged rows padded with None
    frame = pd.DataFrame(dict(enumerate(columns)), index=range(len(records)), dtype=object)
    n_fields = np.fromiter(map(len, records), dtype=np.int64, count=len(records))
    spans = np.ones(len(records), dtype=np.int64)
    swallowing = np.zeros(len(records), dtype=bool)
    if quoting != csv.QUOTE_NONE and '"' in text and len(frame.columns):  # quoted fields may hold line breaks
        fields = [frame[c] for c in frame.columns]
        spans += sum(f.str.count(LINE_BREAK.pattern).fillna(0).to_numpy(np.int64) for f in fields)
        # the delimiter on a later line of one field: the mark of rows swallowed by an unbalanced quote
        swallowed = rf"[\r\n][^\r\n]*{re.escape(sep)}"
        swallowing = np.any([f.str.contains(swallowed, na=False).to_numpy(bool) for f in fields], axis=0)
    line = np.concatenate([[1], 1 + np.cumsum(spans)[:-1]])
    if records and records[-1] and LINE_BREAK.search(records[-1][-1]) and not text.rstrip("\r\n").endswith('"'):
        raise DataError(
            f"{path}: line {line[-1]}: a quote is never closed, so lines {line[-1]}-"
            f"{line[-1] + spans[-1] - 1} were read as one field; close or remove the quote"
        )
    file = _display(path, root)
    if names is None:
        names = [str(h).strip() for h in records[0]]
        if not any(names):
            raise DataError(f"{path}: line 1 should be a header with column names")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise DataError(f"{path}: repeated column names in the header: {repeated}")
        start, low, high = 1, len(names), len(names)
    else:
        start, low, high = 0, min_fields or len(names), len(names)
    frame = frame.reindex(columns=range(len(names)), fill_value="").iloc[start:].set_axis(names, axis=1).fillna("")
    n_fields, line = n_fields[start:], line[start:]
    frame["_file"] = file
    frame["_line"] = line
    frame["_n"] = n_fields
    frame["_end"] = line + spans[start:] - 1
    _flag(
        report,
        "multi-line field",
        frame,
        swallowing[start:] & (n_fields > 0),
        None,
        "a field spans lines {_line}-{_end} with the delimiter on a later line: if not intended, a quote is "
        "unbalanced and rows were read into this one",
    )
    bad = (n_fields > 0) & ((n_fields < low) | (n_fields > high))
    expected = str(low) if low == high else f"{low}-{high}"
    template = "expected {expected} fields, found {_n}; row skipped"
    _flag(report, "wrong field count", frame, bad, None, template, expected=expected)
    return frame.loc[(n_fields > 0) & ~bad].drop(columns=["_n", "_end"])


def _norm(name: str) -> str:
    """Column name for matching: lower-case, no "_", "-", spaces or RecBole ":type" suffix."""
    return re.sub(r"[\s_\-]", "", str(name).split(":", 1)[0]).lower()


def _find_column(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    """The first column whose normalised name matches a candidate (candidates in priority order)."""
    by_norm: dict[str, str] = {}
    for c in columns:
        if not str(c).startswith("_"):
            by_norm.setdefault(_norm(c), c)
    return next((by_norm[_norm(c)] for c in candidates if _norm(c) in by_norm), None)


def _require_column(frame: pd.DataFrame, candidates: tuple[str, ...], path: Path, what: str) -> str:
    col = _find_column(list(frame.columns), candidates)
    if col is None:
        found = [str(c)[:40] for c in frame.columns if not str(c).startswith("_")]  # a "header" may be a data row
        raise DataError(f"{path}: no recognisable {what} column (looked for {', '.join(candidates)}; found {found})")
    return col


def _flag(
    report: ValidationReport,
    kind: str,
    frame: pd.DataFrame,
    mask: pd.Series | np.ndarray,
    column: str | None,
    template: str,
    **extra: object,
) -> None:
    """Report the rows of `frame` picked by `mask` as one kind of problem (first few listed)."""
    mask = np.asarray(mask, dtype=bool)
    total = int(mask.sum())
    if total:
        head = frame.loc[mask].head(report.max_listed_per_kind).to_dict("records")
        problems = [
            Problem(
                file=str(row["_file"]),
                message=template.format(**{**row, **extra}),
                line=None if pd.isna(row.get("_line")) else int(row["_line"]),
                column=column,
            )
            for row in head
        ]
        report.add_many(kind, problems, total)


def _clean_ids(values: pd.Series, integer: bool) -> pd.Series:
    """Stripped ids; with integer=True canonical integers ("007" -> "7") and NA for anything else."""
    s = values.astype(str).str.strip()
    if not integer:
        return s.mask(s.eq(""))
    ok = s.str.fullmatch(r"[+-]?[0-9]{1,18}")  # fits int64, so the conversion below is exact; \d would
    # also take other scripts' digits, so "٣" would silently become item "3"
    out = pd.Series(np.nan, index=s.index, dtype=object)
    out[ok] = s[ok].astype("int64").astype(str)
    return out


def _parse_order(values: pd.Series) -> pd.Series:
    """Timestamps to Int64 (numbers as they are, dates as Unix seconds); NA where unparseable.

    The column holds numbers or dates, whichever more of its values parse as; values of the other kind are
    NA, never guessed (a number read as a date would silently move a row). Fractional numbers are kept as
    microseconds so sub-second order survives the int64 column (unless that would overflow it).
    """
    s = values.astype(str).str.strip()
    num = pd.to_numeric(s, errors="coerce")
    num = num.where(np.isfinite(num) & (num.abs() < 9e18))  # NaN, inf and what int64 cannot hold
    dates = s.where(num.isna() & s.ne(""))
    dt = pd.to_datetime(dates, errors="coerce", utc=True, format="mixed") if dates.notna().any() else None
    if dt is None or num.notna().sum() >= dt.notna().sum():
        if ((num % 1).fillna(0) != 0).any() and num.abs().max() < 9e12:
            num = num * 1_000_000
        return num.round().astype("Int64")
    # an epoch in whole seconds: subtracting a nanosecond epoch would overflow for years past 2262
    return ((dt - pd.Timestamp(0, tz="UTC").as_unit("s")) // pd.Timedelta(seconds=1)).astype("Int64")


def _items_frame(
    table: pd.DataFrame,
    report: ValidationReport,
    *,
    id_col: str,
    title: pd.Series,
    extra: pd.Series,
    category: pd.Series,
    image: pd.Series | None = None,
    integer_ids: bool,
) -> pd.DataFrame:
    """Assemble the raw item table, dropping (and reporting) rows whose id is empty or invalid."""
    items = pd.DataFrame(
        {
            "item_id": _clean_ids(table[id_col], integer_ids),
            "title": title.astype(str),
            "extra": extra.astype(str).str.strip(),
            "category": category.astype(str).str.strip(),
            "image": "" if image is None else image.astype(str).str.strip(),
            "_file": table["_file"],
            "_line": table["_line"],
            "_raw": table[id_col],
        }
    )
    bad = items["item_id"].isna()
    kind, why = ("non-integer id", "is not an integer") if integer_ids else ("missing value", "is empty")
    _flag(report, kind, items, bad, id_col, "item id {_raw!r} " + why + "; row skipped")
    return items.loc[~bad].drop(columns="_raw")


def _interactions_frame(
    table: pd.DataFrame,
    report: ValidationReport,
    *,
    user: pd.Series,
    item: pd.Series,
    order: pd.Series | None,
    user_col: str,
    item_col: str,
    order_col: str | None,
    integer_ids: bool,
) -> pd.DataFrame:
    """Assemble raw interactions; rows with an invalid id or timestamp are dropped and reported.

    Without an order column the order is the position in the file, per user.
    """
    inter = pd.DataFrame(
        {
            "user_id": _clean_ids(user, integer_ids),
            "item_id": _clean_ids(item, integer_ids),
            "_file": table["_file"],
            "_line": table["_line"],
            "_user": user,
            "_item": item,
        }
    )
    kind, why = ("non-integer id", "is not an integer") if integer_ids else ("missing value", "is empty")
    keep = pd.Series(True, index=inter.index)
    for col, raw, label, src in (("user_id", "_user", "user", user_col), ("item_id", "_item", "item", item_col)):
        bad = keep & inter[col].isna()
        _flag(report, kind, inter, bad, src, label + " id {" + raw + "!r} " + why + "; row skipped")
        keep &= ~bad
    if order is None:
        inter = inter.loc[keep, ["user_id", "item_id", "_file", "_line"]]
        return inter.assign(order=inter.groupby("user_id", sort=False).cumcount().astype("Int64"))
    inter = inter.assign(order=_parse_order(order), _order=order)
    bad = keep & inter["order"].isna()
    _flag(report, "bad timestamp", inter, bad, order_col, "unparseable timestamp {_order!r}; row skipped")
    return inter.loc[keep & ~bad, ["user_id", "item_id", "order", "_file", "_line"]]


def _split_genres(values: pd.Series, pattern: str) -> tuple[pd.Series, pd.Series]:
    """Genre lists -> ("a, b, c" text, first genre as category)."""
    s = values.astype(str).str.strip()
    s = s.mask(s.eq(NO_GENRE), "")
    parts = s.str.split(pattern, regex=True)
    extra = parts.map(lambda p: ", ".join(x.strip() for x in p if x.strip()))
    return extra, extra.str.split(", ", n=1).str[0].fillna("")


def _image_dir(root: Path, patterns: tuple[str, ...] = IMAGE_DIR_NAMES) -> Path | None:
    """The first existing image folder in `root` matching one of the glob patterns."""
    return next((p for pat in patterns for p in sorted(root.glob(pat)) if p.is_dir()), None)


def _blank(index: pd.Index) -> pd.Series:
    """An all-empty string column (for fields a file does not have)."""
    return pd.Series("", index=index, dtype=object)


# ---------------------------------------------------------------------------------------------
# formats


def _is_movielens(root: Path) -> bool:
    return (root / "movies.csv").is_file() and (root / "ratings.csv").is_file()


def _read_movielens(root: Path, focus: Path | None, report: ValidationReport) -> RawData:
    """movies.csv (movieId,title,genres) + ratings.csv (userId,movieId,rating,timestamp)."""
    movies_path, ratings_path = root / "movies.csv", root / "ratings.csv"
    movies = _read_table(movies_path, root, report)
    ratings = _read_table(ratings_path, root, report)
    id_col = _require_column(movies, ("movieId",), movies_path, "item id")
    title_col = _require_column(movies, ("title",), movies_path, "title")
    genre_col = _find_column(list(movies.columns), ("genres",))
    extra, category = (
        _split_genres(movies[genre_col], r"\|") if genre_col else (_blank(movies.index), _blank(movies.index))
    )
    items = _items_frame(
        movies, report, id_col=id_col, title=movies[title_col], extra=extra, category=category, integer_ids=True
    )
    user_col = _require_column(ratings, ("userId",), ratings_path, "user id")
    item_col = _require_column(ratings, ("movieId",), ratings_path, "item id")
    ts_col = _require_column(ratings, ("timestamp",), ratings_path, "timestamp")
    inter = _interactions_frame(
        ratings,
        report,
        user=ratings[user_col],
        item=ratings[item_col],
        order=ratings[ts_col],
        user_col=user_col,
        item_col=item_col,
        order_col=ts_col,
        integer_ids=True,
    )
    return RawData(
        items,
        inter,
        _display(movies_path, root),
        id_col,
        title_col,
        item_col,
        name=root.name,
        image_dir=_image_dir(root),
        counts={"raw_item_rows": len(movies), "raw_interaction_rows": len(ratings)},
    )


def _ninerec_item_file(root: Path) -> Path | None:
    found = sorted(root.glob("*_item_sort.csv")) + sorted(root.glob("*_item.csv"))
    return found[0] if found else None


def _is_ninerec(root: Path) -> bool:
    return (root / "sequential_data.txt").is_file() and _ninerec_item_file(root) is not None


def _read_ninerec(root: Path, focus: Path | None, report: ValidationReport) -> RawData:
    """X_item_sort.csv (no header: id,chinese,english) + sequential_data.txt (user item item ...)."""
    item_path = _ninerec_item_file(root)
    assert item_path is not None  # detect() guarantees it
    table = _read_table(item_path, root, report, names=["item_id", "chinese_title", "english_title"], min_fields=2)
    first = table.head(1)
    if len(first) and first["_line"].iloc[0] == 1 and not first["item_id"].str.strip().str.fullmatch(r"\d+").all():
        table = table.iloc[1:]  # a header line
    n_item_rows = len(table)
    chinese = table["chinese_title"].str.strip()
    english = table["english_title"].str.strip()
    has_en = english.ne("")
    items = _items_frame(
        table,
        report,
        id_col="item_id",
        title=english.where(has_en, chinese),
        extra=chinese.where(has_en, ""),
        category=_blank(table.index),
        integer_ids=True,
    )
    # The text fields a run may choose (FeatureConfig.text_field): each language alone, the other when blank.
    items = items.assign(text_en=english.where(has_en, chinese), text_zh=chinese.where(chinese.ne(""), english))

    seq_path = root / "sequential_data.txt"
    lines = pd.Series(LINE_BREAK.split(_read_text(seq_path))).str.split()
    lines = lines[lines.str.len() > 0]
    seq = lines.str[1:].explode().dropna()
    table = pd.DataFrame(
        {
            "user": lines.str[0].reindex(seq.index).to_numpy(),
            "item": seq.to_numpy(),
            "_file": _display(seq_path, root),
            "_line": seq.index.to_numpy() + 1,
        }
    )
    inter = _interactions_frame(
        table,
        report,
        user=table["user"],
        item=table["item"],
        order=None,
        user_col="user",
        item_col="item",
        order_col=None,
        integer_ids=True,
    )
    return RawData(
        items,
        inter,
        _display(item_path, root),
        "item_id",
        "english_title",
        "item",
        name=root.name,
        text_sep=" ",
        image_dir=_image_dir(root, ("*_cover", *IMAGE_DIR_NAMES)),
        counts={"raw_item_rows": n_item_rows, "raw_interaction_rows": len(seq)},
    )


def _csv_file(root: Path, stem: str) -> Path | None:
    wanted = {f"{stem}.csv", f"{stem}.tsv"}
    return next((p for p in sorted(root.iterdir()) if p.name.lower() in wanted and p.is_file()), None)


def _is_csv(root: Path) -> bool:
    return _csv_file(root, "items") is not None and _csv_file(root, "interactions") is not None


def _read_csv(root: Path, focus: Path | None, report: ValidationReport) -> RawData:
    """items.csv + interactions.csv with the usual column names, any of , tab ; | as delimiter."""
    item_path, inter_path = _csv_file(root, "items"), _csv_file(root, "interactions")
    assert item_path is not None and inter_path is not None  # detect() guarantees them
    table = _read_table(item_path, root, report, sep=None)
    cols = list(table.columns)
    id_col = _require_column(table, ITEM_ID_NAMES, item_path, "item id")
    title_col = _find_column(cols, TITLE_NAMES)
    genre_col = _find_column(cols, GENRE_NAMES)
    desc_col = _find_column(cols, DESCRIPTION_NAMES)
    image_col = _find_column(cols, IMAGE_NAMES)
    extra, category = (
        _split_genres(table[genre_col], r"[|,]") if genre_col else (_blank(table.index), _blank(table.index))
    )
    if desc_col:
        desc = table[desc_col].str.strip()
        extra = (extra + ". " + desc).where(extra.ne(""), desc).where(desc.ne(""), extra)
    items = _items_frame(
        table,
        report,
        id_col=id_col,
        title=table[title_col] if title_col else table[id_col],
        extra=extra,
        category=category,
        image=table[image_col] if image_col else None,
        integer_ids=False,
    )
    if title_col is None:
        report.add("missing title", Problem(_display(item_path, root), "no title column; titles are the item ids"))

    inter_table = _read_table(inter_path, root, report, sep=None)
    user_col = _require_column(inter_table, USER_ID_NAMES, inter_path, "user id")
    item_col = _require_column(inter_table, (id_col, *ITEM_ID_NAMES), inter_path, "item id")
    order_col = _find_column(list(inter_table.columns), ORDER_NAMES)
    inter = _interactions_frame(
        inter_table,
        report,
        user=inter_table[user_col],
        item=inter_table[item_col],
        order=inter_table[order_col] if order_col else None,
        user_col=user_col,
        item_col=item_col,
        order_col=order_col,
        integer_ids=False,
    )
    return RawData(
        items,
        inter,
        _display(item_path, root),
        id_col,
        title_col,
        item_col,
        name=root.name,
        image_column=image_col,
        image_dir=None if image_col else _image_dir(root),
        counts={"raw_item_rows": len(table), "raw_interaction_rows": len(inter_table)},
    )


def _is_recbole(root: Path) -> bool:
    return any(p.is_file() for p in root.glob("*.inter"))


def _recbole_inter_files(root: Path, focus: Path | None) -> tuple[str, list[Path]]:
    """The dataset name and its .inter file(s): one atomic file or the train/valid/test split."""
    groups: dict[str, list[Path]] = {}
    for p in sorted(root.glob("*.inter")):
        stem = p.name[: -len(".inter")]
        base, _, split = stem.rpartition(".")
        key = base if split in RECBOLE_SPLITS and base else stem
        groups.setdefault(key, []).append(p)
    if focus is not None and focus.suffix == ".inter":
        chosen = next(k for k, files in groups.items() if focus.name in {p.name for p in files})
    elif len(groups) == 1:
        chosen = next(iter(groups))
    elif root.name in groups:
        chosen = root.name
    else:
        raise DataError(f"{root}: several RecBole datasets ({', '.join(groups)}); pass the .inter file to load")
    order = {s: i for i, s in enumerate(RECBOLE_SPLITS)}
    files = sorted(groups[chosen], key=lambda p: order.get(p.name.split(".")[-2], -1))
    return chosen, files


def _read_recbole(root: Path, focus: Path | None, report: ValidationReport) -> RawData:
    """<name>.inter (+ <name>.item), or <name>.{train,valid,test}.inter; tab-separated field:type."""
    name, files = _recbole_inter_files(root, focus)
    tables = [_read_table(p, root, report, sep="\t", quoting=csv.QUOTE_NONE) for p in files]
    first = tables[0]
    user_col = _require_column(first, USER_ID_NAMES, files[0], "user id")
    item_col = _require_column(first, ITEM_ID_NAMES, files[0], "item id")
    list_col = _find_column(list(first.columns), ("item_id_list",))
    order_col = _find_column(list(first.columns), ORDER_NAMES)
    for t, p in zip(tables[1:], files[1:]):
        missing = [c for c in (user_col, item_col, list_col) if c and c not in t.columns]
        if missing:
            raise DataError(f"{p}: header lacks {missing}, unlike {files[0].name}")
    raw_rows = sum(len(t) for t in tables)
    table = pd.concat([t.assign(_split=i) for i, t in enumerate(tables)], ignore_index=True)
    if list_col:  # sequential split: each user's longest row holds the whole sequence
        seq = (table[list_col].str.strip() + " " + table[item_col].str.strip()).str.split()
        table = table.assign(_len=seq.str.len(), _listlen=seq.str.len() - 1, _seq=seq)
        table = table.sort_values(["_len", "_split"], kind="stable").drop_duplicates(user_col, keep="last")
        table = table.sort_index()
        _flag(
            report,
            "truncated sequence",
            table,
            table["_listlen"] >= RECBOLE_MAX_LIST,
            list_col,
            "item_id_list has {_listlen} items, RecBole's default cap: earlier history may be missing",
        )
        seq = table["_seq"].explode().fillna("")  # an empty list and item: "" is reported, NaN would be "nan"
        table = table.loc[seq.index].assign(_item=seq.to_numpy()).reset_index(drop=True)
        item_col_used, order = "_item", None
    else:
        item_col_used, order = item_col, table[order_col] if order_col else None
    inter = _interactions_frame(
        table,
        report,
        user=table[user_col],
        item=table[item_col_used],
        order=order,
        user_col=user_col,
        item_col=list_col or item_col,
        order_col=order_col if not list_col else None,
        integer_ids=False,
    )

    item_path = root / f"{name}.item"
    found = item_path.is_file()  # without one, titles are the ids and the RawData names no item columns
    if found:
        t = _read_table(item_path, root, report, sep="\t", quoting=csv.QUOTE_NONE)
        cols = list(t.columns)
        id_col = _require_column(t, ITEM_ID_NAMES, item_path, "item id")
        title_col = _find_column(cols, TITLE_NAMES)
        genre_col = _find_column(cols, GENRE_NAMES)
        extra, category = _split_genres(t[genre_col], r"[\s|,]+") if genre_col else (_blank(t.index), _blank(t.index))
        items = _items_frame(
            t,
            report,
            id_col=id_col,
            title=t[title_col] if title_col else t[id_col],
            extra=extra,
            category=category,
            integer_ids=False,
        )
        if title_col is None:
            report.add("missing title", Problem(_display(item_path, root), "no title column; titles are the item ids"))
        raw_items = len(t)
    else:
        ids = pd.Series(inter["item_id"].unique(), dtype=object)
        blank = _blank(ids.index)
        items = pd.DataFrame(
            {
                "item_id": ids,
                "title": ids,
                "extra": blank,
                "category": blank,
                "image": blank,
                "_file": _display(item_path, root),
                "_line": pd.NA,
            }
        )
        report.add(
            "missing title",
            Problem(_display(item_path, root), "no .item file: titles are the item ids, so text carries no content"),
        )
        raw_items = 0
    return RawData(
        items,
        inter,
        _display(item_path, root),
        id_col if found else None,
        title_col if found else None,
        list_col or item_col,
        name=name,
        image_dir=_image_dir(root),
        counts={"raw_item_rows": raw_items, "raw_interaction_rows": raw_rows},
    )


FORMATS: dict[str, Format] = {  # detection order for format="auto"
    "movielens": Format(_is_movielens, _read_movielens, "movies.csv + ratings.csv"),
    "ninerec": Format(_is_ninerec, _read_ninerec, "sequential_data.txt + *_item_sort.csv (or *_item.csv)"),
    "csv": Format(_is_csv, _read_csv, "items.csv + interactions.csv"),
    "recbole": Format(_is_recbole, _read_recbole, "<name>.inter (+ <name>.item) or <name>.{train,valid,test}.inter"),
}


# ---------------------------------------------------------------------------------------------
# shared validation


def image_listing(folder: Path) -> dict[str, str]:
    """Item id (file stem) -> absolute image path for the image files directly in `folder` (the one rule for
    `<item_id>.jpg|.jpeg|.png` folders: the loaders' --images and the app's display covers)."""
    folder = folder.resolve()
    rank = {ext: i for i, ext in enumerate(IMAGE_EXTENSIONS)}
    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in rank and p.is_file()),
        key=lambda p: -rank[p.suffix.lower()],
    )
    return {p.stem: str(p) for p in files}  # later (= preferred) extensions overwrite


def _resolve_images(
    items: pd.DataFrame,
    raw: RawData,
    root: Path,
    images: Path | None,
    report: ValidationReport,
    confine_images: bool = False,
) -> pd.Series:
    """Absolute paths of existing images; "" (and a "missing image" problem) where one was expected.

    Priority: the `images` folder, then the file's image column; the format's own image folder
    (images/, posters/, covers/, NineRec's *_cover/) is used when neither is given. With
    `confine_images` (untrusted uploads) an image column path that resolves outside `root` is refused.
    """
    written = items["image"]
    from_column = pd.Series(
        [os.path.abspath(os.path.join(root, p)) if p else "" for p in written], index=items.index, dtype=object
    )
    if confine_images:
        inside = str(root.resolve()) + os.sep
        outside = pd.Series(
            [bool(p) and not os.path.realpath(p).startswith(inside) for p in from_column], index=items.index, dtype=bool
        )
        _flag(
            report,
            "image outside the dataset",
            items.assign(_path=written),
            outside,
            raw.image_column,
            "image {_path!r} is outside the dataset folder; ignored",
        )
        from_column = from_column.where(~outside, "")
        written = written.where(~outside, "")
    exists = pd.Series([bool(p) and os.path.isfile(p) for p in from_column], index=items.index, dtype=bool)
    from_column = from_column.where(exists, "")
    folder = images if images is not None else raw.image_dir
    if folder is not None:
        listing = image_listing(folder)
        from_folder = items["item_id"].map(listing).fillna("")
        paths = from_folder.where(from_folder.ne(""), from_column)
    else:
        paths = from_column
    broken = written.ne("") & ~exists & paths.eq("")
    with_path = items.assign(_path=written)
    _flag(report, "missing image", with_path, broken, raw.image_column, "image {_path!r} does not exist")
    if folder is not None:
        absent = written.eq("") & paths.eq("")
        where = items.assign(_file=str(folder), _line=pd.NA)
        _flag(report, "missing image", where, absent, None, "no image for item {item_id!r} (<id>.jpg/.jpeg/.png)")
    return paths


def _validate(
    raw: RawData,
    root: Path,
    report: ValidationReport,
    images: Path | None,
    min_user_interactions: int,
    min_item_interactions: int,
    name: str,
    confine_images: bool = False,
) -> Dataset:
    """Shared cleaning of raw tables into a Dataset (see the module docstring for the rules)."""
    items = raw.items
    dup = items["item_id"].duplicated()
    first_line = items.loc[~dup].set_index("item_id")["_line"]
    items = items.assign(_first=items["item_id"].map(first_line))
    template = "duplicate item id {item_id!r} (first at line {_first}); row skipped"
    _flag(report, "duplicate item id", items, dup, raw.id_column, template)
    items = items.loc[~dup]

    title = items["title"].fillna("").str.replace(r"\s+", " ", regex=True).str.strip()
    empty = title.eq("")
    template = "empty title for item {item_id!r}; the item id is used"
    _flag(report, "missing title", items, empty, raw.title_column, template)
    title = title.mask(empty, items["item_id"])
    sep = np.where(title.str[-1].isin(list(".!?…")), " ", raw.text_sep)
    text = (title + sep + items["extra"]).where(items["extra"].ne(""), title)
    items = items.assign(title=title, text=text)

    inter = raw.interactions
    raw_counts = {**raw.counts, "raw_items": len(items)}
    unknown = ~inter["item_id"].isin(items["item_id"])
    template = "item {item_id!r} is not in {_item_file}; row skipped"  # a file name may hold braces
    _flag(report, "unknown item", inter, unknown, raw.item_column, template, _item_file=raw.item_file)
    inter = inter.loc[~unknown]
    raw_counts.update(raw_users=inter["user_id"].nunique(), raw_interactions=len(inter))

    rare = pd.Series(False, index=items.index)
    if min_item_interactions > 0:
        n = inter["item_id"].value_counts()
        items = items.assign(_n=items["item_id"].map(n).fillna(0).astype(int))
        rare = items["_n"].between(1, min_item_interactions - 1)
        template = "item {item_id!r} has too few interactions ({_n} < {k}); dropped"
        _flag(report, "rare item", items, rare, raw.id_column, template, k=min_item_interactions)
        inter = inter.loc[inter["item_id"].map(n) >= min_item_interactions]
    if min_user_interactions > 0:
        users = inter.groupby("user_id", sort=False).agg(
            _n=("item_id", "size"), _file=("_file", "first"), _line=("_line", "first")
        )
        short = users["_n"] < min_user_interactions
        _flag(
            report,
            "short user",
            users.reset_index(),
            short.to_numpy(),
            None,
            "user {user_id!r} has too few interactions ({_n} < {k}); dropped",
            k=min_user_interactions,
        )
        inter = inter.loc[~inter["user_id"].isin(users.index[short])]
    unused = ~items["item_id"].isin(inter["item_id"])
    template = "item {item_id!r} has no interactions left; dropped"
    _flag(report, "item without interactions", items, unused & ~rare, raw.id_column, template)
    items = items.loc[~unused]
    if inter.empty:
        counts = report.kind_counts
        found = "; ".join(f"{kind} {n:,}" for kind, n in counts.items()) or "none"
        top = max(counts, key=counts.__getitem__, default=None)  # the likeliest cause: its first row is shown
        first = next((f" (first {top}: {p})" for p in report.problems if p.kind == top), "")
        raise DataError(
            f"{root}: no interactions left after cleaning ({raw_counts['raw_interaction_rows']:,} rows read, "
            f"{raw_counts['raw_interactions']:,} valid before the min_item_interactions={min_item_interactions} / "
            f"min_user_interactions={min_user_interactions} filters); problems: {found}{first}"
        )

    items = items.assign(image_path=_resolve_images(items, raw, root, images, report, confine_images))
    inter = inter.sort_values(["user_id", "order"], kind="stable").astype({"order": "int64"})
    fields = [c for c in items.columns if c.startswith(TEXT_FIELD_PREFIX)]  # optional text fields (NineRec)
    for c in fields:
        items[c] = items[c].fillna("").astype(str).str.replace(r"\s+", " ", regex=True).str.strip()
        items[c] = items[c].mask(items[c].eq(""), items["text"])
    items = items[ITEM_COLUMNS + fields].astype(str).reset_index(drop=True)
    inter = inter[INTERACTION_COLUMNS].astype({"user_id": str, "item_id": str}).reset_index(drop=True)
    n_images = int(items["image_path"].ne("").sum())
    report.counts = {
        "items": len(items),
        "users": inter["user_id"].nunique(),
        "interactions": len(inter),
        "images": n_images,
        **raw_counts,
    }
    return Dataset(name=name, items=items, interactions=inter, report=report, has_images=n_images > 0)


def detect_format(root: Path) -> str:
    """The first registered format whose files are in `root`; DataError naming what was expected."""
    for fmt, spec in FORMATS.items():
        if spec.detect(root):
            return fmt
    wanted = "; ".join(f"{k}: {v.expects}" for k, v in FORMATS.items())
    present = sorted(p.name for p in root.iterdir())[:20]
    raise DataError(f"{root}: matches no dataset format (expected {wanted}; found {present})")


def load_dataset(
    path: str | Path,
    format: str = "auto",
    images: str | Path | None = None,
    min_user_interactions: int = 5,
    min_item_interactions: int = 0,
    name: str | None = None,
    confine_images: bool = False,
) -> Dataset:
    """Load and validate a dataset folder (or a file in it) of any registered format.

    `images` is an optional folder of <item_id>.jpg/.jpeg/.png that sets or overrides image paths;
    `confine_images` ignores image column paths outside the folder (set it for untrusted uploads).
    Problems go to `dataset.report`; anything that prevents loading raises `DataError`.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    root, focus = (path.parent, path) if path.is_file() else (path, None)
    if format == "auto":
        format = detect_format(root)
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; use auto or one of {', '.join(FORMATS)}")
    if images is not None:
        images = Path(images).expanduser()
        if not images.is_dir():
            raise DataError(f"{images}: image folder does not exist")
    report = ValidationReport()
    raw = FORMATS[format].read(root, focus, report)
    return _validate(
        raw, root, report, images, min_user_interactions, min_item_interactions, name or raw.name, confine_images
    )
