"""Property-based tests of the history parser: any input (strings, lists of anything, huge, odd separators)
gives known ids each once at their latest click, every other entry reported, and never an exception."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sicsrec.serve.history import SEPARATOR, parse_history, split_ids

CATALOGUE = st.sets(
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=6)
    .map(str.strip)
    .filter(lambda s: s and SEPARATOR not in s),
    max_size=12,
)
ENTRY = st.one_of(st.text(max_size=10), st.integers(-(10**20), 10**20), st.floats(), st.none(), st.booleans())


@st.composite
def histories(draw: st.DrawFn) -> tuple[object, set[str]]:
    """(a history value, the catalogue): a comma-separated string or a list, mixing known ids and junk."""
    catalogue = draw(CATALOGUE)
    known = st.sampled_from(sorted(catalogue)) if catalogue else st.nothing()
    entries = draw(st.lists(known | ENTRY, max_size=40))
    if draw(st.booleans()):
        return entries, catalogue
    junk = st.sampled_from([" ", ",,", ";", "|", "\t", "\n", "\x00", "1;2", " , ", "\ufeff", "x" * 10_000])
    parts = [str(e) if e is not None else "" for e in entries] + draw(st.lists(junk, max_size=4))
    return SEPARATOR.join(draw(st.permutations(parts))), catalogue


@settings(database=None, max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
@example((None, {"1"}))
@example(("1;260;1196", {"1", "260", "1196"}))
@example(([" 1 ", 1, 1.0, "1"], {"1", "1.0"}))
def test_any_history_parses_and_accounts_for_every_entry(case: tuple[object, set[str]]) -> None:
    value, catalogue = case
    history = parse_history(value, catalogue)
    ids = split_ids(value)
    clicks = [i for i in ids if i in catalogue]
    assert history.known == sorted(set(clicks), key=lambda i: max(n for n, c in enumerate(clicks) if c == i))
    assert len(history.known) + history.repeats == len(clicks)
    assert history.unknown == list(dict.fromkeys(i for i in ids if i not in catalogue))
    assert all(isinstance(note, str) and note for note in history.notes())
    if history.unknown or history.repeats:
        assert history.notes()  # anything set aside is said
