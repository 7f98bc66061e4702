"""The one history rule: blanks dropped, unknown ids reported, a repeated click counted once at its latest position."""

from __future__ import annotations

import math

import numpy as np

from sicsrec.serve import Recommender
from sicsrec.serve.history import append_click, parse_history, split_ids

CATALOGUE = {"1", "2", "3", "260"}


def test_strings_and_lists_parse_alike() -> None:
    assert split_ids(" 1, 2,,3 ,") == ["1", "2", "3"] == split_ids(["1", " 2", "", 3])
    assert split_ids(None) == [] and split_ids("") == []


def test_unknown_ids_are_reported_once_in_input_order() -> None:
    h = parse_history("abc,1,999999999,abc,260", CATALOGUE)
    assert h.known == ["1", "260"] and h.unknown == ["abc", "999999999"] and h.repeats == 0
    assert "2 unknown item id(s): abc, 999999999" in h.notes()[0]


def test_a_repeated_click_counts_once_at_its_latest_position() -> None:
    h = parse_history("1,2,1,3,1", CATALOGUE)
    assert h.known == ["2", "3", "1"] and h.repeats == 2
    assert parse_history("1,1,1", CATALOGUE).known == ["1"]
    assert append_click(["1", "2", "3"], "1", limit=3) == ["2", "3", "1"]
    assert append_click(["1", "2", "3"], "260", limit=3) == ["2", "3", "260"]


def test_a_history_with_nothing_known_is_empty_not_an_error() -> None:
    h = parse_history("1;260;1196", CATALOGUE)  # not our separator: one unknown id
    assert h.known == [] and h.unknown == ["1;260;1196"]


def test_other_separators_are_refused_with_the_comma_spelling() -> None:
    h = parse_history("1;260;1196, 2 3,abc,2|3", CATALOGUE)
    assert h.known == [] and h.unknown == ["1;260;1196", "2 3", "abc", "2|3"]
    assert h.malformed == ["1;260;1196", "2 3", "2|3"]
    assert h.notes() == [
        "Ignored 1 unknown item id(s): abc",
        "Ignored '1;260;1196': item ids are separated by commas only (write 1,260,1196).",
        "Ignored '2 3': item ids are separated by commas only (write 2,3).",
        "Ignored '2|3': item ids are separated by commas only (write 2,3).",
    ]
    assert parse_history(["a b"], {"a b"}).known == ["a b"]  # an id of the catalogue is taken as it is


def test_the_recommender_applies_the_rule_and_carries_its_forward_pass(saved) -> None:
    _, path = saved
    rec = Recommender.load(path)
    res = rec.recommend("3,4,3,nope", k=5)
    assert res.used_history == ["4", "3"] and res.unknown == ["nope"] and res.repeats == 1
    assert "repeated" in res.message and "nope" in res.message
    long = [str(i) for i in range(1, 41)]  # longer than the model's window of 20: the result keeps every known id
    window = rec.recommend(long, k=3)
    assert window.history == [i for i in long if i in rec.index] and window.used_history == window.history[-20:]
    table = rec.embeddings("id")
    for it in res.items:  # the carried user vector is the one that scored the list
        assert math.isclose(float(np.dot(res.user, table[rec.index[it["item_id"]] - 1])), it["score"], abs_tol=1e-5)
    assert set(res.parts) <= {"behavior", "content", "mixed", "bias"}
    assert rec.recommend("nope", k=3).user is None
