"""Stage A1: mine positive item pairs by asking a semantic discriminator, one query per user.

For each user the training part of the sequence (everything but the last two items, which are
validation and test: spec decision 1) gives the query: its last item is the target, the other
distinct training-part items (the most recent `max_candidates`) are the candidates, each shown
as `id-title` with its own title (decision 2). The backend (`sicsrec.stage_a.llm`) answers with
one `id-title` or `-1`; `parse_reply` accepts only an answer that names a candidate id.

    queries, stats = build_queries(dataset, MiningSettings(max_users=200))
    result = mine_pairs(dataset, "runs/food/pairs", backend="smollm2")
    result.pairs        # DataFrame: target_id, target_title, pair_id, pair_title, user_id

Outputs (atomic): `pairs.csv` and `pairs.json` (settings, backend, model, counts, fallback flag).
Replies go to an append-only JSONL cache (`replies.jsonl`, one flushed line per reply), so an
interrupted run resumes where it stopped and a rerun makes no backend call at all.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from sicsrec.data.schema import Dataset
from sicsrec.stage_a.llm import BackendError, BackendOptions, PairBackend, ReplyCache, get_backend, reply_key
from sicsrec.stage_a.prompt import PROMPT_VERSION, PairQuery
from sicsrec.utils import atomic_write_text

log = logging.getLogger("sicsrec")

STATUSES = ("accepted", "none", "unparseable", "off_list", "self_pair")
PAIR_COLUMNS = ["target_id", "target_title", "pair_id", "pair_title", "user_id"]


@dataclass
class MiningSettings:
    """How queries are built: candidates per query, user sampling, title length in the prompt."""

    max_candidates: int = 10  # most recent distinct training-part items shown as candidates
    max_users: int | None = None  # sample this many users (seeded) for a quick run; None = all
    seed: int = 2025
    max_title_chars: int = 120  # titles are cut to this length in the prompt (pairs.csv keeps them whole)
    # Decision 1: the query comes from the training part only (False: the reference's target is each
    # user's test item and the validation item is among the candidates, which leaks both).
    training_part_only: bool = True
    # Decision 2: each candidate id is shown with its own title (False: the reference zipped the ids in
    # history order with the titles of the candidates sorted by id, so most ids carry another's title).
    candidate_titles_aligned: bool = True


@dataclass
class ParsedReply:
    """A reply's verdict (one of STATUSES) and the candidate it names when accepted."""

    status: str
    item_id: str | None = None


def _clip(title: str, n: int) -> str:
    """A title cut to n characters (with an ellipsis) and without line breaks, for the prompt."""
    title = " ".join(str(title).split())
    return title if len(title) <= n else title[: n - 1].rstrip() + "…"


def item_titles(dataset: Dataset) -> dict[str, str]:
    """item id -> title."""
    return dict(zip(dataset.items["item_id"].astype(str), dataset.items["title"].astype(str)))


def build_queries(dataset: Dataset, settings: MiningSettings | None = None) -> tuple[list[PairQuery], dict[str, int]]:
    """One query per user from the training part of the sequence only (unless `settings` reproduce the
    reference's decisions 1/2); users without candidates are skipped.

    Returns (queries in user order, stats: users, skipped_no_candidates, eligible, sampled).
    """
    s = settings or MiningSettings()
    inter = dataset.interactions[["user_id", "item_id"]].astype(str)
    from_end = inter.groupby("user_id", sort=False).cumcount(ascending=False)
    held_out = 2 if s.training_part_only else 0  # drop each user's validation and test item (decision 1)
    train = inter[from_end >= held_out]
    targets = inter[from_end == held_out].set_index("user_id")["item_id"]  # last training item (reference: test)
    cands = train[train["item_id"].to_numpy() != targets.reindex(train["user_id"]).to_numpy()]
    cands = cands.drop_duplicates(["user_id", "item_id"], keep="last")
    cands = cands.groupby("user_id", sort=False).tail(s.max_candidates)
    cand_lists = cands.groupby("user_id", sort=False)["item_id"].agg(list)

    users = inter["user_id"].drop_duplicates()
    eligible = [u for u in users if u in cand_lists.index]
    chosen = eligible
    if s.max_users is not None and s.max_users < len(eligible):
        pick = np.random.default_rng(s.seed).choice(len(eligible), size=s.max_users, replace=False)
        chosen = [eligible[i] for i in np.sort(pick)]
    titles = item_titles(dataset)
    t = lambda iid: (iid, _clip(titles[iid], s.max_title_chars))
    shown = (lambda ids: tuple(t(i) for i in ids)) if s.candidate_titles_aligned else _misaligned(t)
    queries = [PairQuery(u, t(targets[u]), shown(cand_lists[u])) for u in chosen]
    stats = {
        "users": len(users),
        "skipped_no_candidates": len(users) - len(eligible),
        "eligible": len(eligible),
        "sampled": len(queries),
    }
    return queries, stats


