"""The app's handlers without a browser: history, recommendations, explanations, data upload, training."""

from __future__ import annotations

import html
import json
import math
import re
import time
import urllib.parse
import warnings
import zipfile
from pathlib import Path

import gradio as gr
import pytest
from gradio.components.plot import PlotData
from PIL import Image

from sicsrec.app.studio import AppConfig, Studio
from sicsrec.app.tabs.data import DataTab, UploadError, safe_extract
from sicsrec.app.tabs.evaluate import EvaluateTab
from sicsrec.app.tabs.explore import NEW_BADGE, NEW_NOTE, PAGE_SIZE, PERSONAS, ExploreTab, Maps, moves, persona_history
from sicsrec.app.tabs.train import ALIGN, BACKEND_LABELS, MINE, STAGES, TrainForm, TrainTab
from sicsrec.cli import main as cli
from sicsrec.events import STAGE_ALIGN, StageAProgress
from sicsrec.serve import PARTS, response
from tests.app.helpers import as_figure, card_ids, named
from tests.helpers import ChatServer

STEPS = [s for s, m in STAGES.items() if m in ("sasrec", "sicsrec")]
TINY = dict(hidden=16, epochs=1, patience=1, alpha=0.2, lr=1e-3, batch=512, device="cpu")


def start(train: TrainTab, *args, **form) -> tuple[str, gr.Timer]:
    """Start a job from form values, as the Train tab's button does."""
    return train.start_job(TrainForm(*args, **form))


def click(item: str, action: str = "watch") -> gr.EventData:
    """The event data a card grid sends when the card of `item` is clicked."""
    return gr.EventData(None, {"item": item, "action": action})


def refresh(explore: ExploreTab, history: list[str], k: int = 10) -> dict:
    """explore.refresh's outputs by name."""
    return named(explore.refresh("", history, k))


@pytest.fixture(scope="module")
def explore(studio: Studio) -> ExploreTab:
    """Explore handlers over the session's Studio."""
    return ExploreTab(studio)


@pytest.fixture(scope="module")
def page_ids(explore: ExploreTab) -> list[str]:
    """Item ids of the catalogue's first page."""
    return card_ids(explore.page("", "", "", 1)[0])


@pytest.mark.slow
def test_catalogue_pages_search_and_filter(explore: ExploreTab, studio: Studio) -> None:
    cat = studio.run("").catalogue
    cards, info, page = explore.page("", "", "", 1)
    ids = card_ids(cards)
    assert len(ids) == min(PAGE_SIZE, len(cat)) and page == 1 and "Page **1**" in info
    srcs = re.findall(r'<img src="gradio_api/file=([^"]*)"', cards)
    assert all(Path(urllib.parse.unquote(p)).is_file() for p in srcs[:5])
    for iid in ids:  # every title whole (escaped), however long: the card wraps it
        assert f">{html.escape(cat.titles[cat.position[iid]])}</span>" in cards
    assert card_ids(explore.next_page("", "", "", 1)[0]) != ids  # page 2 differs
    assert explore.page("", "", "", 10_000)[2] == math.ceil(len(cat) / PAGE_SIZE)  # clamped to the last page
    title = cat.titles[cat.position[ids[0]]]
    assert ids[0] in card_ids(explore.first_page("", title[:6].lower(), "")[0])
    genre = cat.genres()[0]
    assert all(cat.categories[cat.position[i]] == genre for i in card_ids(explore.first_page("", "", genre)[0]))
    assert explore.first_page("", "zzzz-no-such-title", "")[1].startswith("No title matches")


def test_click_appends_remove_and_clear(explore: ExploreTab, page_ids: list[str]) -> None:
    history: list[str] = []
    for n in (0, 3, 5):
        history = explore.click("", history, 10, None, click(page_ids[n]))[0]
    assert history == [page_ids[0], page_ids[3], page_ids[5]]
    rewatch = explore.click("", history, 10, None, click(page_ids[0]))[0]
    assert rewatch == [page_ids[3], page_ids[5], page_ids[0]]  # a re-watched item moves to the end
    assert explore.click("", history, 10, None, click(page_ids[3], "remove"))[0] == [page_ids[0], page_ids[5]]
    assert explore.click("", history, 10, None, click("no-such-id"))[0] == history  # a stale card changes nothing
    assert explore.clear("", 10, None)[0] == []
    out = refresh(explore, history)
    assert card_ids(out["strip"]) == history and out["ids"] == ",".join(history)
    assert ">1. " in out["strip"] and "Remove " in out["strip"]  # numbered chips, each with a remove button
    assert "<img" not in refresh(explore, [])["strip"]  # an empty history is a sentence, not a broken image


def test_recommendation_cards_show_rank_score_split_and_changes(explore: ExploreTab, page_ids: list[str]) -> None:
    first = refresh(explore, page_ids[:2])
    out = named(explore.click("", page_ids[:2], 10, first["shown"], click(page_ids[2])))
    items = explore.studio.run("").main.recommend(page_ids[:3], 10).items
    assert card_ids(out["recs"]) == [it["item_id"] for it in items]
    for n, it in enumerate(items, 1):
        assert f">#{n}<" in out["recs"] and f">{it['score']:.3f}<" in out["recs"]
    assert out["recs"].count('class="sr-bar"') == len(items) and "Since your last click" in out["recs"]
    assert moves(["a", "b", "c"], ["c", "a", "d"]) == {"c": "▲2", "a": "▼1", "d": "new"}


