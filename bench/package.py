"""Deployment package size: `python -m blueprint package` (when it exists) vs the full SDK's figures."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from bench.common import MIB, ROOT, Config, Section

# The full SDK, every product in one wheel: tencentcloud-sdk-python 3.1.195 from PyPI
# (https://pypi.org/project/tencentcloud-sdk-python/3.1.195/), its wheel measured, unpacked and pip-installed.
FULL_SDK = {"wheel": 18_754_456, "unpacked": 171_868_642, "installed": 405_499_995}


def build(output: Path) -> subprocess.CompletedProcess[str]:
    """Run the project's packaging command."""
    return subprocess.run([sys.executable, "-m", "blueprint", "package", "--output", str(output)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)


def run(config: Config, *, packager: str = "blueprint.packaging") -> list[Section]:
    """The package section (says "pending" while the packaging module does not exist)."""
    section = Section("package", "Deployment package size", ["Artifact", "Zip", "Unpacked", "Files"])
    if importlib.util.find_spec(packager) is None:
        section.rows.append(["`python -m blueprint package`", "pending", "pending", "-"])
        section.notes.append("blueprint/packaging.py does not exist yet; this row fills in once it does.")
        section.summary.append(["Package size", "pending", f"{FULL_SDK['wheel'] / MIB:.1f} MiB (full SDK wheel)",
                                "-", "(context)", "-"])
        return [section]
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "blueprint-fn.zip"
        proc = build(output)
        if proc.returncode != 0 or not output.exists():
            section.rows.append(["`python -m blueprint package`", "failed", "-", "-"])
            section.notes.append(f"packaging failed (exit {proc.returncode}): {proc.stderr[-500:]!r}")
            return [section]
        with zipfile.ZipFile(output) as archive:
            infos = archive.infolist()
        zipped, unpacked = output.stat().st_size, sum(i.file_size for i in infos)
    section.rows += [
        ["Function package (`python -m blueprint package`)", f"{zipped / MIB:.2f} MiB", f"{unpacked / MIB:.2f} MiB",
         str(len(infos))],
        ["Full `tencentcloud-sdk-python` 3.1.195 (PyPI wheel, measured)", f"{FULL_SDK['wheel'] / MIB:.1f} MiB (wheel)",
         f"{FULL_SDK['unpacked'] / MIB:.1f} MiB ({FULL_SDK['installed'] / MIB:.0f} MiB installed with .pyc)",
         "1,840 (3,678 installed)"],
    ]
    section.summary.append(["Package size (zip)", f"{zipped / MIB:.2f} MiB", f"{FULL_SDK['wheel'] / MIB:.1f} MiB",
                            f"{zipped / FULL_SDK['wheel']:.3f}x", "(context)", "-"])
    return [section]
