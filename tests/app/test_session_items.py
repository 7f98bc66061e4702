"""Items added in the app belong to the browser session that added them: another student does not see them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from sicsrec.app import studio as studio_module
from sicsrec.app.studio import AppConfig, Studio
from sicsrec.app.tabs.explore import ExploreTab
from tests.app.helpers import card_ids, named


def fresh(run_dir: Path, tmp_path: Path) -> Studio:
    """A Studio of its own: added items grow runs in memory, which the suite's shared Studio must not see."""
    return Studio(AppConfig(checkpoint=run_dir, workdir=tmp_path / "runs", cache_dir=tmp_path / "cache"))


@pytest.mark.slow
def test_an_item_added_in_one_session_is_that_sessions_only(run_dir: Path, tmp_path: Path) -> None:
    studio = fresh(run_dir, tmp_path)
    base = studio.run("")
    title = base.catalogue.titles[int(base.catalogue.by_popularity[3])]
    studio.add_item("", title, None, session="alice")
    studio.add_item("", "A second upload of Alice", None, session="alice")  # items accumulate in a session
    alice, bob, shared = studio.run("", "alice"), studio.run("", "bob"), studio.run("")
    assert {"new-1", "new-2"} <= set(alice.catalogue.item_ids) and len(alice.catalogue) == len(base.catalogue) + 2
    assert "new-2" in alice.main.item_ids
    assert bob is shared is base and "new-1" not in bob.catalogue  # nobody else sees them
    studio.add_item("", "Bob's own", None, session="bob")  # numbered in Bob's session: new-1 again, its own item
    bob = studio.run("", "bob")
    assert bob.catalogue.titles[bob.catalogue.position["new-1"]] == "Bob's own"
    assert alice.catalogue.titles[alice.catalogue.position["new-1"]] == title


@pytest.mark.slow
def test_only_the_most_recent_sessions_keep_their_items(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(studio_module, "SESSION_RUNS", 2)
    studio = fresh(run_dir, tmp_path)
    for who in ("a", "b"):
        studio.add_item("", f"item of {who}", None, session=who)
    studio.run("", "a")  # a is used again: b is now the least recently used
    studio.add_item("", "item of c", None, session="c")
    assert "new-1" in studio.run("", "a").catalogue and "new-1" in studio.run("", "c").catalogue
    assert "new-1" not in studio.run("", "b").catalogue  # dropped: b falls back to the shared run


@pytest.mark.slow
def test_without_a_session_every_session_sees_the_item(run_dir: Path, tmp_path: Path) -> None:
    studio = fresh(run_dir, tmp_path)
    studio.add_item("", "For the whole class", None)
    assert "new-1" in studio.run("").catalogue and "new-1" in studio.run("", "anyone").catalogue


@pytest.mark.slow
def test_the_explore_tab_serves_each_browser_session_its_own_items(run_dir: Path, tmp_path: Path) -> None:
    studio = fresh(run_dir, tmp_path)
    explore = ExploreTab(studio)
    alice, bob = SimpleNamespace(session_hash="alice"), SimpleNamespace(session_hash="bob")  # what Gradio passes
    cat = studio.run("").catalogue
    twin = cat.item_ids[int(cat.by_popularity[5])]
    title = cat.titles[cat.position[twin]]
    status, *_, page_html, _info, _page = explore.add_item(title, None, "", alice)
    assert status.startswith("✅") and "Only you see it" in status and "new-1" in card_ids(page_html)
    assert "new-1" not in card_ids(explore.first_page("", title, "", bob)[0])  # Bob searches the same title
    for who, sees in ((alice, True), (bob, False)):
        recs = named(explore.refresh("", [twin], 100, None, who))
        assert ("new-1" in card_ids(recs["recs"])) is sees
    assert explore.refresh("", ["new-1"], 10, None, alice)[0] == ["new-1"]  # Alice can watch it
    assert explore.refresh("", ["new-1"], 10, None, bob)[0] == []  # unknown to Bob: reported, not kept
