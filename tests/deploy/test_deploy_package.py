"""`python -m blueprint package`: the SCF zip (needs the package index; skipped when it cannot be reached)."""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

import pytest

from blueprint.packaging import DEV_ONLY, Package, dev_only, function_modules

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def package(built_package: Package) -> Package:
    """The session's zip (tests/deploy/conftest.py builds it once for every worker)."""
    return built_package


def test_zip_contents(package: Package) -> None:
    with zipfile.ZipFile(package.path) as archive:
        names = archive.namelist()
        assert archive.testzip() is None
    assert "handler.py" in names and "blueprint/app.py" in names and "blueprint/sinks/cmq.py" in names
    assert any(re.fullmatch(r"pydantic_core/_pydantic_core\.cpython-310-x86_64-linux-gnu\.so", n) for n in names)
    assert any(n.startswith("orjson/") and n.endswith("cpython-310-x86_64-linux-gnu.so") for n in names)
    assert any(n.startswith("tencentcloud/lighthouse/v20200324/") for n in names)
    for banned in ("tests/", "emulator/", "bench/", "docs/", "events/", "bin/"):
        assert not any(n.startswith(banned) for n in names), banned
    assert not any("/tests/" in n or "/test/" in n for n in names)
    for module in DEV_ONLY:
        assert f"{module.replace('.', '/')}.py" not in names
    assert not any(n.startswith("blueprint/deploy/") for n in names), "the deploy tool is not part of the function"
    pycs = [n for n in names if n.endswith(".pyc")]
    if sys.version_info[:2] == (3, 10):
        assert "__pycache__/handler.cpython-310.pyc" in names
        assert all(".cpython-310." in n and "/__pycache__/" in f"/{n}" for n in pycs)
    else:
        assert not pycs


def test_zip_size(package: Package) -> None:
    assert package.zip_bytes < LIMIT, f"{package.zip_bytes} bytes"
    assert package.zip_bytes == package.path.stat().st_size
    assert package.unpacked_bytes > package.zip_bytes


def test_dev_modules_are_off_the_function_path() -> None:
    used = function_modules(ROOT)
    assert {"blueprint.app", "blueprint.http", "blueprint.sinks"} <= used
    assert not used & DEV_ONLY
    assert not [m for m in used if dev_only(m)], "handler.py reaches a local tool (blueprint.deploy...)"
    assert dev_only("blueprint.deploy.plan") and not dev_only("blueprint.deployed")
