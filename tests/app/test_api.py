"""The app served in-process on 127.0.0.1: the named /recommend endpoint (the only documented one) and
per-session history through the UI's own (undocumented) events, also for eight sessions at once."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from sicsrec.app.studio import Studio
from sicsrec.serve import PARTS, response
from sicsrec.serve.history import append_click
from tests.app.helpers import served_app

pytestmark = pytest.mark.slow  # trains models or serves the app for every test here

REFRESH_ARGS = ("", 10)  # run, k: the UI's defaults (the history and the last list shown are state)


@pytest.fixture(scope="module")
def url(studio: Studio) -> Iterator[str]:
    """The app launched without blocking on a random free port."""
    with served_app(studio) as url:
        yield url


def test_recommend_endpoint_returns_the_serving_json(url: str, studio: Studio) -> None:
    from gradio_client import Client

    rec = studio.run("").main
    history = rec.item_ids[:3]
    client = Client(url, verbose=False)
    got = client.predict(",".join(history), 5, api_name="/recommend")
    expected = response(rec.recommend(history, 5))
    assert {k: v for k, v in got.items() if k != "items"} == {k: v for k, v in expected.items() if k != "items"}
    assert [x["item_id"] for x in got["items"]] == [x["item_id"] for x in expected["items"]]
    for g, e in zip(got["items"], expected["items"]):
        assert set(g) == {"item_id", "title", "score", *PARTS, "source", "scored_by"}
        assert g["title"] == e["title"] and abs(g["score"] - e["score"]) < 1e-6 and g["source"] == "model"
    assert list(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == ["/recommend"]
    cold = client.predict("1;260;1196", 0, api_name="/recommend")
    assert cold["source"] == "cold_start" and cold["unknown_ids"] == ["1;260;1196"] and len(cold["items"]) == 1
    assert "k=0 is outside 1-100: clamped to 1." in cold["warnings"]


def test_two_sessions_keep_separate_histories(url: str, studio: Studio) -> None:
    from gradio_client import Client

    ids = studio.run("").catalogue.item_ids
    alice, bob = Client(url, verbose=False), Client(url, verbose=False)
    # undocumented: every non-state input is given (ids, run, k); the history as ids is the second output
    assert alice.predict(ids[0], "", 10, api_name="/watch")[1] == ids[0]
    assert bob.predict(ids[5], "", 10, api_name="/watch")[1] == ids[5]
    assert alice.predict(f"{ids[1]},{ids[2]}", "", 10, api_name="/watch")[1] == ",".join(ids[:3])
    assert bob.predict(ids[6], "", 10, api_name="/watch")[1] == f"{ids[5]},{ids[6]}"


def test_eight_concurrent_sessions_see_only_their_own_clicks(url: str, studio: Studio) -> None:
    """Eight clients click at once through the UI's events (watch an id, then a refresh of the session's history):
    every answer is about that session's own history, and nothing fails."""
    from gradio_client import Client

    ids = studio.run("").catalogue.item_ids[:300]

    def session(seed: int) -> list[str]:
        """Four clicks of one session; the problems seen (empty when every answer was its own)."""
        # a browser waits for a busy server: httpx's 5 s default would fail on a loaded machine
        client = Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": 60})
        rng, mine, problems = random.Random(seed), [], []
        for _ in range(4):
            item = rng.choice(ids)
            mine = append_click(mine, item, 200)
            shown = client.predict(item, "", 10, api_name="/watch")[1]
            _, ids_box, status, *_ = client.predict(*REFRESH_ARGS, api_name="/refresh")
            if shown != ",".join(mine) or ids_box != ",".join(mine) or f"your {len(mine)} watched" not in status:
                problems.append(f"session {seed}: expected {mine}, /watch {shown}, /refresh {ids_box}, {status}")
        return problems

    with ThreadPoolExecutor(8) as pool:
        problems = [p for found in pool.map(session, range(8)) for p in found]  # a failed call raises here
    assert problems == []
