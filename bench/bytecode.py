"""Did a process load its modules from current bytecode? Checked in the cold children after they answered.

A source module whose `.pyc` is missing or out of date is compiled at import (and, under SCF's
PYTHONDONTWRITEBYTECODE, on every cold start), which is the difference between a shipped package and an
edited work tree.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

HEADER = 16  # magic, flags, source mtime, source size (PEP 552)


def is_stale(module: Any) -> bool:
    """True when `module` came from a .py file whose cached bytecode is missing or does not match it."""
    spec = getattr(module, "__spec__", None)
    source, cached = getattr(spec, "origin", None), getattr(spec, "cached", None)
    if not isinstance(source, str) or not source.endswith(".py") or not isinstance(cached, str):
        return False
    try:
        with open(cached, "rb") as f:
            head = f.read(HEADER)
        st = os.stat(source)
    except OSError:
        return True
    if len(head) < HEADER or head[:4] != importlib.util.MAGIC_NUMBER:
        return True
    if int.from_bytes(head[4:8], "little") & 1:
        return False  # hash-based .pyc: checked (or trusted) by the import system itself
    mtime, size = int.from_bytes(head[8:12], "little"), int.from_bytes(head[12:16], "little")
    return mtime != int(st.st_mtime) & 0xFFFFFFFF or size != st.st_size & 0xFFFFFFFF


def stale_modules() -> list[str]:
    """Names of the loaded modules that were (or would have been) compiled from source."""
    return sorted(name for name, module in list(sys.modules.items()) if is_stale(module))