def _misaligned(t: Callable[[str], tuple[str, str]]) -> Callable[[list[str]], tuple[tuple[str, str], ...]]:
    """Decision 2's reference behaviour: ids in history order zipped with the titles of the ids sorted
    (numerically when they are numbers, as the reference's integer ids were)."""

    def key(iid: str) -> tuple:
        return (0, int(iid), "") if iid.isascii() and iid.isdigit() else (1, 0, iid)

    return lambda ids: tuple((iid, t(other)[1]) for iid, other in zip(ids, sorted(ids, key=key)))


_WRAPPERS = "`'\"*“”‘’"
# An answer is one id and at most a (clipped) title: anything longer is rambling, so unparseable, and the
# cap keeps a megabyte-long reply from costing more than a short one.
MAX_REPLY_CHARS = 4096


def parse_reply(
    reply: str | None, candidate_ids: list[str], target_id: str, known_ids: set[str] | None = None
) -> ParsedReply:
    """Strict parse: one line starting with a candidate id (`id`, `id-title`, `id - title`) or `-1`.

    The title after the id may be abbreviated or left out; a reply that lists several items, has
    more than one line, is longer than MAX_REPLY_CHARS or does not start with an id is unparseable.
    An id that is not a candidate is off_list (a number, or any id in `known_ids`); the target's own
    id is a self_pair.
    """
    text = str(reply or "").strip()
    lines = [ln for ln in text.splitlines() if ln.strip()] if len(text) <= MAX_REPLY_CHARS else []
    if len(lines) != 1:
        return ParsedReply("unparseable")
    text = lines[0].strip().strip(_WRAPPERS).strip()
    if re.fullmatch(r"-1(?:[\s.,;:!)(].*)?", text):
        return ParsedReply("none")
    ids = sorted({*candidate_ids, target_id}, key=len, reverse=True)  # longest first: "12" before "1"
    named = next((i for i in ids if re.match(re.escape(i) + r"(?:$|[\s\-:.,)])", text)), None)
    if named is None:
        token = re.match(r"([^\s\-:.,)]+)(?:$|[\s\-:.,)])", text)
        if token and (token.group(1).isdigit() or token.group(1) in (known_ids or ())):
            return ParsedReply("off_list")
        return ParsedReply("unparseable")
    rest = text[len(named) :]
    others = "|".join(re.escape(i) for i in ids if i != named)
    if others and re.search(rf"[,;|]\s*(?:{others})\s*-", rest):
        return ParsedReply("unparseable")  # several answers on one line
    if named == target_id:
        return ParsedReply("self_pair")
    return ParsedReply("accepted", named)


@dataclass
class MiningResult:
    """Pairs, counts and the metadata written to pairs.json."""

    pairs: pd.DataFrame
    counts: dict
    meta: dict
    out: Path | None = None


ProgressCallback = Callable[[int, int], None]


def dataset_digest(dataset: Dataset) -> str:
    """sha256 over the interactions (user, item, in order) and the item titles: what mined pairs depend on."""
    h = hashlib.sha256()
    inter = dataset.interactions[["user_id", "item_id"]].astype(str)
    h.update(pd.util.hash_pandas_object(inter, index=False).to_numpy().tobytes())
    items = dataset.items[["item_id", "title"]].astype(str)
    h.update(pd.util.hash_pandas_object(items, index=False).to_numpy().tobytes())
    return h.hexdigest()


def mining_settings_dict(settings: MiningSettings, backend: PairBackend) -> dict:
    """Everything that decides the pairs: query settings, backend name, model and decision options."""
    return {
        **asdict(settings),
        "prompt_version": PROMPT_VERSION,
        "backend": backend.name,
        "model": backend.model_id,
        "decision": backend.decision_settings(),
    }


