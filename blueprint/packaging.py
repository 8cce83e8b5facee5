"""`python -m blueprint package [--output FILE]`: the deployment zip for the SCF Python 3.10 runtime.

The runtime is CentOS 7 on x86_64 (glibc 2.17), so dependencies are manylinux2014 x86_64 wheels for CPython
3.10, whatever machine builds the zip. SCF sets PYTHONDONTWRITEBYTECODE, so every cold start would compile
the SDK's large `models.py` again: the zip carries `.pyc` files next to the sources, compiled with
`unchecked-hash` invalidation (valid whatever mtimes the zip round-trip leaves) -- only when this interpreter
is 3.10, since bytecode is only valid for the minor version that wrote it. Not part of the deployed function.
"""

from __future__ import annotations

import ast
import compileall
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEV_ONLY", "RUNTIME_PYTHON", "NetworkUnavailable", "Package", "PackagingError", "build", "build_zip",
           "dev_only", "function_modules"]

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PYTHON = (3, 10)
PLATFORM = "manylinux2014_x86_64"
# Local tools that the deployed function never needs (shipped anyway if the function path imports them); a
# package (blueprint.deploy) stands for all its modules.
DEV_ONLY = frozenset({"blueprint.localrun", "blueprint.devserver", "blueprint.packaging", "blueprint.deploy"})
# Directories and files that are never useful on the runtime.
_DROP_DIRS = frozenset({"__pycache__", "tests", "test"})
_DROP_SUFFIXES = (".pyc", ".pyo")
# Where SCF unpacks the code: compiled files name their sources there, so tracebacks read well.
RUNTIME_CODE_ROOT = "/var/user"
# Fixed timestamp for every zip entry, so the same inputs give the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# pip's words when it cannot reach the index (as opposed to a bad pin or a missing wheel).
_NETWORK_MARKERS = ("NewConnectionError", "Network is unreachable", "Temporary failure in name resolution",
                    "Name or service not known", "ConnectTimeoutError", "Connection refused", "ProxyError",
                    "Max retries exceeded", "Failed to establish a new connection", "ReadTimeoutError")


class PackagingError(Exception):
    """The package could not be built."""


class NetworkUnavailable(PackagingError):
    """pip could not reach the package index."""


@dataclass(frozen=True)
class Package:
    """What `build_zip` made."""

    path: Path
    zip_bytes: int
    unpacked_bytes: int
    files: int
    compiled: bool


