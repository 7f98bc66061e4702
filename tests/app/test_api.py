"""The app served in-process on 127.0.0.1: the named /recommend endpoint and per-session history."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sicsrec.app.studio import Studio
from sicsrec.serve import PARTS
from tests.app.helpers import free_port, load_app_module


@pytest.fixture(scope="module")
def url(studio: Studio) -> Iterator[str]:
    """The app launched without blocking on a random free port."""
    app = load_app_module()
    demo = app.build_demo(studio)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **app.launch_options(studio))
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def test_recommend_endpoint_returns_the_serving_json(url: str, studio: Studio) -> None:
    from gradio_client import Client

    rec = studio.run("").main
    history = rec.item_ids[:3]
    got = Client(url, verbose=False).predict(",".join(history), 5, api_name="/recommend")
    expected = rec.to_json(rec.recommend(history, 5))
    assert [x["item_id"] for x in got] == [x["item_id"] for x in expected]
    for g, e in zip(got, expected):
        assert set(g) == {"item_id", "title", "score", *PARTS, "source"}
        assert g["title"] == e["title"] and abs(g["score"] - e["score"]) < 1e-6 and g["source"] == "model"


def test_two_sessions_keep_separate_histories(url: str, studio: Studio) -> None:
    from gradio_client import Client

    ids = studio.run("").catalogue.item_ids
    alice, bob = Client(url, verbose=False), Client(url, verbose=False)
    assert alice.predict(ids[0], api_name="/watch") == ids[0]
    assert bob.predict(ids[5], api_name="/watch") == ids[5]
    assert alice.predict(f"{ids[1]},{ids[2]}", api_name="/watch") == ",".join(ids[:3])
    assert bob.predict(ids[6], api_name="/watch") == f"{ids[5]},{ids[6]}"
