"""The code to deploy: the zip `python -m blueprint package` builds (or one given), and its digest."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

from blueprint.deploy.models import Package
from blueprint.packaging import ROOT, build_zip

__all__ = ["MAX_CREATE_BYTES", "MAX_UPDATE_BYTES", "PackageError", "digest", "load_package", "make_package"]

# CreateFunction's Code.ZipFile takes a zip up to 50 MB, UpdateFunctionCode's ZipFile up to 20 MB (SDK models).
MAX_CREATE_BYTES = 50 * 1024 * 1024
MAX_UPDATE_BYTES = 20 * 1024 * 1024


class PackageError(Exception):
    """The zip cannot be deployed."""


def digest(path: Path) -> tuple[str, int]:
    """SHA-256 over the zip's entries (names; contents except .pyc) and the number of files.

    Raises:
        PackageError: not a zip file.
    """
    sha = hashlib.sha256()
    try:
        with zipfile.ZipFile(path) as archive:
            infos = sorted((i for i in archive.infolist() if not i.is_dir()), key=lambda i: i.filename)
            for info in infos:
                sha.update(info.filename.encode("utf-8") + b"\0")
                if not info.filename.endswith(".pyc"):  # compiled from the sources hashed here; bytes vary
                    sha.update(hashlib.sha256(archive.read(info)).digest())
    except (OSError, zipfile.BadZipFile) as err:
        raise PackageError(f"{path}: not a zip file ({err})") from None
    return sha.hexdigest(), len(infos)


def load_package(path: Path, handler: str) -> Package:
    """A zip built earlier (`--package FILE`), checked for the handler's file at its root.

    Raises:
        PackageError: missing, not a zip, too big, or without the handler's file.
    """
    if not path.is_file():
        raise PackageError(f"{path}: no such file (build it with `python -m blueprint package --output {path}`)")
    sha, files = digest(path)
    module = handler.rpartition(".")[0]
    with zipfile.ZipFile(path) as archive:
        if f"{module}.py" not in archive.namelist():
            raise PackageError(f"{path}: no {module}.py at the zip's root (the handler is {handler})")
    size = path.stat().st_size
    if size > MAX_CREATE_BYTES:
        raise PackageError(f"{path}: {size} bytes, over the API's {MAX_CREATE_BYTES}-byte limit for an inline zip")
    return Package(path=path, sha256=sha, size=size, files=files)


def make_package(directory: Path, handler: str) -> Package:
    """Build the zip into `directory` the way `python -m blueprint package` does.

    Raises:
        PackagingError: pip or compileall failed (NetworkUnavailable when the index cannot be reached).
        PackageError: the result cannot be deployed.
    """
    built = build_zip(directory / "blueprint-fn.zip", root=ROOT)
    return load_package(built.path, handler)
