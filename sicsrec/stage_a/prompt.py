"""The pair-mining question: the prompt text and `PairQuery`, shared by the backends (llm) and the miner (pairs)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

PROMPT_VERSION = 1  # bump when the prompt text changes (it is part of every reply's cache key anyway)
NONE_ANSWER = "-1"

SYSTEM_PROMPT = "You are a semantic discriminator for a recommender system. You compare item titles."
INSTRUCTION = (
    "A user interacted with the target item and with the candidate items below. Choose the ONE candidate "
    "whose content is most semantically similar to the target item. If no candidate is similar, answer -1."
)
OUTPUT_FORMAT = (
    "Answer with exactly one line in the format id-title, where id is the number before the dash of the "
    "chosen candidate, or answer -1 if no candidate is similar. Do not explain."
)


@dataclass(frozen=True)
class PairQuery:
    """One user's question: the target (id, title) and the candidates [(id, title), ...] in history order."""

    user_id: str
    target: tuple[str, str]
    candidates: tuple[tuple[str, str], ...]

    def messages(self) -> list[dict[str, str]]:
        """Chat messages: instruction, the target's title, candidates as `id-title`, the output format."""
        lines = "\n".join(f"{iid}-{title}" for iid, title in self.candidates)
        user = f"{INSTRUCTION}\n\nTarget item: {self.target[1]}\n\nCandidates (id-title):\n{lines}\n\n{OUTPUT_FORMAT}"
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def options(self) -> list[str]:
        """Every well-formed answer: each candidate's `id-title`, then `-1` (last)."""
        return [f"{iid}-{title}" for iid, title in self.candidates] + [NONE_ANSWER]

    def prompt_hash(self) -> str:
        """sha256 of the canonical JSON of the messages: the prompt part of a reply's cache key."""
        blob = json.dumps(self.messages(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()
