"""The response object of `recommend --json` and the API, and the k rule: odd inputs are answered and said."""

from __future__ import annotations

import json

import pytest

from sicsrec.serve import MAX_K, Recommender, resolve_k, response


@pytest.mark.parametrize(
    "value, k, note",
    [
        (None, 10, ""),
        ("", 10, ""),
        (7, 7, ""),
        ("7", 7, ""),
        (3.0, 3, ""),
        (0, 1, "k=0 is outside 1-100: clamped to 1."),
        (-5, 1, "k=-5 is outside 1-100: clamped to 1."),
        (2.7, 3, "k=2.7 is not a whole number: rounded to 3."),
        (2.5, 3, "k=2.5 is not a whole number: rounded to 3."),
        (10000, MAX_K, "k=10000 is outside 1-100: clamped to 100."),
        (float("inf"), MAX_K, "k=inf is outside 1-100: clamped to 100."),
    ],
)
def test_k_is_a_whole_number_in_range_and_the_note_says_what_was_done(value, k, note) -> None:
    assert resolve_k(value) == (k, note)


@pytest.mark.parametrize("value", ["abc", float("nan"), True, [3]])
def test_k_that_is_no_number_is_refused(value) -> None:
    with pytest.raises(ValueError, match="k must be a whole number from 1 to 100"):
        resolve_k(value)


@pytest.mark.parametrize(
    "history, source, used, unknown, warning",
    [
        ("3,4", "model", ["3", "4"], [], None),
        ("", "popular", [], [], "Empty history"),
        ("abc", "cold_start", [], ["abc"], "1 unknown item id(s): abc"),
        ("999999999", "cold_start", [], ["999999999"], "1 unknown item id(s): 999999999"),
        ("3;4;5", "cold_start", [], ["3;4;5"], "separated by commas only (write 3,4,5)"),
        ("3 4", "cold_start", [], ["3 4"], "separated by commas only (write 3,4)"),
        ("3,3,3", "model", ["3"], [], "2 repeated click(s) counted once"),
        ("nope,3", "model", ["3"], ["nope"], "1 unknown item id(s): nope"),
    ],
)
@pytest.mark.slow
def test_the_response_says_what_was_done_with_the_history(saved, history, source, used, unknown, warning) -> None:
    _, path = saved
    out = response(Recommender.load(path).recommend(history, 5))
    assert out["source"] == source and all(it["source"] == source for it in out["items"]) and len(out["items"]) == 5
    assert out["used_ids"] == used and out["unknown_ids"] == unknown and out["k"] == 5
    if source == "cold_start":
        assert out["warnings"][0].startswith("Cold start: no item of the history is in the catalogue")
    if warning is None:
        assert out["warnings"] == []
    else:
        assert any(warning in w for w in out["warnings"]), out["warnings"]
    json.dumps(out)


@pytest.mark.parametrize(
    "k, n, warning",
    [(0, 1, "clamped to 1"), (-5, 1, "clamped to 1"), (2.7, 3, "rounded to 3"), (10000, 60 - 2, "clamped to 100")],
)
@pytest.mark.slow
def test_the_response_says_what_was_done_with_k(saved, k, n, warning) -> None:
    _, path = saved
    out = response(Recommender.load(path).recommend("3,4", k))
    assert len(out["items"]) == n and out["k"] == min(max(1, round(k)), MAX_K)
    assert any(f"k={k} is" in w and warning in w for w in out["warnings"]), out["warnings"]
    if k == 10000:  # 60 items, 2 watched
        assert "Only 58 item(s) left to recommend." in out["warnings"]
