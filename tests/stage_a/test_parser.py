"""The strict reply parser on real, malformed and generated replies; a run on garbage replies goes on."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sicsrec.stage_a.llm import BackendOptions, PairBackend
from sicsrec.stage_a.pairs import MAX_REPLY_CHARS, STATUSES, mine_pairs, parse_reply
from sicsrec.stage_a.prompt import PairQuery
from tests.helpers import synthetic_dataset

CANDIDATES = ["12", "1", "305", "tt-7"]
TARGET = "99"
KNOWN = {"12", "1", "305", "tt-7", "99", "500", "abc"}

TABLE = [
    # real SmolLM2 / chat-model style answers
    ("305-The high-end way of eating a piece of paper", "accepted", "305"),
    ("305 - The high-end way of eating", "accepted", "305"),
    ("305", "accepted", "305"),
    ("305.", "accepted", "305"),
    ("  `12-Spicy noodles`  ", "accepted", "12"),
    ('"12-Spicy noodles"', "accepted", "12"),
    ("**12-Spicy noodles**", "accepted", "12"),
    ("1-Pizza", "accepted", "1"),  # "1" is not confused with "12"
    ("12-Pizza", "accepted", "12"),
    ("tt-7-A title", "accepted", "tt-7"),  # an id containing a dash
    ("12: Spicy noodles", "accepted", "12"),
    ("-1", "none", None),
    ("-1.", "none", None),
    ("-1 (no candidate is similar)", "none", None),
    ("`-1`", "none", None),
    # off-list, self-pair
    ("500-Some other video", "off_list", None),
    ("7-Unknown", "off_list", None),
    ("abc-Known item that is no candidate", "off_list", None),
    ("99-The target itself", "self_pair", None),
    ("99", "self_pair", None),
    # unparseable
    ("", "unparseable", None),
    ("   \n  ", "unparseable", None),
    ("The answer is 12-Spicy noodles", "unparseable", None),
    ("Spicy noodles", "unparseable", None),
    ("12-Spicy noodles\n305-Paper", "unparseable", None),  # several answers
    ("12-Spicy noodles, 305-Paper", "unparseable", None),
    ("12Spicy", "unparseable", None),
    ("-12", "unparseable", None),
    ("None of them", "unparseable", None),
]


@pytest.mark.parametrize("reply,status,item", TABLE)
def test_parse_reply(reply: str, status: str, item: str | None) -> None:
    parsed = parse_reply(reply, CANDIDATES, TARGET, KNOWN)
    assert (parsed.status, parsed.item_id) == (status, item)


def test_unknown_non_numeric_token_is_unparseable_without_a_catalogue() -> None:
    assert parse_reply("abc-Title", CANDIDATES, TARGET).status == "unparseable"
    assert parse_reply("500-Title", CANDIDATES, TARGET).status == "off_list"


# --- generated replies --------------------------------------------------------------------------

IDS = st.lists(st.from_regex(r"[a-z0-9][a-z0-9_]{0,5}", fullmatch=True), min_size=2, max_size=10, unique=True)
# one line of text: no control characters or line/paragraph separators (splitlines would split there)
LINE = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=200)
GARBAGE = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["", "\n\n", "-1\n-1", "`", "**", "-", ":", "1-" * 3000, "\x00", "None", "null"]),
)


@settings(database=None, max_examples=120, deadline=None)
@given(GARBAGE, IDS)
def test_any_reply_gets_a_verdict_and_only_a_candidate_is_accepted(reply: str, ids: list[str]) -> None:
    target, candidates = ids[0], ids[1:]
    parsed = parse_reply(reply, candidates, target, set(ids))
    assert parsed.status in STATUSES
    if parsed.status == "accepted":
        assert parsed.item_id in candidates and parsed.item_id != target
    else:
        assert parsed.item_id is None


@settings(database=None, max_examples=80, deadline=None)
@given(IDS, LINE, st.sampled_from(["-", " - ", ": ", " ", "-\t"]), st.data())
def test_a_candidate_with_any_title_is_accepted(ids: list[str], title: str, sep: str, data: st.DataObject) -> None:
    target, candidates = ids[0], ids[1:]
    pick = data.draw(st.sampled_from(candidates))
    assume(not re.search(r"[,;|]", title))  # "a, b-Title" lists two answers: unparseable by design
    parsed = parse_reply(f"{pick}{sep}{title}", candidates, target, set(ids))
    assert (parsed.status, parsed.item_id) == ("accepted", pick)


@settings(database=None, max_examples=40, deadline=None)
@given(IDS, st.integers(10**6, 10**9))
def test_an_id_outside_the_candidates_is_off_list_or_a_self_pair(ids: list[str], other: int) -> None:
    target, candidates = ids[0], ids[1:]
    assume(str(other) not in ids)
    assert parse_reply(f"{other}-Some title", candidates, target).status == "off_list"
    assert parse_reply(f"{target}-Its own title", candidates, target).status == "self_pair"


def test_a_huge_reply_is_unparseable_before_it_is_split() -> None:
    huge = ["12-" + "x" * 10**6, "12-Spicy noodles" + " " * 10**6 + "\n" * 10**5 + "305", "a" * MAX_REPLY_CHARS * 3]
    for reply in huge:
        assert parse_reply(reply, CANDIDATES, TARGET, KNOWN).status == "unparseable"
    assert parse_reply("12-" + "x" * (MAX_REPLY_CHARS - 10), CANDIDATES, TARGET).status == "accepted"


class GarbageBackend(PairBackend):
    """Answers in turn: the first candidate, nothing, a megabyte, garbage bytes, an unknown id, no text at all,
    and a record of the wrong shape (as a damaged or foreign reply cache would hold)."""

    name = "garbage"
    model_id = "garbage-1"

    def __init__(self) -> None:
        super().__init__(BackendOptions())
        self.n = 0

    def query(self, q: PairQuery) -> dict:
        self.n += 1
        return [
            {"reply": q.options()[0]},
            {"reply": ""},
            {"reply": "x" * 10**6},
            {"reply": "\ufffd\x07\x00 ??"},
            {"reply": "987654321-No such item"},
            {"reply": None},
            {"answer": "wrong key"},
        ][self.n % 7]


def test_garbage_replies_are_counted_and_the_run_goes_on(tmp_path) -> None:
    ds = synthetic_dataset(n_users=28, n_items=40)
    res = mine_pairs(ds, tmp_path, GarbageBackend(), progress=False)
    c = res.counts
    assert c["answered"] == c["queries"] == 28 and c["errors"] == 0
    assert c["accepted"] == 4 and c["off_list"] == 4 and c["unparseable"] == 20  # 5 kinds of garbage x 4
    assert len(res.pairs) == 4 and (tmp_path / "pairs.csv").is_file()
