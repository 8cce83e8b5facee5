"""The deployment zip, built once per test session and shared by the xdist workers (a file lock guards it).

Building it downloads the runtime's wheels (pip's cache makes a rebuild take seconds); tests that need it skip
when the package index cannot be reached.
"""

from __future__ import annotations

import fcntl
import os
import zipfile
from pathlib import Path

import pytest

from blueprint.packaging import NetworkUnavailable, Package, build_zip

UNREACHABLE = "index-unreachable.txt"


def _shared_dir(factory: pytest.TempPathFactory) -> Path:
    """A directory every worker of this session sees (the session's base temp, above the workers' own)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _describe(path: Path) -> Package:
    with zipfile.ZipFile(path) as archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
    return Package(path=path, zip_bytes=path.stat().st_size, unpacked_bytes=sum(i.file_size for i in infos),
                   files=len(infos), compiled=any(i.filename.endswith(".pyc") for i in infos))


@pytest.fixture(scope="session")
def built_package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    """`python -m blueprint package`'s zip, built by whichever worker gets here first."""
    shared = _shared_dir(tmp_path_factory)
    target = shared / "blueprint-fn.zip"
    with (shared / "blueprint-fn.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (shared / UNREACHABLE).exists():
            pytest.skip((shared / UNREACHABLE).read_text(encoding="utf-8"))
        if not target.exists():
            try:
                build_zip(target)
            except NetworkUnavailable as err:
                reason = f"the package index is unreachable, cannot download the runtime's wheels: {err}"
                (shared / UNREACHABLE).write_text(reason, encoding="utf-8")
                pytest.skip(reason)
    return _describe(target)
