"""Pair-mining queries and prompts: training part only, each candidate id with its own title; the
reference code's behaviour for decisions 1 and 2 on request."""

from __future__ import annotations

import re

import pandas as pd

from sicsrec.data.schema import Dataset, ValidationReport
from sicsrec.stage_a.pairs import MiningSettings, build_queries
from sicsrec.stage_a.prompt import PairQuery


def _dataset() -> Dataset:
    """u1 repeats an item, u2's target also occurs earlier, u3 has no candidates, u4 has a long history.

    Every validation/test item has a title containing HELDOUT, so a leak into a prompt is visible.
    """
    seqs = {
        "u1": ["10", "11", "10", "12", "13", "v1", "t1"],
        "u2": ["20", "21", "20", "v2", "t2"],
        "u3": ["30", "v3", "t3"],
        "u4": [str(100 + i) for i in range(15)] + ["v4", "t4"],
    }
    inter = pd.DataFrame(
        [(u, i, k) for u, seq in seqs.items() for k, i in enumerate(seq)], columns=["user_id", "item_id", "order"]
    )
    ids = sorted(set(inter["item_id"]))
    titles = {i: (f"HELDOUT item {i}" if i[0] in "vt" else f"Title of {i}") for i in ids}
    titles["12"] = "A very long title " + "x" * 300
    items = pd.DataFrame(
        {
            "item_id": ids,
            "title": [titles[i] for i in ids],
            "text": [titles[i] for i in ids],
            "category": "",
            "image_path": "",
        }
    )
    return Dataset("handmade", items, inter, ValidationReport())


def _candidate_lines(q: PairQuery) -> list[tuple[str, str]]:
    """(id, title) pairs parsed back out of the prompt text."""
    text = q.messages()[-1]["content"]
    block = text.split("Candidates (id-title):\n", 1)[1].split("\n\n", 1)[0]
    return [tuple(line.split("-", 1)) for line in block.splitlines()]


def test_targets_and_candidates_come_from_the_training_part_only() -> None:
    queries, stats = build_queries(_dataset(), MiningSettings(max_candidates=10))
    by_user = {q.user_id: q for q in queries}
    assert stats == {"users": 4, "skipped_no_candidates": 1, "eligible": 3, "sampled": 3}
    assert set(by_user) == {"u1", "u2", "u4"}  # u3's training part is one item: no candidate
    assert by_user["u1"].target[0] == "13"
    assert [c[0] for c in by_user["u1"].candidates] == ["11", "10", "12"]  # deduped, by last occurrence
    assert [c[0] for c in by_user["u2"].candidates] == ["21"]  # the target itself is never a candidate
    assert [c[0] for c in by_user["u4"].candidates] == [str(100 + i) for i in range(4, 14)]  # the 10 most recent
    for q in queries:
        text = "\n".join(m["content"] for m in q.messages())
        assert "HELDOUT" not in text
        assert not re.search(r"(?m)^[vt]\d-", text)


def test_prompt_shows_each_id_with_its_own_title_and_the_format() -> None:
    ds = _dataset()
    titles = dict(zip(ds.items["item_id"], ds.items["title"]))
    queries, _ = build_queries(ds, MiningSettings(max_title_chars=40))
    for q in queries:
        lines = _candidate_lines(q)
        assert [i for i, _ in lines] == [c[0] for c in q.candidates]
        for iid, shown in lines:
            assert shown == titles[iid] or (len(shown) == 40 and titles[iid].startswith(shown[:-1]))
        user = q.messages()[-1]["content"]
        assert f"Target item: {titles[q.target[0]][:39]}" in user
        assert "id-title" in user and "-1" in user
        assert q.options() == [f"{i}-{t}" for i, t in q.candidates] + ["-1"]
    long = next(q for q in queries if q.user_id == "u1")
    assert dict(long.candidates)["12"].endswith("…") and len(dict(long.candidates)["12"]) == 40


def test_user_sample_is_seeded_and_capped() -> None:
    ds = _dataset()
    a, stats = build_queries(ds, MiningSettings(max_users=2, seed=7))
    b, _ = build_queries(ds, MiningSettings(max_users=2, seed=7))
    assert [q.user_id for q in a] == [q.user_id for q in b] and len(a) == 2 and stats["sampled"] == 2
    assert a[0].prompt_hash() == b[0].prompt_hash()


def test_reference_decisions_1_and_2_reproduce_the_leak_and_the_misaligned_titles() -> None:
    ds = _dataset()
    leaky = {q.user_id: q for q in build_queries(ds, MiningSettings(training_part_only=False))[0]}
    assert set(leaky) == {"u1", "u2", "u3", "u4"}  # u3 now has candidates: its training item and v3
    assert leaky["u1"].target[0] == "t1" and [c[0] for c in leaky["u1"].candidates] == ["11", "10", "12", "13", "v1"]
    assert leaky["u3"].target == ("t3", "HELDOUT item t3") and [c[0] for c in leaky["u3"].candidates] == ["30", "v3"]

    shuffled = {q.user_id: q for q in build_queries(ds, MiningSettings(candidate_titles_aligned=False))[0]}
    u1 = shuffled["u1"]
    assert u1.target == ("13", "Title of 13")  # the target keeps its own title
    # ids in history order (11, 10, 12) carry the titles of the ids sorted (10, 11, 12)
    assert [i for i, _ in _candidate_lines(u1)] == ["11", "10", "12"]
    assert [t for _, t in u1.candidates][:2] == ["Title of 10", "Title of 11"]
    assert shuffled["u4"].candidates == {q.user_id: q for q in build_queries(ds)[0]}["u4"].candidates  # sorted already
