"""The strict reply parser on real and malformed replies."""

from __future__ import annotations

import pytest

from sicsrec.stage_a.pairs import parse_reply

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
