"""Property-based tests of every loader: generated malformed datasets either load with the right rows kept
and every problem counted at its file and line, or fail with a DataError naming the file; never anything else.

Per run: 4 formats x 70 datasets with known faults (`test_faults_are_counted_and_the_rest_is_exact`) and
4 x 55 byte-level mutations of clean ones (`test_mutated_files_load_or_explain`): 500 datasets, plus 60
generated timestamp columns; the plain tests at the end are the failures fuzzing found.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sicsrec.data import DataError, Dataset, load_dataset
from sicsrec.data.loaders import LINE_BREAK, _parse_order
from tests.data.test_loaders import check_schema

FUZZ = dict(
    deadline=None,
    database=None,  # no .hypothesis folder in the tree: a failure prints its example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
FORMAT_NAMES = ["movielens", "csv", "recbole", "ninerec"]
INTEGER_IDS = {"movielens", "ninerec"}
ID_KIND = {
    "movielens": "non-integer id",
    "ninerec": "non-integer id",
    "csv": "missing value",
    "recbole": "missing value",
}

ITEM_FAULTS = (None, None, None, "duplicate id", "empty title", "wrong field count")
ROW_FAULTS = (
    None,
    None,
    None,
    None,
    "extra field",
    "missing field",
    "bad user",
    "bad timestamp",
    "unknown item",
    "blank line",
)
BAD_TIMESTAMPS = ("NaN", "inf", "-inf", "soon", "")
# Titles: any printable text (quotes, delimiters, other scripts, long runs) but no control characters, so a
# title stays on its line; tabs are excluded where RecBole's unquoted tab-separated files would split them.
TITLE = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\u2028\u2029"), max_size=40
) | st.sampled_from(['say "hi", then; go|', "x" * 5000, "  ", "猫の動画", "NaN", "None"])
TOKEN = st.text("abcXYZ019_-.:/é猫", min_size=1, max_size=8) | st.sampled_from(["nan", "None", "NULL", "007", "-1"])


@dataclass
class Case:
    """A generated dataset: item rows and interaction rows, each with an optional fault."""

    fmt: str
    items: list[tuple[object, str, str | None]]  # (id, title, fault)
    rows: list[tuple[object, int, float, str | None]]  # (user, item index or -1 = unknown, timestamp, fault)
    crlf: bool = False
    bom: bool = False
    sep: str = ","  # the csv format's delimiter


@st.composite
def cases(draw: st.DrawFn, fmt: str, faults: bool = True) -> Case:
    """A dataset of `fmt`, with faults of every kind at random rows (or none)."""
    n_items = draw(st.integers(1, 6))
    if fmt in INTEGER_IDS:
        ids: list[object] = draw(st.lists(st.integers(0, 10**6), min_size=n_items, max_size=n_items, unique=True))
        users: list[object] = draw(st.lists(st.integers(0, 50), min_size=1, max_size=4, unique=True))
    else:
        ids = draw(st.lists(TOKEN, min_size=n_items, max_size=n_items, unique=True))
        users = draw(st.lists(TOKEN, min_size=1, max_size=4, unique=True))
    title = TITLE.map(lambda t: t.replace("\t", " ")) if fmt == "recbole" else TITLE
    item_fault, row_fault = (st.sampled_from(ITEM_FAULTS), st.sampled_from(ROW_FAULTS)) if faults else (st.none(),) * 2
    items = [(i, draw(title), draw(item_fault)) for i in ids]
    fractional = draw(st.booleans())
    ts = st.integers(-(10**12), 10**12).map(float) | (
        st.integers(-(10**12), 10**12).map(lambda k: k + 0.5) if fractional else st.nothing()
    )
    rows = draw(
        st.lists(
            st.tuples(st.sampled_from(users), st.integers(-1 if faults else 0, n_items - 1), ts, row_fault),
            min_size=1,
            max_size=25,
        )
    )
    return Case(
        fmt,
        items,
        rows,
        crlf=draw(st.booleans()),
        bom=draw(st.booleans()),
        sep=draw(st.sampled_from([",", ";", "|", "\t"])),
    )


@dataclass
class Expected:
    """What loading a Case must give: kept rows per user, problem counts, and where each problem may be listed."""

    sequences: dict[str, list[tuple[str, int | None]]] = field(default_factory=dict)  # user -> (item, order)
    titles: dict[str, str] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    where: dict[str, set[tuple[str, int]]] = field(default_factory=dict)  # kind -> {(file, line)}

    def problem(self, kind: str, file: str, line: int, n: int = 1) -> None:
        self.counts[kind] += n
        self.where.setdefault(kind, set()).add((file, line))


def _lines(rows: list[list[str]], sep: str, quote: bool) -> list[str]:
    """Rows as delimited lines, quoted where needed when `quote` (RecBole never quotes); [] is a blank line."""
    if not quote:
        return [sep.join(row) for row in rows]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator="\n")
    for row in rows:
        if row:
            writer.writerow(row)
        else:
            out.write("\n")
    return out.getvalue().splitlines()


def render(case: Case) -> tuple[dict[str, str], Expected]:
    """The files of `case` and what loading them must give."""
    fmt, exp = case.fmt, Expected()
    canon = (lambda x: str(int(x))) if fmt in INTEGER_IDS else str
    id_text = (lambda x: f"{x:03d}") if fmt in INTEGER_IDS else str  # "007" is item 7 for integer formats
    item_file = {"movielens": "movies.csv", "csv": "items.csv", "recbole": "d.item", "ninerec": "X_item_sort.csv"}[fmt]
    inter_file = {
        "movielens": "ratings.csv",
        "csv": "interactions.csv",
        "recbole": "d.inter",
        "ninerec": "sequential_data.txt",
    }[fmt]
    header = {
        "movielens": ["movieId", "title", "genres"],
        "csv": ["item_id", "title"],
        "recbole": ["item_id:token", "title:token_seq"],
        "ninerec": None,
    }[fmt]
    item_rows: list[list[str]] = [header] if header else []
    catalogue: set[str] = set()
    lines_of: dict[str, int] = {}
    for iid, title, fault in case.items:
        row = [id_text(iid), "" if fault == "empty title" else title] + (["Drama"] if fmt == "movielens" else [])
        if fmt == "ninerec":
            row = [id_text(iid), title if fault != "empty title" else "", ""]  # Chinese title only
        if fault == "wrong field count":
            row = [*row, "x", "y"]
        item_rows.append(row)
        line = len(item_rows)
        if fault == "wrong field count":
            exp.problem("wrong field count", item_file, line)
            continue
        catalogue.add(canon(iid))
        lines_of[canon(iid)] = line
        clean = " ".join(row[1].split())
        exp.titles[canon(iid)] = clean or canon(iid)
        if not clean:
            exp.problem("missing title", item_file, line)
        if fault == "duplicate id":
            item_rows.append([id_text(iid), "another title", *row[2:]])
            exp.problem("duplicate item id", item_file, len(item_rows))

    sep, quote = (case.sep if fmt == "csv" else "\t" if fmt == "recbole" else ","), fmt != "recbole"
    passed = [(u, i, t, f) for u, i, t, f in case.rows if f not in ("extra field", "missing field", "blank line")]
    scaled = fmt != "ninerec" and any(f != "bad timestamp" and t % 1 for _, _, t, f in passed)
    unknown_id = 10**7 if fmt in INTEGER_IDS else "unknown-id"
    kept: list[tuple[str, str, int, str]] = []  # (user, item, order, file line) in file order
    if fmt == "ninerec":
        inter_text = _ninerec_lines(case, exp, catalogue, kept, canon, inter_file, unknown_id)
    else:
        inter_rows: list[list[str]] = [
            {
                "movielens": ["userId", "movieId", "rating", "timestamp"],
                "csv": ["user_id", "item_id", "timestamp"],
                "recbole": ["user_id:token", "item_id:token", "timestamp:float"],
            }[fmt]
        ]
        for user, index, ts, fault in case.rows:
            item = case.items[index][0] if index >= 0 else unknown_id
            stamp = str(int(ts)) if ts % 1 == 0 else repr(ts)
            row = [str(user), str(item)] + (["4.0"] if fmt == "movielens" else []) + [stamp]
            row = {
                "extra field": [*row, "x"],
                "missing field": row[:-1],
                "blank line": [],
                "bad user": ["", *row[1:]],
                "bad timestamp": [*row[:-1], BAD_TIMESTAMPS[len(inter_rows) % 5]],
            }.get(fault, row)
            inter_rows.append(row)
            line = len(inter_rows)
            if fault in ("extra field", "missing field"):
                exp.problem("wrong field count", inter_file, line)
            elif fault == "bad user":
                exp.problem(ID_KIND[fmt], inter_file, line)
            elif fault == "bad timestamp":
                exp.problem("bad timestamp", inter_file, line)
            elif fault != "blank line":
                if canon(item) not in catalogue:
                    exp.problem("unknown item", inter_file, line)
                else:
                    kept.append((canon(user), canon(item), round(ts * 1_000_000) if scaled else int(ts), line))
        inter_text = "\n".join(_lines(inter_rows, sep, quote)) + "\n"
    used = {item for _, item, _, _ in kept}
    for iid in sorted(catalogue - used):
        exp.problem("item without interactions", item_file, lines_of[iid])
    for user, item, order, _ in sorted(kept, key=lambda r: (r[0], r[2])):  # stable: ties keep file order
        exp.sequences.setdefault(user, []).append((item, None if fmt == "ninerec" else order))
    files = {item_file: "\n".join(_lines(item_rows, sep, quote)) + "\n", inter_file: inter_text}
    if case.crlf:
        files = {k: v.replace("\n", "\r\n") for k, v in files.items()}
    if case.bom:
        files = {k: "\ufeff" + v for k, v in files.items()}
    return files, exp


def _ninerec_lines(
    case: Case, exp: Expected, catalogue: set[str], kept: list, canon, file: str, unknown_id: object
) -> str:
    """sequential_data.txt: consecutive rows of one user share a line (`user item item ...`)."""
    lines: list[tuple[object, list[tuple[str, str | None]]]] = []
    for user, index, _, fault in case.rows:
        if fault == "blank line":
            lines.append(("", []))
            continue
        token = str(case.items[index][0]) if index >= 0 else str(unknown_id)
        if fault in ("extra field", "missing field"):
            token = "x" + token  # NineRec has no fields to miscount: a non-integer item instead
        if lines and lines[-1][0] == user and lines[-1][1]:
            lines[-1][1].append((token, fault))
        else:
            lines.append((user, [(token, fault)]))
    text = []
    for n, (user, tokens) in enumerate(lines, start=1):
        bad_user = any(f == "bad user" for _, f in tokens)
        text.append(" ".join([f"u{user}" if bad_user else str(user)] + [t for t, _ in tokens]) if tokens else "")
        for token, _ in tokens:
            if bad_user or token.startswith("x"):
                exp.problem("non-integer id", file, n)
            elif canon(token) not in catalogue:
                exp.problem("unknown item", file, n)
            else:
                kept.append((canon(user), canon(token), 0, n))
    return "\n".join(text) + "\n"


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, data in files.items():
        (root / name).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))


def line_count(path: Path) -> int:
    return len(LINE_BREAK.split(path.read_text(encoding="utf-8-sig")))


def load_or_explain(root: Path) -> Dataset | None:
    """The loader's contract on any input: a valid Dataset whose report accounts for every dropped row, or a
    DataError naming the dataset's file; any other exception fails the test."""
    try:
        ds = load_dataset(root, min_user_interactions=0)
    except DataError as e:
        assert str(root) in str(e), f"the error does not name the file: {e}"
        return None
    check_schema(ds)
    c, k = ds.report.counts, ds.report.kind_counts
    ids_dropped = k.get("non-integer id", 0) + k.get("missing value", 0)
    item_rows_dropped = c["raw_item_rows"] - c["raw_items"] - k.get("duplicate item id", 0) if c["raw_item_rows"] else 0
    assert c["raw_interaction_rows"] - c["interactions"] == (
        ids_dropped - item_rows_dropped + k.get("bad timestamp", 0) + k.get("unknown item", 0)
    ), ds.report.to_text()
    assert c["items"] == c["raw_items"] - k.get("item without interactions", 0)
    for p in ds.report.problems:
        path = root / p.file
        assert p.message and (path.exists() or Path(p.file).is_absolute() or p.file.endswith(".item")), p
        if p.line is not None:
            assert 1 <= p.line <= line_count(path), p
    return ds


# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@settings(max_examples=70, **FUZZ)
@given(data=st.data())
def test_faults_are_counted_and_the_rest_is_exact(fmt: str, data: st.DataObject) -> None:
    case = data.draw(cases(fmt))
    files, exp = render(case)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write(root, files)
        ds = load_or_explain(root)
        if ds is None:
            assert not exp.sequences, "valid rows were there, yet loading failed"
            return
    got = {u: list(zip(g["item_id"], g["order"])) for u, g in ds.interactions.groupby("user_id", sort=False)}
    if fmt == "ninerec":
        got = {u: [(i, None) for i, _ in seq] for u, seq in got.items()}
    assert got == exp.sequences
    titles = ds.items.set_index("item_id")["title"].to_dict()
    assert titles == {i: t for i, t in exp.titles.items() if i in titles}
    assert dict(ds.report.kind_counts) == dict(exp.counts), ds.report.to_text()
    for p in ds.report.problems:
        assert (p.file, p.line) in exp.where[p.kind], p


MUTATIONS = ("truncate", "insert", "delete", "duplicate line", "swap delimiter", "drop header", "stray quote") * 3 + (
    "latin-1",
    "utf-16",
    "empty",
    "remove file",
    "huge field",
    "binary tail",
)
INSERTS = st.sampled_from(
    [
        ",",
        ";",
        "\t",
        "|",
        '"',
        "\n",
        "\r",
        "\r\n",
        " ",
        "\x00",
        "\ufeff",
        "é",
        "NaN",
        "-1",
        "99999999999999999999",
        "1e308",
        "2020-13-45",
        "3000-01-01",
        "٣",
    ]
)