def _imports(path: Path, package: str) -> set[str]:
    """Every `blueprint...` module a source file imports, anywhere in it (lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "blueprint" or name.startswith("blueprint.")}


def _module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def function_modules(root: Path = ROOT) -> set[str]:
    """The `blueprint` modules reachable from `handler.py` by imports (the function's path)."""
    seen: set[str] = set()
    todo = [("handler", root / "handler.py", "")]
    while todo:
        _, path, package = todo.pop()
        for name in _imports(path, package):
            parts = name.split(".")
            # Importing `a.b.c` runs `a` and `a.b` too.
            for i in range(1, len(parts) + 1):
                module = ".".join(parts[:i])
                found = _module_file(root, module)
                if module in seen or found is None:
                    continue
                seen.add(module)
                pkg = module if found.name == "__init__.py" else module.rpartition(".")[0]
                todo.append((module, found, pkg))
    return seen


def _pip_install(requirements: Path, target: Path) -> None:
    """Install the runtime's wheels (Linux x86_64, CPython 3.10) into `target`.

    Raises:
        NetworkUnavailable: pip could not reach the index.
        PackagingError: pip failed for another reason (its output is in the message).
    """
    version = "".join(str(v) for v in RUNTIME_PYTHON)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
               "--no-compile", "--retries", "1", "--timeout", "20", "--target", str(target),
               "--platform", PLATFORM, "--python-version", version, "--implementation", "cp",
               "--abi", f"cp{version}", "--only-binary=:all:", "-r", str(requirements)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 (fixed argv)
    if done.returncode == 0:
        return
    output = (done.stdout + done.stderr).strip()
    tail = "\n".join(output.splitlines()[-15:])
    if any(marker in output for marker in _NETWORK_MARKERS):
        raise NetworkUnavailable(f"pip could not reach the package index:\n{tail}")
    raise PackagingError(f"pip install failed (exit {done.returncode}):\n{tail}")


def _prune(site: Path) -> None:
    """Drop caches, tests and console scripts (`bin/`) pip left in the vendored tree."""
    if (site / "bin").is_dir():
        shutil.rmtree(site / "bin")
    for path in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name in _DROP_DIRS:
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in _DROP_SUFFIXES:
            path.unlink()


def dev_only(module: str) -> bool:
    """True for a local tool's module (one of DEV_ONLY, or inside a DEV_ONLY package)."""
    return any(module == name or module.startswith(name + ".") for name in DEV_ONLY)


def _copy_sources(root: Path, stage: Path) -> list[str]:
    """Copy handler.py and the blueprint package (minus dev-only modules the function never imports)."""
    used = function_modules(root)
    skipped = []
    shutil.copy2(root / "handler.py", stage / "handler.py")
    for source in sorted((root / "blueprint").rglob("*.py")):
        relative = source.relative_to(root)
        parts = relative.with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if (dev_only(module) and module not in used) or "__pycache__" in relative.parts:
            skipped.append(module)
            continue
        destination = stage / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    return skipped


def _compile(stage: Path) -> bool:
    """Write `unchecked-hash` .pyc files when this interpreter is the runtime's version; False otherwise."""
    if sys.version_info[:2] != RUNTIME_PYTHON:
        return False
    ok = compileall.compile_dir(str(stage), quiet=2, workers=0, stripdir=str(stage),
                                prependdir=RUNTIME_CODE_ROOT,
                                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    if not ok:
        raise PackagingError("compileall failed on the staged sources")
    return True


def _files(stage: Path) -> Iterable[Path]:
    return sorted(p for p in stage.rglob("*") if p.is_file())


def _write_zip(stage: Path, output: Path) -> tuple[int, int]:
    """A deterministic zip of the staged tree (handler.py at its root); returns (files, unpacked bytes)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    count = unpacked = 0
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in _files(stage):
            info = zipfile.ZipInfo(path.relative_to(stage).as_posix(), date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if path.suffix == ".so" else 0o644
            info.external_attr = (0o100000 | mode) << 16
            data = path.read_bytes()
            archive.writestr(info, data, compresslevel=9)
            count += 1
            unpacked += len(data)
    return count, unpacked


def build_zip(output: Path, *, root: Path = ROOT) -> Package:
    """Build the deployment zip at `output`.

    Raises:
        NetworkUnavailable: pip could not reach the package index.
        PackagingError: pip or compileall failed.
    """
    with tempfile.TemporaryDirectory(prefix="blueprint-package-") as tmp:
        stage = Path(tmp) / "stage"
        stage.mkdir()
        _pip_install(root / "requirements.txt", stage)
        _prune(stage)
        _copy_sources(root, stage)
        compiled = _compile(stage)
        files, unpacked = _write_zip(stage, output)
    return Package(path=output, zip_bytes=output.stat().st_size, unpacked_bytes=unpacked, files=files,
                   compiled=compiled)


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.2f} MiB ({size:,} bytes)"


def build(output: str) -> int:
    """Build the zip and print its sizes; returns the exit status (2: build failed, 3: no network)."""
    path = Path(output)
    try:
        package = build_zip(path)
    except NetworkUnavailable as err:
        sys.stderr.write(f"{err}\n")
        return 3
    except PackagingError as err:
        sys.stderr.write(f"{err}\n")
        return 2
    sys.stdout.write(f"wrote {package.path}\n  zipped:   {_mib(package.zip_bytes)}\n"
                     f"  unpacked: {_mib(package.unpacked_bytes)} in {package.files} files\n")
    if package.compiled:
        sys.stdout.write("  bytecode: .pyc compiled by Python 3.10 (unchecked-hash), next to the sources\n")
    else:
        sys.stdout.write(f"  bytecode: none (this is Python {sys.version_info[0]}.{sys.version_info[1]}; only "
                         "a 3.10 interpreter can write .pyc for the runtime): sources only, slower cold starts\n")
    if package.zip_bytes > 10 * 1024 * 1024:
        sys.stdout.write("  warning: over the 10 MiB target\n")
    return 0
