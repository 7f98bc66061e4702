"""release_memory gives fragmented heap pages back to the OS (what keeps long training runs' RSS flat)."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from sicsrec.utils import release_memory


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_blocks_below_a_live_one_are_returned() -> None:
    first = torch.ones(1 << 20)
    del first  # 4 MB freed from mmap: glibc raises its mmap threshold, so the later blocks come from the heap
    blocks = [torch.ones(3 << 18) for _ in range(200)]  # 200 x 3 MB on the heap, pages touched
    keep = blocks[-1]  # the top block stays alive, so free()'s own top-of-heap trim cannot release the rest
    del blocks
    before = _rss_mb()
    assert release_memory()
    assert _rss_mb() < before - 300, "malloc_trim released less than half of the ~600 MB freed below the live block"
    assert keep.sum().item() == keep.numel()