def _timed_query(backend: PairBackend, q: PairQuery) -> tuple[dict, float]:
    """(backend record, seconds) for one query."""
    started = time.perf_counter()
    return backend.query(q), time.perf_counter() - started


def _run_backend(
    backend: PairBackend, pending: list[PairQuery], cache: ReplyCache, step: Callable[[], None]
) -> tuple[int, int]:
    """Ask the backend every pending query (a thread pool when it allows concurrency), caching each reply
    as it arrives; returns (successful calls, errors). Errors are not cached, so a rerun retries them."""
    ok = errors = 0

    def record(q: PairQuery, result: Callable[[], tuple[dict, float]]) -> None:
        nonlocal ok, errors
        try:
            rec, seconds = result()
        except BackendError as exc:
            errors += 1
            log.warning("user %s: backend error (not cached; a rerun retries it): %s", q.user_id, exc)
        else:
            ok += 1
            cache.append(
                reply_key(backend.name, backend.model_id, q.prompt_hash()),
                {
                    "backend": backend.name,
                    "model": backend.model_id,
                    "user_id": q.user_id,
                    "record": rec,
                    "seconds": round(seconds, 4),
                },
            )
        step()

    if backend.concurrency <= 1:
        for q in pending:
            record(q, functools.partial(_timed_query, backend, q))
        return ok, errors
    pool = ThreadPoolExecutor(backend.concurrency, thread_name_prefix=f"mine-{backend.name}")
    try:  # not `with`: its exit would wait for every queued query after a Ctrl-C
        futures: dict[Future, PairQuery] = {pool.submit(_timed_query, backend, q): q for q in pending}
        remaining = set(futures)
        while remaining:
            done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
            for fut in done:
                record(futures[fut], fut.result)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return ok, errors


