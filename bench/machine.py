"""The machine a run happened on: CPU, cores, load, Python, and the versions of the packages that matter.

The report names no path outside the project: the interpreter is shown by its last path components and
whether it runs in a virtualenv (the full path is printed on the console only).
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("pydantic", "pydantic_core", "orjson", "requests", "tencentcloud-sdk-python-common",
            "tencentcloud-sdk-python-lighthouse", "tencentcloud-sdk-python-scf")
ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or what the platform module knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def interpreter() -> str:
    """`…/.venv/bin/python (virtualenv; CPython 3.10.13, GCC 12.2.0)`: which Python, without its absolute path."""
    exe = Path(sys.executable)
    try:
        shown = "./" + str(exe.relative_to(ROOT))
    except ValueError:
        shown = "…/" + "/".join(exe.parts[-3:])
    kind = "virtualenv" if sys.prefix != sys.base_prefix else "no virtualenv"
    return (f"`{shown}` ({kind}; {platform.python_implementation()} {platform.python_version()}, "
            f"{platform.python_compiler()})")


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def describe() -> list[tuple[str, str]]:
    """(what, value) pairs for the report."""
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return [
        ("CPU", cpu_model()),
        ("Cores", f"{os.cpu_count()} logical" + (f", {len(cores)} usable" if cores is not None else "")),
        ("OS", platform.platform()),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Interpreter", interpreter()),
        ("Packages", ", ".join(versions)),
    ]
