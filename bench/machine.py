"""The machine a run happened on: CPU, cores, Python, and the versions of the packages that matter."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("pydantic", "pydantic_core", "orjson", "requests", "tencentcloud-sdk-python-common",
            "tencentcloud-sdk-python-lighthouse")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or what the platform module knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
        ("Python", f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"),
        ("Packages", ", ".join(versions)),
    ]