def test_personas_fill_the_history_from_title_and_genre_lookups(explore: ExploreTab, studio: Studio) -> None:
    cat = studio.run("").catalogue
    for name in PERSONAS:
        out = named(explore.persona(name, "", 10, None))
        assert out["history"] == persona_history(cat, name) and card_ids(out["strip"]) == out["history"]
        assert len(out["history"]) >= 3 or "No items of the persona" in out["status"]
    if any("star wars" in t.lower() for t in cat.titles):
        wars = persona_history(cat, "Star Wars fan")
        assert all("star wars" in cat.titles[cat.position[i]].lower() for i in wars)


def test_recommendations_change_with_history(explore: ExploreTab, page_ids: list[str]) -> None:
    a = refresh(explore, page_ids[:3])
    b = refresh(explore, page_ids[10:16])
    assert len(a["shown"].recommended) == 10 and a["shown"].recommended != b["shown"].recommended
    assert card_ids(a["recs"]) == a["shown"].recommended
    assert not set(a["shown"].recommended) & set(page_ids[:3])  # watched items are not recommended again
    assert "recommendations for your 3 watched" in a["status"]
    assert "driven" in a["summary"] and "Because you watched" in a["because"]
    assert "of 10</b> in both lists" in a["sbs"] and "SASRec (behavior only)" in a["sbs"]


def test_attribution_has_every_part(explore: ExploreTab, studio: Studio, page_ids: list[str]) -> None:
    chart = refresh(explore, page_ids[:4], k=5)["attribution"]
    items = studio.run("").main.recommend(page_ids[:4], 5).items
    rows = chart.split("<li>")[1:]
    assert len(rows) == len(items)
    for row, it in zip(rows, items):  # the segments add up to the score (bias may be left out when zero)
        values = dict(re.findall(r'data-part="(\w+)" data-value="([-\d.e]+)"', row))
        assert list(values)[:3] == ["behavior", "content", "mixed"] and set(PARTS) <= set(it)
        assert math.isclose(sum(map(float, values.values())), it["score"], abs_tol=1e-5)
        assert f">{it['score']:.3f}<" in row and html.escape(it["title"]) in row
    assert "no attribution" in refresh(explore, [])["attribution"]


def test_embedding_map_highlights_and_is_cached(explore: ExploreTab, studio: Studio, page_ids: list[str]) -> None:
    out = refresh(explore, page_ids[:3])
    fig = as_figure(explore.embedding_map("", out["shown"], "ID space", "PCA")[0])
    names = [t.name for t in fig.data]
    assert {"watched", "recommended"} <= set(names) and any(n.startswith("you (user vector") for n in names)
    you = fig.data[-1]
    for axis, v in ((fig.layout.xaxis, you.x[0]), (fig.layout.yaxis, you.y[0])):  # the user marker is in view
        assert axis.range[0] <= v <= axis.range[1]
    assert len([t for t in fig.data if t.legendgroup == "categories"]) <= 9  # eight colours and "other"
    run = studio.run("")
    assert run.projection("ID space") is run.projection("ID space")  # fitted once per run
    content = as_figure(explore.embedding_map("", out["shown"], "content space", "PCA")[0])
    assert not any(t.name.startswith("you (user vector") for t in content.data)


def test_empty_history_shows_popular_items_labelled(explore: ExploreTab, studio: Studio) -> None:
    out = refresh(explore, [])
    assert "Popular items" in out["status"] and 'title="score"' not in out["recs"] and ">popular<" in out["recs"]
    cat = studio.run("").catalogue
    assert card_ids(out["recs"])[0] == cat.item_ids[int(cat.by_popularity[0])]


def test_api_matches_the_serving_json(explore: ExploreTab, studio: Studio, page_ids: list[str]) -> None:
    rec = studio.run("").main
    got = explore.api_recommend(",".join(page_ids[:3]), 5)
    assert got == response(rec.recommend(page_ids[:3], 5))
    assert [set(x) for x in got["items"]] == [{"item_id", "title", "score", *PARTS, "source", "scored_by"}] * 5
    assert got["source"] == "model" and got["used_ids"] == page_ids[:3] and got["warnings"] == []


