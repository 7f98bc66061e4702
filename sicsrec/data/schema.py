"""The one internal schema every loader produces: an item table, an interaction table, a report.

Item ids and user ids are kept as strings (the dataset's own ids); the split assigns dense
indices 1..N (0 is padding) later, so loaders never renumber anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

ITEM_COLUMNS = ["item_id", "title", "text", "category", "image_path"]
# Optional item columns "text_<field>" hold alternative texts a run may encode instead of "text"
# (NineRec: text_en, text_zh); "both" always names the full "text" column.
TEXT_FIELD_PREFIX = "text_"
TEXT_FIELDS = ("both", "en", "zh")
INTERACTION_COLUMNS = ["user_id", "item_id", "order"]


class DataError(Exception):
    """A dataset problem that stops loading; the message names the file (and line/column)."""


@dataclass
class Problem:
    """One finding of validation, located as precisely as the source allows."""

    file: str
    message: str
    line: int | None = None  # 1-based line in the file, header = line 1
    column: str | None = None
    severity: str = "warning"  # "warning" (row skipped or fixed) | "error" (loading stopped)
    kind: str = ""  # the report's kind for this problem (set by ValidationReport.add / add_many)

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        where += f" [{self.column}]" if self.column else ""
        return f"{self.severity}: {where}: {self.message}"


@dataclass
class ValidationReport:
    """What a loader found: counts before/after cleaning and every problem, capped per kind."""

    counts: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    max_listed_per_kind: int = 20
    _kind_counts: dict[str, int] = field(default_factory=dict, repr=False)

    def add(self, kind: str, problem: Problem) -> None:
        """Record a problem; only the first `max_listed_per_kind` of each kind are listed."""
        self.add_many(kind, [problem], 1)

    def add_many(self, kind: str, problems: list[Problem], total: int) -> None:
        """Record `total` problems of one kind given only the first few (bulk checks build no more)."""
        already = self._kind_counts.get(kind, 0)
        for problem in problems[: max(0, self.max_listed_per_kind - already)]:
            problem.kind = problem.kind or kind
            self.problems.append(problem)
        self._kind_counts[kind] = already + total

    @property
    def kind_counts(self) -> dict[str, int]:
        return dict(self._kind_counts)

    def to_text(self) -> str:
        """Human-readable report: counts, then problems with file:line [column]."""
        lines = ["counts: " + ", ".join(f"{k}={v:,}" for k, v in self.counts.items())]
        for kind, n in self._kind_counts.items():
            lines.append(f"{kind}: {n:,}" + (" (first listed)" if n > self.max_listed_per_kind else ""))
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "counts": dict(self.counts),
            "problem_counts": self.kind_counts,
            "problems": [p.__dict__ for p in self.problems],
        }


@dataclass
class Dataset:
    """A loaded, validated dataset in the internal schema.

    items: item_id (str, unique), title (str, non-empty), text (str: title plus extra text such as
        genres, what the text encoder reads), category (str, "" when unknown; the first genre or
        category, used for colouring and filtering), image_path (str absolute path, "" when none).
    interactions: user_id (str), item_id (str, always in items), order (int64: timestamp or
        position; ties keep file order). Sorted by (user_id, order) stably.
    """

    name: str
    items: pd.DataFrame
    interactions: pd.DataFrame
    report: ValidationReport
    has_images: bool = False

    def __post_init__(self) -> None:
        missing = [c for c in ITEM_COLUMNS if c not in self.items.columns]
        missing += [c for c in INTERACTION_COLUMNS if c not in self.interactions.columns]
        if missing:
            raise DataError(f"{self.name}: internal schema is missing columns {missing}")

    def text_fields(self) -> list[str]:
        """The text fields this dataset offers: "both" (the full text) and any "text_<field>" column."""
        return ["both"] + [c[len(TEXT_FIELD_PREFIX) :] for c in self.items.columns if c.startswith(TEXT_FIELD_PREFIX)]

    def feature_items(self, text_field: str = "both") -> pd.DataFrame:
        """The item rows that get content features (those that occur in interactions, in table order),
        their "text" taken from `text_field`.

        The one rule shared by feature extraction and stage A, so both hash the same content."""
        items = self.items[self.items["item_id"].isin(set(self.interactions["item_id"]))]
        if text_field == "both":
            return items
        if text_field not in self.text_fields():
            raise DataError(
                f"{self.name}: no {text_field!r} text field (this dataset offers "
                f"{', '.join(self.text_fields())}; 'en'/'zh' exist for NineRec's bilingual titles)"
            )
        return items.assign(text=items[TEXT_FIELD_PREFIX + text_field])
