"""Runs inside RecBole's own venv (bench/recbole_parity.py starts it): SASRec on pre-split atomic
files, or RecBole's Hit/NDCG on a given score matrix. Prints one JSON line. RecBole's files are
never edited: incompatibilities are patched here at import time."""

import json
import sys
import time

import numpy as np
import torch

for alias, real in (
    ("float_", np.float64),
    ("complex_", np.complex128),
    ("unicode_", np.str_),
    ("float", float),
    ("int", int),
    ("bool", bool),
):
    if (
        alias not in np.__dict__
    ):  # removed from numpy (np.float etc. in 1.24, np.float_ in 2.0); RecBole 1.2.1 uses them
        setattr(np, alias, real)
_torch_load = torch.load
torch.load = lambda *a, **k: _torch_load(
    *a, **{**k, "weights_only": False}
)  # RecBole's own checkpoints pickle its Config

from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.evaluator.metrics import NDCG, Hit  # noqa: E402
from recbole.utils import get_model, get_trainer, init_seed  # noqa: E402


def train(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    config = Config(model="SASRec", dataset=job["dataset"], config_dict=job["config"])
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    epoch_times = []
    fit_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch
    progress = open("recbole_progress.log", "a", buffering=1)  # noqa: SIM115 - open for this job process's lifetime

    def timed_epoch(*a, **k):
        t = time.time()
        out = fit_epoch(*a, **k)
        epoch_times.append(time.time() - t)
        progress.write(f"epoch {len(epoch_times)} train {epoch_times[-1]:.1f} s loss {float(out):.4f}\n")
        return out

    curve = []  # with job["test_curve"]: valid and test metrics after every epoch (diagnosis only)

    def logged_valid(*a, **k):
        score, result = valid_epoch(*a, **k)
        progress.write(f"epoch {len(epoch_times)} valid hit@10 {float(score):.4f}\n")
        if job.get("test_curve"):
            test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
            curve.append({"epoch": len(epoch_times), "valid": dict(result), "test": dict(test)})
            progress.write(f"epoch {len(epoch_times)} test hit@10 {test['hit@10']:.4f} ndcg@10 {test['ndcg@10']:.4f}\n")
        return score, result

    trainer._train_epoch, trainer._valid_epoch = timed_epoch, logged_valid
    t0 = time.time()
    _best_valid_score, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    seconds = time.time() - t0
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    # The best weights and RecBole's item-token order, so the caller can run them through its own model.
    np.savez(
        "recbole_weights.npz",
        tokens=np.array(dataset.field2id_token["item_id"]),
        **{k: v.cpu().numpy() for k, v in model.state_dict().items()},
    )
    return {
        "valid": dict(best_valid),
        "test": dict(test),
        "epochs": len(epoch_times),
        "seconds": seconds,
        "epoch_seconds": epoch_times,
        "train_rows": len(train_data._dataset),
        "best_epoch": len(epoch_times) - trainer.cur_step,
        "curve": curve,
    }


def metrics(job: dict) -> dict:
    data = np.load(job["scores"])
    scores, targets = torch.from_numpy(data["scores"]), torch.from_numpy(data["targets"])
    config = {"topk": [5, 10], "metric_decimal_place": 10}
    topk = torch.topk(scores, 10, dim=1).indices
    pos_index = (topk == targets[:, None]).numpy()
    pos_len = np.ones(len(targets), dtype=np.int64)
    hit = Hit(config).metric_info(pos_index)
    ndcg = NDCG(config).metric_info(pos_index, pos_len)
    return {f"hr@{k}": float(hit[:, k - 1].mean()) for k in (5, 10)} | {
        f"ndcg@{k}": float(ndcg[:, k - 1].mean()) for k in (5, 10)
    }


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    print("RESULT " + json.dumps({"train": train, "metrics": metrics}[job["kind"]](job), default=float))
