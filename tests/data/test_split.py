"""Leave-one-out split and training windows on hand-made sequences."""

import pandas as pd
import pytest
import torch

from sicsrec.data.schema import DataError, Dataset, ValidationReport
from sicsrec.data.split import _windows, build_split


def _ds(seqs: dict[str, list[str]]) -> Dataset:
    rows = [(u, i, k) for u, s in seqs.items() for k, i in enumerate(s)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "order"])
    ids = sorted({i for s in seqs.values() for i in s}, key=int)
    items = pd.DataFrame({"item_id": ids, "title": ids, "text": ids, "category": "", "image_path": ""})
    return Dataset("hand", items, inter, ValidationReport())


def test_leave_one_out_on_a_hand_made_sequence():
    sp = build_split(_ds({"u1": ["10", "20", "30", "40", "50"], "u2": ["20", "10", "30"]}), max_len=50)
    assert list(sp.item_ids) == ["10", "20", "30", "40", "50"]  # numeric order -> indices 1..5
    # u1: train part 10,20,30 (idx 1,2,3) -> inputs [1,2], targets [2,3]; valid target 40, test target 50
    assert sp.train_inputs[0, :2].tolist() == [1, 2] and sp.train_targets[0, :2].tolist() == [2, 3]
    assert sp.train_targets[0, 2:].eq(0).all()
    assert sp.valid.history[0, :3].tolist() == [1, 2, 3] and sp.valid.targets[0] == 4
    assert sp.test.history[0, :4].tolist() == [1, 2, 3, 4] and sp.test.targets[0] == 5
    # u2 has a one-item training part: no training target, but valid and test queries
    assert sp.train_inputs.shape[0] == 1
    assert sp.valid.lengths.tolist() == [3, 1] and sp.test.lengths.tolist() == [4, 2]
    assert sp.valid.targets[1] == 1 and sp.test.targets[1] == 3  # u2: 20, 10 | valid 10 | test 30
    assert sp.n_train_targets == 2
    assert sp.item_counts.tolist() == [0, 1, 2, 1, 0, 0]  # training parts only


def test_histories_are_cut_to_max_len():
    seq = [str(i) for i in range(1, 13)]  # 12 items
    sp = build_split(_ds({"u": seq}), max_len=4, window_stride=2)
    assert sp.test.history[0].tolist() == [8, 9, 10, 11] and sp.test.targets[0] == 12
    assert sp.valid.history[0].tolist() == [7, 8, 9, 10] and sp.valid.targets[0] == 11


@pytest.mark.parametrize(
    "n,max_len,stride", [(30, 5, 2), (30, 5, 5), (12, 4, 1), (6, 5, 3), (51, 50, 25), (200, 50, 25)]
)
def test_windows_count_every_target_once_with_bounded_context(n, max_len, stride):
    seq = torch.arange(1, n + 1).numpy()
    windows = _windows(seq, max_len, stride)
    counted = sorted(int(t) for _, tgt in windows for t in tgt if t > 0)
    assert counted == list(range(2, n + 1))  # every item but the first is a target exactly once
    for inp, tgt in windows:
        assert len(inp) <= max_len
        for j, t in enumerate(tgt):
            if t > 0:
                assert inp[j] == t - 1  # the input just before the target is its predecessor
                context = j + 1
                assert context >= min(t - 1, max_len - stride)  # at least L - stride items of history


def test_prefix_rows_are_recboles_expansion():
    # u1's training part is items 1..10 (12 items, last two held out), u2's is 3,1,2
    seqs = {"u1": [str(i) for i in range(1, 13)], "u2": ["3", "1", "2", "4", "5"]}
    sp = build_split(_ds(seqs), max_len=4, rows="prefixes")
    rows = set()
    for inp, tgt, n in zip(sp.train_inputs.tolist(), sp.train_targets.tolist(), sp.train_lengths.tolist()):
        assert sum(t > 0 for t in tgt) == 1 and tgt[n - 1] > 0  # one target, at the last valid position
        assert all(x == 0 for x in inp[n:])
        rows.add((tuple(inp[:n]), tgt[n - 1]))
    expected = set()
    for part in ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [3, 1, 2]):  # RecBole: every prefix, its last 4 items
        expected |= {(tuple(part[max(0, t - 4) : t]), part[t]) for t in range(1, len(part))}
    assert rows == expected and len(rows) == sp.train_inputs.shape[0] == sp.n_train_targets == 11
    windows = build_split(_ds(seqs), max_len=4)
    assert windows.n_train_targets == sp.n_train_targets and windows.train_inputs.shape[0] < 11
    with pytest.raises(ValueError, match="rows must be one of"):
        build_split(_ds(seqs), rows="users")
    with pytest.raises(ValueError, match="does not apply to prefix rows"):
        build_split(_ds(seqs), max_len=4, window_stride=2, rows="prefixes")
    assert build_split(_ds(seqs), max_len=4, window_stride=1, rows="prefixes").n_train_targets == 11


def test_users_with_too_few_interactions_are_a_clear_error():
    with pytest.raises(DataError, match="fewer than 3"):
        build_split(_ds({"u": ["1", "2"]}))


def test_item_indices_sort_numeric_ids_numerically_and_others_as_text():
    from sicsrec.data.split import _id_sort_key

    ids = ["10", "9", "b", "²", "a", "100"]  # '²' passes str.isdigit but int() refuses it
    assert sorted(ids, key=_id_sort_key) == ["9", "10", "100", "a", "b", "²"]