def mine_pairs(
    dataset: Dataset,
    out: str | Path | None = None,
    backend: str | PairBackend = "smollm2",
    options: BackendOptions | None = None,
    settings: MiningSettings | None = None,
    replies_path: str | Path | None = None,
    progress: bool = True,
    progress_callback: ProgressCallback | None = None,
) -> MiningResult:
    """Ask `backend` one question per user, parse the replies strictly, write pairs.csv + pairs.json to `out`.

    Replies are cached in `replies_path` (default out/replies.jsonl), so Ctrl-C (KeyboardInterrupt,
    also raised from `progress_callback(done, total)`, counted in distinct prompts) loses nothing
    already answered; identical prompts (users with the same history) are asked once.
    """
    started = time.perf_counter()
    settings = settings or MiningSettings()
    be = get_backend(backend, options) if isinstance(backend, str) else backend
    if be.fallback:
        log.warning("backend %r is a FALLBACK (no LLM): pairs come from %s", be.name, be.model_id)
    if replies_path is None and out is None:
        raise ValueError("give `out` or `replies_path`: replies are cached on disk")
    replies_path = Path(replies_path) if replies_path is not None else Path(str(out)) / "replies.jsonl"  # out given
    queries, stats = build_queries(dataset, settings)
    log.info(
        "mine-pairs: %d queries (%d users, %d skipped without candidates) with %s (%s)",
        len(queries),
        stats["users"],
        stats["skipped_no_candidates"],
        be.name,
        be.model_id,
    )

    cache = ReplyCache(replies_path)
    keys = [reply_key(be.name, be.model_id, q.prompt_hash()) for q in queries]
    pending = list({k: q for q, k in zip(queries, keys) if cache.get(k) is None}.values())  # same prompt: asked once
    try:
        if pending:
            be.setup(pending)  # model load / title embeddings, before the bar so its rate and ETA are the queries'
        ask_started = time.perf_counter()
        n_prompts = len(set(keys))
        done = n_prompts - len(pending)
        with tqdm(
            total=n_prompts,
            initial=done,
            desc=f"mine-pairs ({be.name})",
            unit="query",
            disable=not progress,
            dynamic_ncols=True,
        ) as bar:

            def step() -> None:
                nonlocal done
                done += 1
                bar.update(1)
                if progress_callback is not None:
                    progress_callback(done, n_prompts)

            calls, errors = _run_backend(be, pending, cache, step)
    except KeyboardInterrupt:
        log.warning(
            "mine-pairs interrupted: %d replies are cached in %s; rerun the same command to resume",
            len(cache),
            replies_path,
        )
        raise
    finally:
        cache.close()
    ask_seconds = time.perf_counter() - ask_started

    titles = item_titles(dataset)
    known = set(titles)
    status_counts = dict.fromkeys(STATUSES, 0)
    rows, positions = [], [0] * settings.max_candidates
    for q, k in zip(queries, keys):
        rec = cache.get(k)
        if rec is None:
            continue
        try:
            reply = be.reply(rec["record"], q)
        except (KeyError, TypeError, ValueError, IndexError) as exc:  # a cached record of another shape: no answer
            log.warning(
                "user %s: unreadable cached reply (%s: %s); counted as unparseable", q.user_id, type(exc).__name__, exc
            )
            reply = None
        cand_ids = [c[0] for c in q.candidates]
        parsed = parse_reply(reply, cand_ids, q.target[0], known)
        status_counts[parsed.status] += 1
        if parsed.status == "accepted" and parsed.item_id is not None:
            positions[cand_ids.index(parsed.item_id)] += 1
            rows.append((q.target[0], titles[q.target[0]], parsed.item_id, titles[parsed.item_id], q.user_id))
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    n_answered = sum(status_counts.values())
    counts: dict[str, Any] = {
        "queries": len(queries),
        "answered": n_answered,
        **{k: status_counts[k] for k in ("accepted", "none", "unparseable", "off_list")},
        "self_pairs": status_counts["self_pair"],
        "errors": errors,
        "backend_calls": calls,
        "distinct_prompts": n_prompts,
        "cached_replies": n_prompts - len(pending),
        "users": stats["users"],
        "skipped_no_candidates": stats["skipped_no_candidates"],
        "seconds": round(time.perf_counter() - started, 2),
        "queries_per_s": round(calls / ask_seconds, 4) if calls and ask_seconds > 0 else None,
    }
    meta = {
        "backend": be.name,
        "model": be.model_id,
        "fallback": be.fallback,
        "settings": mining_settings_dict(settings, be),
        "dataset": dataset.name,
        "data_digest": dataset_digest(dataset),
        "counts": counts,
        "accepted_by_candidate_position": positions,
        "replies": str(replies_path),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if out is not None:
        out = Path(out)
        csv = pairs.to_csv(index=False)
        # pairs.json names the csv it describes: a kill between the two writes then reads as not current
        meta["csv_sha256"] = hashlib.sha256(csv.encode("utf-8")).hexdigest()
        atomic_write_text(out / "pairs.csv", csv)
        atomic_write_text(out / "pairs.json", json.dumps(meta, indent=2, ensure_ascii=False))
    log.info("mine-pairs: %s", ", ".join(f"{k}={v}" for k, v in counts.items()))
    return MiningResult(pairs, counts, meta, out)


def pairs_current(out: str | Path, dataset: Dataset, settings: MiningSettings, backend: PairBackend) -> bool:
    """True when out/pairs.json describes out/pairs.csv (by sha256), mined from this dataset with these settings."""
    out = Path(out)
    try:
        meta = json.loads((out / "pairs.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    try:
        csv_sha256 = hashlib.sha256((out / "pairs.csv").read_bytes()).hexdigest()
    except OSError:
        return False
    return (
        meta.get("csv_sha256") == csv_sha256
        and meta.get("settings") == mining_settings_dict(settings, backend)
        and meta.get("data_digest") == dataset_digest(dataset)
        and not meta["counts"].get("errors")
    )


def read_pairs(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """(pairs DataFrame with string ids, pairs.json metadata or {}) from a pairs.csv or its folder."""
    path = Path(path)
    csv = path / "pairs.csv" if path.is_dir() else path
    if not csv.is_file():
        raise ValueError(f"{csv}: no pairs file; run `python -m sicsrec mine-pairs` first")
    pairs = pd.read_csv(csv, dtype=str, keep_default_na=False)
    missing = {"target_id", "pair_id"} - set(pairs.columns)
    if missing:
        raise ValueError(f"{csv}: missing columns {sorted(missing)}")
    meta_path = csv.with_name("pairs.json")
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    return pairs, meta
