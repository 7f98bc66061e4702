"""Each pair-mining backend on a real call: an OpenAI-compatible server started here (a stand-in for
the external service), SmolLM2 on two prompts, the MiniLM embedding fallback; resume after Ctrl-C."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

from sicsrec.cli import main
from sicsrec.cli.stage_a import print_mining
from sicsrec.data.schema import Dataset, ValidationReport
from sicsrec.stage_a.llm import BackendOptions, ReplyCache, get_backend
from sicsrec.stage_a.pairs import MiningSettings, build_queries, mine_pairs, pairs_current
from tests.helpers import ChatServer

TOPICS = [
    (
        "How to bake a fluffy chocolate sponge cake",
        ["Football world cup final highlights", "Chocolate cake recipe for beginners", "Stock market crash explained"],
    ),
    (
        "Premier league goals of the week",
        ["Baking sourdough bread at home", "Learn Python in one hour", "Top 10 football goals of 2020"],
    ),
]


def _dataset(n_users: int) -> Dataset:
    """Users cycling through TOPICS: a clip of their own, the topic's candidates, the target, then a
    validation and a test item (so every user's prompt differs)."""
    rows, titles = [], {}
    for u in range(n_users):
        target, cands = TOPICS[u % len(TOPICS)]
        seq = []
        for title in [f"Random clip number {u}", *cands, target, f"held-out valid {u}", f"held-out test {u}"]:
            iid = titles.setdefault(title, str(len(titles)))
            seq.append(iid)
        rows += [(f"u{u}", iid, k) for k, iid in enumerate(seq)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "order"])
    items = pd.DataFrame(
        {
            "item_id": list(titles.values()),
            "title": list(titles),
            "text": list(titles),
            "category": "",
            "image_path": "",
        }
    )
    return Dataset("backend-test", items, inter, ValidationReport())


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread for this test (faster on 2 shared cores), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with ChatServer() as s:
        yield s


def _openai(server: ChatServer, **kw) -> BackendOptions:
    return BackendOptions(model="stub-model", base_url=server.url, backoff=0.01, timeout=5, **kw)


def test_openai_backend_with_retries_concurrency_and_key(server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("STUB_KEY", "sk-test")
    server.fail = 2  # two 503s: retried with backoff
    ds = _dataset(6)
    res = mine_pairs(ds, tmp_path, "openai", _openai(server, api_key_env="STUB_KEY", concurrency=3), progress=False)
    c = res.counts
    assert (c["queries"], c["accepted"], c["none"], c["unparseable"], c["errors"]) == (6, 3, 3, 0, 0)
    assert server.calls == 6 + 2 and c["backend_calls"] == 6
    assert all(h.get("Authorization") == "Bearer sk-test" for h in server.headers)
    titles = dict(zip(ds.items["item_id"], ds.items["title"]))
    assert (res.pairs["target_title"] == TOPICS[0][0]).all()
    assert (res.pairs["pair_title"] == TOPICS[0][1][0]).all()  # the second candidate line
    assert (res.pairs["pair_title"] == res.pairs["pair_id"].map(titles)).all()
    meta = json.loads((tmp_path / "pairs.json").read_text())
    assert meta["fallback"] is False and meta["model"].startswith("stub-model@") and meta["counts"]["accepted"] == 3
    assert list(pd.read_csv(tmp_path / "pairs.csv").columns) == [
        "target_id",
        "target_title",
        "pair_id",
        "pair_title",
        "user_id",
    ]


def test_openai_backend_failure_is_counted_not_cached(server, tmp_path) -> None:
    server.fail = 100
    res = mine_pairs(_dataset(2), tmp_path, "openai", _openai(server, retries=1, concurrency=1), progress=False)
    assert res.counts["errors"] == 2 and res.counts["answered"] == 0
    assert len(ReplyCache(tmp_path / "replies.jsonl")) == 0


def test_resume_after_interrupt_reuses_cached_replies(server, tmp_path) -> None:
    ds = _dataset(8)
    opts = _openai(server, concurrency=1)

    def stop_after_three(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mine_pairs(ds, tmp_path, "openai", opts, progress=False, progress_callback=stop_after_three)
    assert server.calls == 3 and len(ReplyCache(tmp_path / "replies.jsonl")) == 3
    assert not (tmp_path / "pairs.csv").exists()

    res = mine_pairs(ds, tmp_path, "openai", opts, progress=False)
    assert server.calls == 8  # only the 5 missing queries were asked
    assert (res.counts["cached_replies"], res.counts["backend_calls"], res.counts["answered"]) == (3, 5, 8)

    again = mine_pairs(ds, tmp_path, "openai", opts, progress=False)
    assert server.calls == 8 and again.counts["backend_calls"] == 0
    assert again.pairs.equals(res.pairs)


def test_reply_cache_survives_a_half_written_line(tmp_path) -> None:
    path = tmp_path / "replies.jsonl"
    cache = ReplyCache(path)
    cache.append("a", {"record": {"reply": "1"}})
    cache.close()
    with path.open("ab") as f:
        f.write('{"key": "b", "record": {"reply": "café'.encode()[:-1])  # died mid-line, mid-character
    cache = ReplyCache(path)
    assert len(cache) == 1
    cache.append("c", {"record": {"reply": "2"}})
    cache.close()
    assert set(ReplyCache(path).records) == {"a", "c"}


@pytest.mark.slow
def test_smollm2_and_hf_constrained_choice_on_two_prompts(tmp_path, one_thread) -> None:
    ds = _dataset(2)
    res = mine_pairs(ds, tmp_path, "smollm2", progress=False)
    assert res.counts["queries"] == 2 and res.counts["unparseable"] == res.counts["off_list"] == 0
    assert res.counts["accepted"] + res.counts["none"] == 2
    records = [json.loads(line)["record"] for line in (tmp_path / "replies.jsonl").read_text().splitlines()]
    assert all(len(r["logprob"]) == len(r["tokens"]) == 5 for r in records)  # 4 candidates + `-1`
    assert all(r["tokens"][-1] >= 2 for r in records)  # `-1` and the end-of-turn token
    by_target = dict(zip(res.pairs["target_title"], res.pairs["pair_title"]))
    assert by_target.get(TOPICS[0][0]) == TOPICS[0][1][1]  # the chocolate cake, not football or stocks

    # the shared-prefill + expanded KV-cache scores equal scoring each full sequence on its own
    be = get_backend("smollm2")
    be.setup([])
    q = build_queries(ds)[0][0]
    rec = be.query(q)
    tok, model = be.tokenizer, be.model
    prompt = tok(
        tok.apply_chat_template(q.messages(), add_generation_prompt=True, tokenize=False), add_special_tokens=False
    )["input_ids"]
    answer = tok(q.options()[2], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt + answer])).logits[0, len(prompt) - 1 : -1].float()
    direct = float(torch.log_softmax(logits, -1)[torch.arange(len(answer)), torch.tensor(answer)].sum())
    assert rec["logprob"][2] == pytest.approx(direct, abs=2e-3)

    # the hf backend (any local model folder) shares the scoring: the cached SmolLM2 folder gives the same record
    hf = get_backend("hf", model=str(be.model_dir()))
    assert hf.model_id.startswith("hf:") and hf.query(q)["logprob"] == pytest.approx(rec["logprob"], abs=1e-4)


