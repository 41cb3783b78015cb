"""Keeping freed memory (streams/memory.py): applied on glibc, a no-op when switched off."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from streams.memory import keep_freed_memory
from streams.settings import RunConfig


def test_zero_leaves_the_allocator_alone() -> None:
    assert keep_freed_memory(0) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_settings_and_keeps_freed_blocks() -> None:
    # in a child, so this test process keeps its allocator as it was
    code = """
import numpy as np, resource
from streams.memory import keep_freed_memory
assert keep_freed_memory(256)
for _ in range(20):  # a 32 MB block, touched and freed again and again: the same pages each time
    a = np.ones(4 << 20)
    del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = np.ones(4 << 20)
    del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) < 1000, out.stdout  # without it: ~10,000 here (numpy asks for huge pages)


def test_the_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="malloc_keep_mb"):
        RunConfig.from_mapping({"processor": {"malloc_keep_mb": -1}})