@pytest.mark.parametrize(
    "history, k",
    [
        ("abc", 10),
        ("999999999", 10),
        ("1;260;1196", 10),
        ("1,1,1", 10),
        ("1,260", 0),
        ("1,260", -5),
        ("1,260", 2.7),
        ("1,260", 10000),
    ],
)
@pytest.mark.slow
def test_cli_api_and_ui_do_the_same_with_odd_input(
    explore: ExploreTab, studio: Studio, history: str, k: float, capsys: pytest.CaptureFixture
) -> None:
    """The CLI's --json and the API give one object; the UI's history and status line say the same."""
    rec = studio.run("").main
    known = [h for h in ("1", "260") if h in rec.index]
    if len(known) < 2:
        pytest.skip("the served catalogue lacks MovieLens ids 1 and 260")
    api = explore.api_recommend(history, k)
    assert cli(["recommend", "--checkpoint", str(rec.path), "--history", history, f"--k={k}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == api
    assert api["k"] == min(max(1, round(k)), 100) and len(api["items"]) == api["k"] and api["warnings"]
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        ui = named(explore.watch(history, "", [], k, None))
    ui_history, ids, status = ui["history"], ui["ids"], ui["status"]
    assert ui_history == api["used_ids"] and ids == ",".join(api["used_ids"])
    for line in api["warnings"]:  # the UI's toast and status line (history rule, k) say the same
        assert line in " ".join(str(w.message) for w in said) or line in status or line.startswith("Cold start")
    if api["source"] == "cold_start":
        assert api["unknown_ids"] == [history] and "Popular items" in status


def test_watch_by_ids_ignores_unknown(explore: ExploreTab, page_ids: list[str]) -> None:
    with pytest.warns(UserWarning, match="unknown item id"):
        out = named(explore.watch(f"{page_ids[0]}, nope ,{page_ids[1]}", "", [], 10, None))
    assert out["history"] == page_ids[:2] and out["ids"] == ",".join(page_ids[:2])
    assert "⚠️ Ignored 1 unknown item id(s): nope" in out["status"]  # visible on the page, not only in a toast


def test_a_click_runs_the_served_model_once(
    explore: ExploreTab, studio: Studio, page_ids: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One refresh = one forward pass of the served model (plus, from two watched items on, one batched pass
    for the leave-one-out influence); the map reuses that pass's user vector, and redrawing it runs nothing."""
    import numpy as np

    rec = studio.run("").main
    calls: list[tuple[int, ...]] = []
    real = rec.model.user_vectors

    def counting(seq, lengths):
        calls.append(tuple(seq.shape))
        return real(seq, lengths)

    monkeypatch.setattr(rec.model, "user_vectors", counting)
    refresh(explore, page_ids[:1])
    assert calls == [(1, 1)]
    calls.clear()
    out = refresh(explore, page_ids[:3])
    assert calls == [(1, 3), (3, 2)]  # the history once, then its three leave-one-out histories in one batch
    calls.clear()
    for space in ("ID space", "content space"):
        explore.embedding_map("", out["shown"], space, "PCA")
    assert calls == []
    monkeypatch.undo()
    user = rec.recommend(page_ids[:3], 10).user
    assert np.allclose(out["shown"].user, user, atol=1e-6)
    fig = as_figure(explore.embedding_map("", out["shown"], "ID space", "PCA")[0])
    you = next(t for t in fig.data if t.name == "you (user vector)")
    assert np.allclose([you.x[0], you.y[0]], studio.run("").projection("ID space").place(user), atol=1e-5)
    assert explore.embedding_map("another-run", out["shown"], "ID space", "PCA") == (
        gr.skip(),
        gr.skip(),
    )  # its refresh redraws


def test_watch_reports_unknown_ids_and_follows_the_history_rule(explore: ExploreTab, page_ids: list[str]) -> None:
    with pytest.warns(UserWarning) as warned:
        out = named(
            explore.watch(
                f"{page_ids[2]}, nope, {page_ids[0]},, {page_ids[2]}, also-nope",
                "",
                [page_ids[0], page_ids[1]],
                10,
                None,
            )
        )
    message = " ".join(str(w.message) for w in warned)
    assert "2 unknown item id(s): nope, also-nope" in message and message in out["status"]
    history = out["history"]
    assert history == [page_ids[1], page_ids[0], page_ids[2]] and out["ids"] == ",".join(history)
    assert "unknown item id(s): nope" in refresh(explore, [page_ids[0], "nope"])["status"]


@pytest.mark.slow
def test_missing_checkpoint_still_starts_with_popular_items(tmp_path: Path) -> None:
    studio = Studio(AppConfig(checkpoint=tmp_path / "absent", workdir=tmp_path / "runs", cache_dir=tmp_path / "cache"))
    explore = ExploreTab(studio)
    out = refresh(explore, [studio.default.catalogue.item_ids[0]])
    assert "Popular items" in out["status"] and "Train" in out["status"] and "missing" in out["status"]
    out = explore.api_recommend("1,1,nope", 3)
    assert out["source"] == "no_model" and len(out["items"]) == 3 and out["unknown_ids"] == ["nope"]
    assert out["warnings"][0].startswith("No trained model is loaded") and "repeated" in " ".join(out["warnings"])
    assert EvaluateTab(studio).show("")[0].startswith("No results.json")


ADDED = ["status", "title", "cover", "query", "category", "catalogue", "page_info", "page"]


@pytest.mark.slow
def test_an_added_item_is_in_the_catalogue_marked_new_and_recommendable(run_dir: Path, tmp_path: Path) -> None:
    # its own Studio: the item grows the run in memory, which the session's shared Studio must not see
    studio = Studio(AppConfig(checkpoint=run_dir, workdir=tmp_path / "runs", cache_dir=tmp_path / "cache"))
    explore = ExploreTab(studio)
    cat, cat_path = studio.run("").catalogue, studio.run("").main.path
    assert cat_path is not None
    twin = cat.item_ids[int(cat.by_popularity[5])]  # a popular item: the new one is near-identical in content
    title = cat.titles[cat.position[twin]]
    out = dict(zip(ADDED, explore.add_item(f"  {title} ", None, ""), strict=True))
    assert out["status"].startswith("✅") and "`new-1`" in out["status"] and "Only you see it" in out["status"]
    assert out["query"] == title and out["category"] == "" and out["title"] == ""  # the catalogue shows it at once
    assert "new-1" in card_ids(out["catalogue"]) and NEW_BADGE in out["catalogue"]
    grown = studio.run("")
    assert len(grown.catalogue) == len(cat) + 1 and grown.catalogue.is_new(grown.catalogue.position["new-1"])
    assert grown.baseline is not None and "new-1" in grown.baseline.item_ids  # side by side knows it too
    shipped = json.loads((cat_path / "items.json").read_text(encoding="utf-8"))
    assert "new-1" not in shipped["item_ids"]  # in memory only: the checkpoint on disk is unchanged
    recs = refresh(explore, [twin], 100)
    items = {it["item_id"]: it for it in grown.main.recommend([twin], 100).items}
    assert "new-1" in card_ids(recs["recs"]) and items["new-1"]["scored_by"] == "content"  # ranked, from content
    assert all(it["scored_by"] == "id" for iid, it in items.items() if iid != "new-1")
    assert NEW_BADGE in recs["recs"] and html.escape(NEW_NOTE) in recs["attribution"]
    again = explore.add_item(title, None, "")  # the same title again: a fresh id, never a collision, and said
    assert "`new-2`" in again[0] and len(studio.run("").catalogue) == len(cat) + 2
    assert f"already had an item titled like this ({twin}, new-1)" in again[0]


@pytest.mark.slow
def test_added_items_keep_their_covers_and_their_titles_as_typed(run_dir: Path, tmp_path: Path) -> None:
    studio = Studio(AppConfig(checkpoint=run_dir, workdir=tmp_path / "runs", cache_dir=tmp_path / "cache"))
    explore = ExploreTab(studio)
    cover = tmp_path / "cover.png"
    Image.new("RGB", (20, 30), (200, 30, 30)).save(cover)
    explore.add_item("With a cover", str(cover), "")
    status = explore.add_item("<b>bold</b> & co", None, "")[0]
    cat = studio.run("").catalogue
    first = cat.image_paths[cat.position["new-1"]]
    assert first.endswith("cover.png") and Path(first).read_bytes() == cover.read_bytes()  # not lost by new-2
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in status and "<b>" not in status  # shown as typed, as on its card


@pytest.mark.slow
def test_adding_an_item_refuses_bad_input_with_a_status_line(explore: ExploreTab, tmp_path: Path) -> None:
    before = len(explore.studio.run("").catalogue)
    broken = tmp_path / "cover.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    for title, cover, words in [
        ("   ", None, "Type a title"),
        ("x" * 500, None, "at most"),
        ("A film", str(broken), "cover cannot be used"),
        ("A film", str(tmp_path / "gone.png"), "cover cannot be used"),
    ]:
        out = explore.add_item(title, cover, "")
        assert out[0].startswith("⚠️") and words in out[0] and all(o == gr.skip() for o in out[1:])
    absent = tmp_path / "absent"
    no_model = ExploreTab(Studio(AppConfig(checkpoint=absent, workdir=tmp_path / "runs", cache_dir=tmp_path / "c")))
    assert "needs a trained model" in no_model.add_item("A film", None, "")[0]
    assert len(explore.studio.run("").catalogue) == before


def test_run_is_reloaded_only_when_its_results_change(studio: Studio, run_dir: Path, tmp_path: Path) -> None:
    import os
    import shutil

    copy = shutil.copytree(run_dir, tmp_path / "run")
    first = studio.run(str(copy))
    assert studio.run(str(copy)) is first and first.main is not None
    results = copy / "results.json"
    results.write_text(results.read_text())
    os.utime(results, ns=(results.stat().st_atime_ns, results.stat().st_mtime_ns + 10**9))
    assert studio.run(str(copy)) is not first


def test_unreadable_run_files_read_as_absent(tmp_path: Path) -> None:
    from sicsrec.app.runs import read_json as _read_json

    for name, data in [
        ("latin1.json", '{"dataset": "café"}'.encode("latin-1")),
        ("list.json", b"[1, 2]"),
        ("torn.json", b'{"dataset": '),
    ]:
        (tmp_path / name).write_bytes(data)
        assert _read_json(tmp_path / name) is None, name
    assert _read_json(tmp_path / "absent.json") is None


def test_evaluate_reads_results_json(studio: Studio) -> None:
    _text, lines, table, fig, _bench = EvaluateTab(studio).show("")
    assert list(table["model"])[:2] == ["popularity", "SASRec (behavior only)"] and "SICSRec" in list(table["model"])
    assert len(fig.data) == len(table) and "NDCG@10" in lines and "one seed" in lines


def test_evaluate_summary_names_the_tie_rule(studio: Studio) -> None:
    from sicsrec.app.tabs.evaluate import summary_text
    from sicsrec.eval.metrics import TIE_RULE

    results = studio.run("").results
    assert results is not None and "Ranking:" in summary_text(results)
    results = type(results)(**{**vars(results), "ranking": TIE_RULE})
    assert f"Ranking: {TIE_RULE}." in summary_text(results)
    assert "train_windows" not in summary_text(results) and "test users" in summary_text(results)


# --- data upload --------------------------------------------------------------------------------


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    """Write a zip holding `entries` {name: bytes}."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("name", ["../evil.csv", "/etc/evil.csv", "C:/evil.csv", "data/../../evil.csv"])
def test_zip_with_escaping_paths_is_refused(tmp_path: Path, name: str) -> None:
    bad = _zip(tmp_path / "bad.zip", {"items.csv": b"item_id,title\n1,a\n", name: b"x"})
    with pytest.raises(UploadError, match=r"absolute path|leaves its folder"):
        safe_extract(bad, tmp_path / "out")
    assert not (tmp_path / "evil.csv").exists()


def test_zip_symlink_entry_is_refused(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("link")
    info.external_attr = 0o120777 << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UploadError, match="symbolic link"):
        safe_extract(tmp_path / "link.zip", tmp_path / "out")


def test_zip_size_and_count_limits(tmp_path: Path) -> None:
    big = _zip(tmp_path / "big.zip", {"items.csv": b"0" * 5000})
    with pytest.raises(UploadError, match="over the limit"):
        safe_extract(big, tmp_path / "out", max_bytes=1000)
    many = _zip(tmp_path / "many.zip", {f"f{i}.txt": b"" for i in range(12)})
    with pytest.raises(UploadError, match="entries"):
        safe_extract(many, tmp_path / "out2", max_files=10)


def test_bad_uploads_give_clear_messages(studio: Studio, tmp_path: Path) -> None:
    data, before = DataTab(studio), dict(studio.datasets)
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("hello")
    assert "not a zip archive" in data.upload(str(not_zip))[0]
    traversal = _zip(tmp_path / "trav.zip", {"../x.csv": b"1"})
    assert "Upload refused" in data.upload(str(traversal))[0]
    wrong = _zip(tmp_path / "wrong.zip", {"readme.txt": b"hello"})
    report = data.upload(str(wrong))[0]
    assert "Not a usable dataset" in report and "matches no dataset format" in report and "Traceback" not in report
    assert "Choose" in data.upload(None)[0]
    assert studio.datasets == before  # nothing unusable is offered for training


def test_good_upload_reports_and_registers(studio: Studio, slice_dir: Path, tmp_path: Path) -> None:
    from tests.app.helpers import zip_folder

    good = zip_folder(slice_dir, tmp_path / "posters.zip", {"slice/images/1.jpg": b"not really a jpeg"})
    report, preview, choices = DataTab(studio).upload(str(good))
    assert "ready to train on" in report and "users" in report and "do not decode" in report
    name = choices.value
    assert name in studio.datasets and Path(studio.datasets[name]).is_dir() and preview.visible


def test_an_upload_cannot_reach_images_outside_itself(studio: Studio, tmp_path: Path) -> None:
    import io

    from PIL import Image

    secret = tmp_path / "secret.png"
    Image.new("RGB", (4, 4), "red").save(secret)
    png = io.BytesIO()
    Image.new("RGB", (4, 4), "blue").save(png, format="PNG")
    items = f"item_id,title,image\na,Alpha,pics/a.png\nb,Beta,{secret}\nc,Gamma,../../../secret.png\n"
    clicks = "user_id,item_id,timestamp\n" + "".join(f"u{u},{i},{t}\n" for u in range(3) for t, i in enumerate("abcab"))
    upload = _zip(
        tmp_path / "csv.zip",
        {"items.csv": items.encode(), "interactions.csv": clicks.encode(), "pics/a.png": png.getvalue()},
    )
    report, _preview, choices = DataTab(studio).upload(str(upload))
    assert "ready to train on" in report and "outside the dataset folder" in report, report
    assert str(secret) in report  # named, so the uploader sees which rows were ignored
    from sicsrec.data import load_dataset

    ds = load_dataset(studio.datasets[choices.value], confine_images=True)
    assert ds.items.set_index("item_id")["image_path"].ne("").to_dict() == {"a": True, "b": False, "c": False}


# --- training -----------------------------------------------------------------------------------


def _wait(studio: Studio, timeout: float = 150.0) -> None:
    """Wait for the studio's training job to end."""
    studio.job.thread.join(timeout)
    assert not studio.job.running, "training job did not finish in time"


def test_second_job_is_refused_and_cancel_stops(studio: Studio, slice_dir: Path) -> None:
    studio.datasets["slice"] = str(slice_dir)
    train = TrainTab(studio)
    message, _ = start(train, "slice", STEPS, **{**TINY, "epochs": 50})
    assert message.startswith("Started")
    refused, _ = start(train, "slice", STEPS, **TINY)
    assert "already running" in refused
    assert "Cancelling" in train.cancel()
    _wait(studio)
    status = train.poll()[0]
    assert "Cancelled" in status or "stopped" in status
    assert train.cancel() == "No training job is running."


@pytest.mark.slow
def test_tiny_training_job_completes_and_is_listed(studio: Studio, slice_dir: Path) -> None:
    studio.datasets["slice"] = str(slice_dir)
    train = TrainTab(studio)
    assert start(train, "slice", [], **TINY)[0].startswith("Pick at least one stage")
    message, timer = start(train, "slice", STEPS, **TINY)
    assert message.startswith("Started") and timer.active
    time.sleep(0.5)
    assert "Preparing" in train.poll()[0] or "Training" in train.poll()[0] or not studio.job.running
    _wait(studio)
    status, fig, metrics, timer, runs, _message = train.poll()
    assert status.startswith("**Finished**") and not timer.active, status
    assert "valid HR@10" in metrics and len(fig.data) >= 2
    out = str(studio.job.out)
    assert out in [v for _, v in studio.run_choices()] and out in [v for _, v in runs.choices]
    run = studio.run(out)
    assert run.main is not None and run.main.name == "sicsrec" and run.baseline is not None
    assert list(EvaluateTab(studio).show(out)[2]["model"]) == ["popularity", "SASRec (behavior only)", "SICSRec"]


FALLBACK = "MiniLM title similarity (FALLBACK: no LLM)"
STAGE_A = dict(
    stage_a=[MINE, ALIGN], backend=FALLBACK, max_users=None, align_optimizer="adamw", align_lr=1e-4, align_epochs=1
)


def test_stage_a_form_is_validated(studio: Studio) -> None:
    train = TrainTab(studio)
    assert "tick pair mining too" in start(train, "demo", [], **TINY, stage_a=[ALIGN])[0]
    assert "Check stage A" in start(train, "demo", [], **{**TINY, **STAGE_A, "align_lr": 5.0})[0]
    assert "Check stage A" in start(train, "demo", [], **{**TINY, **STAGE_A, "max_users": 1})[0]
    assert studio.job is None or not studio.job.running


@pytest.mark.slow
def test_stage_a_openai_backend_sends_the_server_model_name(
    studio: Studio, slice_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SICSREC_CACHE", str(tmp_path / "features"))
    studio.datasets["slice"] = str(slice_dir)
    train = TrainTab(studio)
    openai = next(label for label, name in BACKEND_LABELS.items() if name == "openai")
    form = dict(stage_a=[MINE], backend=openai, max_users=4)
    assert "needs the model name" in start(train, "slice", [], **TINY, **form)[0]
    with ChatServer() as server:
        assert start(train, "slice", [], **TINY, **form, base_url=server.url, server_model=" stub-model ")[
            0
        ].startswith("Started")
        _wait(studio, 120)
    status, _, metrics, *_ = train.poll()
    assert status.startswith("**Finished**"), status
    assert server.models == ["stub-model"] * 4 and "FALLBACK" not in metrics


@pytest.mark.slow
def test_stage_a_job_mines_aligns_and_trains_on_aligned_features(
    studio: Studio, slice_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SICSREC_CACHE", str(tmp_path / "features"))
    studio.datasets["slice"] = str(slice_dir)
    train = TrainTab(studio)
    message, timer = start(train, "slice", STEPS, **TINY, **STAGE_A)
    assert message.startswith("Started: pair mining, alignment") and timer.active
    _wait(studio, 300)
    status, _, metrics, *_ = train.poll()
    assert status.startswith("**Finished**"), status
    assert "FALLBACK: no LLM" in metrics and "Encoder alignment" in metrics and "valid HR@10" in metrics
    job = studio.job
    assert (job.out / "pairs" / "pairs.csv").is_file() and (job.out / "align" / "align.json").is_file()
    assert job.results.features["source"].startswith("aligned:")
    assert [e.stage for e in job.events if isinstance(e, StageAProgress)][-1] == STAGE_ALIGN == "encoder alignment"


@pytest.mark.slow
def test_cancel_during_pair_mining_keeps_the_replies(
    studio: Studio, slice_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SICSREC_CACHE", str(tmp_path / "features"))
    studio.datasets["slice"] = str(slice_dir)
    train = TrainTab(studio)
    assert start(train, "slice", STEPS, **TINY, **STAGE_A)[0].startswith("Started")
    train.cancel()  # set before the backend's first answer: mining stops after it
    _wait(studio)
    status = train.poll()[0]
    assert "cancelled during pair mining" in status and "replies.jsonl" in status, status
    assert studio.job.results is None and not (studio.job.out / "pairs" / "pairs.csv").exists()


@pytest.mark.slow
def test_train_form_is_one_dict_of_components(studio: Studio) -> None:
    from dataclasses import fields

    from tests.app.helpers import load_app_module

    demo = load_app_module().build_demo(studio)
    handler = next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "start")
    assert handler.inputs_as_dict and len(handler.inputs) == len(fields(TrainForm))
    values = {c: [] if getattr(c, "label", "") == "Stages" else c.value for c in handler.inputs}
    message, timer = handler.fn(values)
    assert message.startswith("Pick at least one stage") and not timer.active


def test_progress_text_reads_the_typed_events(tmp_path: Path) -> None:
    from sicsrec.app.jobs import TrainJob
    from sicsrec.app.plots import training_figure
    from sicsrec.app.tabs.train import eta_text, metrics_text, status_text
    from sicsrec.config import RunConfig, TrainConfig
    from sicsrec.events import STAGE_MINING, EpochEvent, FeatureProgress, MiningDone, StepEvent

    job = TrainJob(RunConfig(train=TrainConfig(max_epochs=10, patience=3)), ("sasrec",), tmp_path, device="cpu")
    job.events.append(StageAProgress(STAGE_MINING, 0, 0, t=0.0))
    assert "loading the model" in status_text(job)
    job.events += [StageAProgress(STAGE_MINING, 1, 11, t=10.0), StageAProgress(STAGE_MINING, 2, 11, t=12.0)]
    assert "2/11 questions" in status_text(job) and "≈ 0:18 left in pair mining" in status_text(job)
    job.events += [
        MiningDone(
            "embedding", True, 5, {"answered": 9, "none": 1, "unparseable": 0, "off_list": 1, "seconds": 3.0}, t=13.0
        ),
        FeatureProgress("text", 3, 7, t=14.0),
    ]
    assert "text 3/7 items" in status_text(job)
    job.events += [StepEvent("sasrec", 1, 5, 10, 2.0, t=20.0), StepEvent("sasrec", 1, 10, 10, 1.5, t=25.0)]
    assert "**Training SASRec (behavior only)** · epoch 1/10 · step 10/10" in status_text(job)
    assert "this stage ends within 1:30" in eta_text(job)  # 1 s per step, 10 steps per epoch, 9 epochs left
    job.events.append(
        EpochEvent("sasrec", 1, 10, {"ce": 1.0, "cl": 0.5}, {"hr@10": 0.25, "ndcg@10": 0.125}, 1, 6.0, t=26.0)
    )
    assert "validating" in status_text(job)
    metrics = metrics_text(job)
    assert "FALLBACK: no LLM" in metrics and "5 pairs from 9 answers" in metrics
    assert "| SASRec (behavior only) | 1 | 1.500 | 0.250 | 0.125 | 1 |" in metrics
    curves = training_figure(job.events)
    names = [t.name for t in curves.data]
    assert names == [f"SASRec (behavior only) · {what}" for what in ("loss", "HR@10", "NDCG@10")]
    assert curves.layout.xaxis2.dtick == 1  # validation once an epoch: whole epochs on its axis


@pytest.mark.slow
def test_job_drives_run_experiment_with_typed_events(slice_dir: Path, tmp_path: Path) -> None:
    from dataclasses import is_dataclass

    from sicsrec.app.jobs import JobBusy, JobSlot
    from sicsrec.app.tabs.train import status_text
    from sicsrec.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from sicsrec.eval.results import Results
    from sicsrec.events import EpochEvent, FitDone, StepEvent

    cfg = RunConfig(
        "sasrec",
        DataConfig(path=str(slice_dir)),
        model_cfg=ModelConfig(hidden=16, ffn=16),
        train=TrainConfig(max_epochs=2, patience=2, batch_size=512, device="cpu", threads=1),
    )
    slot = JobSlot(nice=0)
    job = slot.start(cfg, ("sasrec",), tmp_path / "run")
    with pytest.raises(JobBusy):
        slot.start(cfg, ("sasrec",), tmp_path / "second")
    job.thread.join(150)
    assert not job.running and not job.error, job.error
    assert job.events and all(is_dataclass(e) and not isinstance(e, dict) for e in job.events)
    assert [e.epoch for e in job.events if isinstance(e, EpochEvent)] == [1, 2]
    assert any(isinstance(e, StepEvent) for e in job.events)
    assert len([e for e in job.events if isinstance(e, FitDone)]) == 1
    assert [e.t for e in job.events] == sorted(e.t for e in job.events)
    assert isinstance(job.results, Results) and job.results.model_names() == ["sasrec"]
    assert Results.read(job.out).model_names() == ["sasrec"]
    assert status_text(job).startswith("**Finished**: SASRec")


def test_a_sasrec_only_map_keeps_the_user_and_the_items_in_view(run_dir: Path) -> None:
    """A behavior-only user vector can be far longer than every item vector (the demo's lands at about (0, -7)
    next to items within ±0.5): the axes still span the items, and the user is drawn on their edge."""
    from sicsrec.app.plots import embedding_figure
    from sicsrec.app.runs import load_run

    run = load_run(run_dir / "checkpoints" / "sasrec")
    cat = run.catalogue
    history = persona_history(cat, "Star Wars fan") or cat.item_ids[:5]
    recs = run.main.recommend(history, 10)
    proj = run.projection("ID space")
    watched, recommended = [cat.position[h] for h in history], [cat.position[it["item_id"]] for it in recs.items]
    fig = embedding_figure(proj, cat.titles, cat.categories, watched, recommended, proj.place(recs.user), "ID space")
    you = fig.data[-1]
    assert you.name.startswith("you (user vector")
    for n, axis in enumerate((fig.layout.xaxis, fig.layout.yaxis)):
        lo, hi = axis.range
        assert lo <= (you.x, you.y)[n][0] <= hi
        assert lo <= proj.coords[:, n].min() and proj.coords[:, n].max() <= hi


@pytest.mark.slow
def test_tsne_is_fitted_off_the_request_path(explore: ExploreTab, studio: Studio) -> None:
    # The app's fitting process runs at nice 19; the suite's workers fill every core, so a nice-19 fit would wait
    # for them. A fresh Maps at normal priority tests the same path: PCA at once, the fit from the other process.
    explore.maps = Maps(nice=0)
    run = studio.run("")
    proj, note = explore.maps.get(run, "ID space", "t-SNE")
    assert "background" in note and proj is run.projection("ID space", "PCA")  # answered with PCA, not after the fit
    deadline = time.monotonic() + 300
    while note and time.monotonic() < deadline:
        time.sleep(0.5)
        proj, note = explore.maps.get(run, "ID space", "t-SNE")
    assert note == "" and proj is not run.projection("ID space", "PCA")  # the background fit arrived


def test_map_lines_join_each_pick_to_its_strongest_watched_item(
    explore: ExploreTab, studio: Studio, page_ids: list[str]
) -> None:
    """With lines on, one extra trace (None-separated segments) joins each recommendation to the watched item whose
    removal lowers it most, at their positions in the chosen projection; with lines off there is none."""
    import numpy as np

    from sicsrec.app.plots import LINKS_NAME, model_colour

    run = studio.run("")
    cat = run.catalogue
    out = refresh(explore, page_ids[:4])
    shown = out["shown"]
    assert len(shown.drivers) == len(shown.recommended) and set(shown.drivers) <= set(shown.history)
    recs = run.main.recommend(page_ids[:4], 10, influence=True)
    assert shown.drivers == [recs.used_history[int(i)] for i in np.argmax(recs.influence, axis=0)]
    for space in ("ID space", "content space"):
        off = as_figure(explore.embedding_map("", shown, space, "PCA", False)[0])
        on = as_figure(explore.embedding_map("", shown, space, "PCA", True)[0])
        assert LINKS_NAME not in [t.name for t in off.data]
        assert len(on.data) == len(off.data) + 1
        lines = [t for t in on.data if t.name == LINKS_NAME]
        assert len(lines) == 1 and lines[0].mode == "lines"
        assert lines[0].line.color == model_colour(run.main.name)
        xs, ys = list(lines[0].x), list(lines[0].y)
        assert len(xs) == 3 * len(shown.recommended) and xs[2::3] == ys[2::3] == [None] * len(shown.recommended)
        xy = run.projection(space).coords
        for n, (d, r) in enumerate(zip(shown.drivers, shown.recommended)):
            a, b = xy[cat.position[d]], xy[cat.position[r]]
            assert np.allclose([xs[3 * n], ys[3 * n], xs[3 * n + 1], ys[3 * n + 1]], [*a, *b])
        assert on.data[-1].name == off.data[-1].name  # drawn under the markers: the last trace is unchanged
    skipped, behind = explore.follow_map("", shown, "ID space", "PCA", True, False)  # redrawn only when following
    assert skipped == gr.skip() and behind.variant == "primary" and "it shows an earlier one" in behind.value
    drawn, current = explore.follow_map("", shown, "ID space", "PCA", True, True)
    assert as_figure(drawn).data and current.variant == "secondary" and "earlier" not in current.value
    assert "drawn for a history of 4 item(s)" in on.layout.title.text  # which history a map left as drawn shows
    # one note a line (a joined line ran off a phone's width): content space says where the user vector is
    assert "<sup>drawn for a history of 4 item(s)</sup><br><sup>your user vector: shown in ID space only</sup>" in (
        on.layout.title.text
    )
    empty = refresh(explore, [])["shown"]  # popular items: no personal list, no lines
    unplaced = as_figure(explore.embedding_map("", empty, "ID space", "PCA", True)[0])
    assert (
        LINKS_NAME not in [t.name for t in unplaced.data] and "drawn with no history yet" in unplaced.layout.title.text
    )


def test_the_map_is_already_what_plotly_validation_would_make_it(
    explore: ExploreTab, studio: Studio, page_ids: list[str]
) -> None:
    """The map is sent as its spec's JSON, never validated by plotly (for speed): passing that JSON through plotly's
    validation must raise nothing and change nothing, with and without lines, in both spaces and before any
    history."""
    import plotly.graph_objects as go

    run = studio.run("")
    for history in ([], page_ids[:4]):
        shown = refresh(explore, history)["shown"]
        for space in run.spaces():
            for lines in (False, True):
                sent = explore.embedding_map("", shown, space, "PCA", lines)[0]
                assert isinstance(sent, PlotData) and sent.type == "plotly"  # the spec's JSON, no Figure made
                raw = json.loads(sent.plot)
                validated = go.Figure(raw)  # raises on an unknown property or a bad value
                as_sent = go.Figure(raw, _validate=False)
                assert json.loads(validated.to_json()) == json.loads(as_sent.to_json()), (space, lines, history)
