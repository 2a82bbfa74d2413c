"""Handing freed heap pages back to the operating system (glibc only; elsewhere a no-op).

Process-wide on purpose: whichever probe churned through memory, the pages it freed belong to
the one allocator of the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

__all__ = ["release_heap"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc: nothing to do


def release_heap() -> None:
    """Give the memory a table walk churned through back to the system.

    Decoding thousands of varbinds leaves glibc's heap with free pages it keeps by default;
    at a thousand nodes that is tens of MB of resident memory doing nothing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