def mutate(data: st.DataObject, files: dict[str, str]) -> dict[str, str | bytes]:
    """`files` with 1-3 random byte-level mutations."""
    out: dict[str, str | bytes] = dict(files)
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(st.sampled_from(sorted(out)))
        text = out[name] if isinstance(out[name], str) else out[name].decode("utf-8", "replace")
        at = data.draw(st.integers(0, len(text)))
        how = data.draw(st.sampled_from(MUTATIONS))
        lines = text.split("\n")
        if how == "truncate":
            out[name] = text[:at]
        elif how == "insert":
            out[name] = text[:at] + data.draw(INSERTS) + text[at:]
        elif how == "delete":
            out[name] = text[:at] + text[at + data.draw(st.integers(1, 40)) :]
        elif how == "duplicate line":
            k = data.draw(st.integers(0, len(lines) - 1))
            out[name] = "\n".join(lines[: k + 1] + lines[k:])
        elif how == "swap delimiter":
            a, b = data.draw(st.permutations([",", ";", "\t", "|"]))[:2]
            out[name] = text.replace(a, b)
        elif how in ("latin-1", "utf-16"):
            out[name] = text.encode(how, "replace")
        elif how == "empty":
            out[name] = data.draw(st.sampled_from(["", "\n\n", "   "]))
        elif how == "remove file":
            del out[name]
            if not out:
                return out
        elif how == "huge field":
            out[name] = text[:at] + "y" * 140_000 + text[at:]
        elif how == "drop header":
            out[name] = "\n".join(lines[1:])
        elif how == "stray quote":
            out[name] = text[:at] + '"' + text[at:]
        else:
            out[name] = text.encode("utf-8") + bytes(data.draw(st.lists(st.integers(0, 255), min_size=1, max_size=8)))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@settings(max_examples=55, **FUZZ)
