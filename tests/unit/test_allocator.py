"""streamfit.runtime.allocator: freed arrays' pages are reused instead of faulted in again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Allocates, touches and frees a 40 MiB array 20 times (above glibc's largest default mmap
# threshold, 32 MiB, so by default each one is a fresh mapping) and prints the minor page
# faults that took, after calling keep_freed_memory() or not.
PROGRAM = """
import resource, sys
import numpy as np
from streamfit.runtime.allocator import keep_freed_memory
if sys.argv[1] == "tuned":
    assert keep_freed_memory()
np.ones(40 << 17).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.ones(40 << 17).sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="the thresholds are glibc's",
)
def test_freed_arrays_are_reused_without_page_faults() -> None:
    def faults(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True
        )
        return int(done.stdout)

    default, tuned = faults("default"), faults("tuned")
    assert default >= 20  # every array on fresh pages (fewer faults than pages: huge pages)
    assert tuned < default / 10  # the heap's pages, reused
