"""The results.json schema: round trip, tolerant reading of old or broken files, the questions readers ask."""

from __future__ import annotations

import json
import math
from pathlib import Path

from sicsrec.eval.metrics import TIE_RULE
from sicsrec.eval.results import ModelResult, Results

M = ("hr@5", "hr@10", "ndcg@5", "ndcg@10")


def metrics(x: float) -> dict[str, float]:
    return {k: x * (i + 1) / 10 for i, k in enumerate(M)}


def example() -> Results:
    return Results(
        "toy",
        {"users": 3},
        "cpu",
        {"source": "raw"},
        {"model": "sicsrec"},
        {
            "sicsrec": ModelResult(metrics(0.3), metrics(0.33), 12, 4.5, "early_stop"),
            "pop": ModelResult(metrics(0.1), metrics(0.1)),
            "sasrec": ModelResult(metrics(0.2), metrics(0.3), 8, 2.0, "max_epochs"),
        },
        ranking=TIE_RULE,
    )


def test_round_trip_keeps_everything_in_table_order(tmp_path: Path) -> None:
    res = example()
    res.write(tmp_path / "results.json")
    back = Results.read(tmp_path)
    assert back == res and list(json.loads((tmp_path / "results.json").read_text())["models"]) == [
        "pop",
        "sasrec",
        "sicsrec",
    ]


def test_missing_unreadable_and_malformed_files_read_as_none(tmp_path: Path) -> None:
    assert Results.read(tmp_path / "absent") is None
    path = tmp_path / "results.json"
    for content in (b"\xff\xfe not utf-8", b"[1, 2]", b"{not json", b'{"models": {"sasrec": {"test": 3}}}'):
        path.write_bytes(content)
        assert Results.read(path) is None


def test_files_from_before_the_schema_still_read(tmp_path: Path) -> None:
    old = {
        "dataset": "d",
        "models": {"pop": {"valid": metrics(0.1), "test": metrics(0.1), "epochs": 0, "train_seconds": 0.0}},
    }
    (tmp_path / "results.json").write_text(json.dumps(old))
    res = Results.read(tmp_path)
    assert res is not None and res.ranking == "" and res.models["pop"].stopped is None
    assert not res.is_current({}, ("pop",), "raw")  # no tie rule recorded: never current


def test_gain_and_best_baseline() -> None:
    res = example()
    assert res.best_baseline("ndcg@5") == "sasrec"
    assert math.isclose(res.gain("sicsrec", metric="ndcg@5"), 0.1)
    assert res.gain("sicsrec", over="content") is None and res.gain("content") is None
    assert math.isnan(res.metric("content", "hr@10"))


def test_current_means_same_config_source_models_and_rule() -> None:
    res = example()
    assert res.is_current({"model": "sicsrec"}, ("sasrec", "sicsrec"), "raw")
    assert not res.is_current({"model": "sicsrec"}, ("sasrec",), "raw")
    assert not res.is_current({"model": "other"}, ("sasrec", "sicsrec"), "raw")
    assert not res.is_current({"model": "sicsrec"}, ("sasrec", "sicsrec"), "aligned:abc")
    res.cancelled = True
    assert not res.is_current({"model": "sicsrec"}, ("sasrec", "sicsrec"), "raw")


def test_markdown_table_lists_every_model() -> None:
    table = example().markdown_table({"sicsrec": "SICSRec"})
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == ["pop", "sasrec", "SICSRec"]