def test_embedding_backend_is_a_labelled_fallback(tmp_path, caplog, capsys) -> None:
    ds = _dataset(2)
    with caplog.at_level(logging.WARNING, logger="sicsrec"):
        res = mine_pairs(ds, tmp_path, "embedding", BackendOptions(similarity_threshold=0.3), progress=False)
    assert "FALLBACK" in caplog.text
    meta = json.loads((tmp_path / "pairs.json").read_text())
    assert meta["fallback"] is True and meta["backend"] == "embedding"
    assert meta["settings"]["decision"] == {"similarity_threshold": 0.3}
    assert dict(zip(res.pairs["target_title"], res.pairs["pair_title"])) == {
        TOPICS[0][0]: TOPICS[0][1][1],
        TOPICS[1][0]: TOPICS[1][1][2],
    }
    print_mining(res, Path(tmp_path))
    assert "FALLBACK" in capsys.readouterr().out
    assert pairs_current(tmp_path, ds, MiningSettings(), get_backend("embedding", similarity_threshold=0.3))
    assert not pairs_current(
        tmp_path, ds, MiningSettings(max_candidates=3), get_backend("embedding", similarity_threshold=0.3)
    )
    strict = mine_pairs(ds, tmp_path, "embedding", BackendOptions(similarity_threshold=0.99), progress=False)
    assert strict.counts["none"] == 2 and strict.counts["backend_calls"] == 0  # threshold applied to cached scores


def test_mine_pairs_command(tmp_path, capsys) -> None:
    ds = _dataset(3)
    ds.items[["item_id", "title"]].to_csv(tmp_path / "items.csv", index=False)
    ds.interactions.to_csv(tmp_path / "interactions.csv", index=False)
    rc = main(
        [
            "mine-pairs",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "pairs"),
            "--backend",
            "embedding",
            "--similarity-threshold",
            "0.3",
            "--min-user-interactions",
            "3",
            "--device",
            "cpu",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "FALLBACK" in out and "accepted=3" in out
    assert len(pd.read_csv(tmp_path / "pairs" / "pairs.csv")) == 3
    meta = json.loads((tmp_path / "pairs" / "pairs.json").read_text())
    assert meta["settings"]["training_part_only"] is True and meta["settings"]["candidate_titles_aligned"] is True

    rc = main(
        [
            "mine-pairs",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "leaky"),
            "--backend",
            "embedding",
            "--min-user-interactions",
            "3",
            "--device",
            "cpu",
            "--reference",
            "1,2",
        ]
    )
    meta = json.loads((tmp_path / "leaky" / "pairs.json").read_text())
    assert rc == 0 and meta["settings"]["training_part_only"] is False
    assert meta["settings"]["candidate_titles_aligned"] is False
    with pytest.raises(SystemExit, match="stage-A decision"):
        main(["compare", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--reference", "1"])
