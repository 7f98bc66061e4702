"""The one rule for click histories, shared by the CLI, the API, the app and the recommender.

A history is item ids, oldest first, given as a list or as one comma-separated string. Blank
entries are dropped; ids the catalogue does not know are set aside and reported (never silently
dropped); a re-watched item counts once, at its latest position (the app's click rule), and the
number of such repeats is reported too.

The comma is the only separator: an unknown entry holding ';', '|' or a space ("1;260;1196") is
reported as malformed, with the comma-separated spelling to use, and not guessed at (an id of the
catalogue is always taken as it is, whatever it contains).
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable
from dataclasses import dataclass, field

SEPARATOR = ","
OTHER_SEPARATORS = re.compile(r"[;|\s]+")  # what an entry joining several ids with the wrong separator holds


@dataclass
class History:
    """A parsed history: the known ids in order (each once), and what was set aside."""

    known: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # in input order, each once
    repeats: int = 0  # known ids given more than once (only the latest click is kept)

    @property
    def malformed(self) -> list[str]:
        """The unknown entries that look like several ids joined by another separator than the comma."""
        return [u for u in self.unknown if OTHER_SEPARATORS.search(u)]

    def notes(self) -> list[str]:
        """What was done with the input, one sentence each (empty when it was used as given)."""
        out = []
        malformed = self.malformed
        unknown = [u for u in self.unknown if u not in malformed]
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            out.append(f"Ignored {len(unknown)} unknown item id(s): {shown}")
        for entry in malformed[:5]:
            fixed = SEPARATOR.join(p for p in OTHER_SEPARATORS.split(entry) if p)
            hint = f" (write {fixed})" if fixed else ""
            out.append(f"Ignored '{entry}': item ids are separated by commas only{hint}.")
        if self.repeats:
            out.append(f"{self.repeats} repeated click(s) counted once, at the latest position.")
        return out


def split_ids(value: str | Iterable[object] | None) -> list[str]:
    """The non-blank ids of a comma-separated string or a list, stripped, order kept."""
    if value is None:
        return []
    parts = value.split(SEPARATOR) if isinstance(value, str) else (str(v) for v in value)
    return [p.strip() for p in parts if p.strip()]


def parse_history(value: str | Iterable[object] | None, catalogue: Container[str]) -> History:
    """Split `value` into known ids (each once, at its latest position) and unknown ids."""
    ids = split_ids(value)
    unknown = list(dict.fromkeys(i for i in ids if i not in catalogue))
    known_clicks = [i for i in ids if i in catalogue]
    latest = {iid: n for n, iid in enumerate(known_clicks)}  # the last position of each id
    known = [iid for n, iid in enumerate(known_clicks) if latest[iid] == n]
    return History(known, unknown, len(known_clicks) - len(known))


def append_click(history: list[str], item_id: str, limit: int) -> list[str]:
    """`history` with `item_id` watched last (a re-watched item moves to the end), the newest `limit` kept."""
    return ([h for h in history if h != item_id] + [item_id])[-limit:]


__all__ = ["OTHER_SEPARATORS", "SEPARATOR", "History", "append_click", "parse_history", "split_ids"]