@given(data=st.data())
def test_mutated_files_load_or_explain(fmt: str, data: st.DataObject) -> None:
    files, _ = render(data.draw(cases(fmt, faults=False)))
    mutated = mutate(data, files)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write(root, mutated)
        if not mutated:
            with pytest.raises(DataError, match="matches no dataset format"):
                load_dataset(root)
            return
        load_or_explain(root)


@settings(max_examples=60, **FUZZ)
@given(
    st.lists(
        st.one_of(
            st.integers(-(10**19), 10**19).map(str),
            st.floats().map(repr),
            INSERTS,
            st.text(max_size=12),
            st.dates().map(str),
            st.datetimes().map(lambda d: d.isoformat()),
        ),
        min_size=1,
        max_size=30,
    )
)
@pytest.mark.slow
@example(["3000-01-01", "1600-01-01", "x"])  # dates outside pandas' nanosecond range used to raise
@example(["1e5", "0x10", "1_000"])  # one number among garbage: its column is numeric, not dates
@example(["1.5", "100000000000000"])  # microseconds would overflow: rounded instead of dropped
def test_timestamp_columns_parse_or_are_na(values: list[str]) -> None:
    order = _parse_order(pd.Series(values, dtype=object))
    assert str(order.dtype) == "Int64" and len(order) == len(values)
    numbers = pd.to_numeric(pd.Series(values, dtype=object).str.strip(), errors="coerce")
    numbers = numbers.where(numbers.abs() < 9e18)  # NaN, inf and what int64 cannot hold are no timestamps
    numbers = numbers.dropna()
    got = order[numbers.index].astype("float64")
    # a number is kept as itself (or in microseconds), never read as a date
    assert (got.isna() | (got == numbers.round()) | (got == (numbers * 1_000_000).round())).all()
    if len(numbers) * 2 >= len(values):  # at least half numbers: a numeric column, every number kept
        assert got.notna().all()


# ---------------------------------------------------------------------------------------------
# what fuzzing found (each failed before the fix beside it in sicsrec/data/loaders.py)

MOVIES = "movieId,title,genres\n1,A,x\n2,B,y\n"
RATINGS = "userId,movieId,rating,timestamp\n1,1,4,5\n1,2,4,6\n"


@pytest.mark.parametrize(
    "movies,ratings,message",
    [
        # a stray quote swallowed the rest of the file into one title, silently
        (
            'movieId,title,genres\n1,A,"x\n2,B,y\n3,C,z\n',
            RATINGS,
            r"movies\.csv: line 2: a quote is never closed, so lines 2-5",
        ),
        # named no line
        (
            MOVIES + "3," + "x" * 140_000 + ",z\n",
            RATINGS,
            r"movies\.csv: line 4: a field is longer than 131,072 characters",
        ),
        # NUL bytes were looked for in the first 64 KiB only
        (MOVIES + "3," + "x" * 70_000 + "\x00,z\n", RATINGS, r"movies\.csv: binary data.*NUL byte at line 4"),
        (MOVIES.encode("utf-16"), RATINGS, r"movies\.csv: UTF-16 text"),
        # "nothing left" did not say why
        (
            MOVIES,
            "userId,movieId,rating,timestamp\n1,1,4,soon\n1,2,4,never\n",
            r"no interactions left.*problems: bad timestamp 2;.* \(first bad timestamp: .*ratings\.csv:2 \[timestamp\]",
        ),
    ],
)
def test_fatal_inputs_name_the_file_and_line(tmp_path: Path, movies: str | bytes, ratings: str, message: str) -> None:
    write(tmp_path, {"movies.csv": movies, "ratings.csv": ratings})
    with pytest.raises(DataError, match=message):
        load_dataset(tmp_path, min_user_interactions=0)


def test_other_scripts_digits_are_no_integer_ids(tmp_path: Path) -> None:
    # "٣" (Arabic-Indic three) matched \d and silently became item "3"
    write(tmp_path, {"movies.csv": MOVIES + "\u0663,C,z\n", "ratings.csv": RATINGS + "1,\u0663,4,7\n"})
    ds = load_dataset(tmp_path, min_user_interactions=0)
    assert ds.report.kind_counts["non-integer id"] == 2 and set(ds.items["item_id"]) == {"1", "2"}


def test_an_empty_recbole_sequence_is_no_item_called_nan(tmp_path: Path) -> None:
    write(tmp_path, {"d.inter": "user_id:token\titem_id_list:token_seq\titem_id:token\n1\t\t\n2\t3\t4\n"})
    ds = load_dataset(tmp_path, min_user_interactions=0)
    assert set(ds.items["item_id"]) == {"3", "4"} and ds.report.kind_counts["missing value"] == 1


def test_rows_swallowed_by_an_unbalanced_quote_are_reported(tmp_path: Path) -> None:
    # the quote opened on line 2 closes on line 4: rows 3-4 became part of a title, silently
    write(
        tmp_path,
        {
            "movies.csv": 'movieId,title,genres\n1,"A,x\n2,B,y\n3,"C",z\n4,D,w\n',
            "ratings.csv": RATINGS.replace("1,2,4,6", "1,4,4,6"),
        },
    )
    ds = load_dataset(tmp_path, min_user_interactions=0)
    [problem] = [p for p in ds.report.problems if p.kind == "multi-line field"]
    assert (problem.file, problem.line) == ("movies.csv", 2) and "lines 2-4" in problem.message


def test_a_file_name_with_braces_is_no_format_string(tmp_path: Path) -> None:
    # the unknown-item message was a format string built from the item file's name: KeyError
    write(tmp_path, {"a{b}_item.csv": "0,a,b\n1,c\n", "sequential_data.txt": "1 0 1 5\n"})
    ds = load_dataset(tmp_path, min_user_interactions=0)
    assert "a{b}_item.csv" in next(p.message for p in ds.report.problems if p.kind == "unknown item")
