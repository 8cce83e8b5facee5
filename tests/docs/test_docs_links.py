"""Issue 16, item 5: every reference in the repo resolves inside the repo.

Two checks over the files git tracks (so also over a fresh clone):
- in every Markdown file (README.md, docs/, emulator/, bench/), relative links and the repo paths the text
  names (`docs/deploy.md`, `deploy/cam-policy.json`, `tests/deploy/...`) exist, inside the repo; a link's
  `#anchor` names a heading of its file;
- no tracked text file (code, docstrings, --help texts, comments, tests) points at something a user of the
  repo does not have: a path of the machine it was written on (`/work/...`), a sibling checkout
  (`../shared`), or the team's private notes (`CONTRACT`, `reference §2.4`, `scf-platform.md`).
  A `§` is only fine next to a public standard (RFC, CloudEvents) or a URL.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEXT_SUFFIXES = {".py", ".md", ".yml", ".yaml", ".json", ".toml", ".txt", ".cfg", ".ini", ".sh", ""}
# Patterns that point outside the repo, and why each is wrong.
OUTSIDE = [
    (re.compile(r"/work/"), "a path of the machine this was written on"),
    (re.compile(r"\.\./shared"), "a checkout next to the repo"),
    (re.compile(r"\bCONTRACT\b"), "the team's private contract: cite README.md or docs/ instead"),
    (re.compile(r"\breference\s*§|§\s*[\d.]+[a-z]? of the reference"), "the team's private reference notes"),
    (re.compile(r"\b(?:scf-platform|lighthouse-api|STYLE)\.md\b"), "the team's private notes"),
    (re.compile(r"(?<![\w.$])/(?:root|home|Users)/[\w.]"), "a home directory of the machine this was written on"),
]
PUBLIC_SECTION = re.compile(r"RFC \d+|CloudEvents|https?://")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
# A repo path in prose or code spans: a top-level entry, then at least one more part.
PATH = re.compile(r"(?<![\w/.@:-])((?:\.ci|bench|blueprint|deploy|docs|emulator|events|scripts|tests)/[\w.*/-]*[\w*/])")
# `owner/repo `path``: a path in another repository (e.g. serverless-components/tencent-scf `docs/configure.md`).
OTHER_REPO = re.compile(r"[\w.-]+/[\w.-]+\s+`?$")


@cache
def tracked() -> list[Path]:
    """The files a clone would hold (tracked, plus new files not ignored); every file outside git."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,  # noqa: S607
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):  # a copy without .git (mutation runs): look at everything
        return [p for p in sorted(ROOT.rglob("*")) if p.is_file() and not _ignored(p)]
    return [ROOT / name for name in sorted(set(out.decode().split("\0"))) if name and (ROOT / name).is_file()]


def _ignored(path: Path) -> bool:
    parts = path.relative_to(ROOT).parts
    return any(part.startswith((".venv", ".git", ".mypy", ".ruff", ".pytest", ".hypothesis", "__pycache__",
                                "mutants", "dist", "build")) for part in parts)


def text_files() -> list[Path]:
    return [p for p in tracked() if p.suffix in TEXT_SUFFIXES and not p.name.startswith(".git")]


def markdown_files() -> list[Path]:
    return [p for p in tracked() if p.suffix == ".md"]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for heading in HEADING.findall(path.read_text(encoding="utf-8")):
        base = slug(heading)
        name, n = base, 0
        while name in found:
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def link_problems(path: Path, text: str, root: Path = ROOT) -> list[str]:
    problems = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.is_relative_to(root):
            problems.append(f"{target}: outside the repo")
        elif not linked.exists():
            problems.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{target}: no heading #{anchor} in {linked.relative_to(root)}")
    return problems


def path_problems(text: str, root: Path = ROOT) -> list[str]:
    problems = []
    for line in text.splitlines():
        for match in PATH.finditer(line):
            if OTHER_REPO.search(line[:match.start()]):
                continue
            name = match.group(1).rstrip("/.")
            if "*" in name:
                if not list(root.glob(name)):
                    problems.append(f"{name}: matches no file")
            elif not (root / name).exists():
                problems.append(f"{name}: no such file or directory")
    return problems


def test_the_checker_finds_what_it_should(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "deploy.md").write_text("# Deploy\n")
    (root / "deploy").mkdir()
    (root / "deploy" / "cam-policy.json").write_text("{}")
    page = root / "README.md"
    text = ("# Title\n[ok](#title) [bad](#nope) [gone](missing.md) [up](../outside.md) [web](https://x.example)\n"
            "[there](docs/deploy.md#deploy) [not there](docs/deploy.md#quota)\n"
            "see `docs/deploy.md`, docs/nothere.md, deploy/*.json and events/*.json, not serverless-components/"
            "tencent-scf `docs/configure.md`\n")
    page.write_text(text)
    assert link_problems(page, text, root) == ["#nope: no heading #nope in README.md", "missing.md: no such file",
                                               "../outside.md: outside the repo",
                                               "docs/deploy.md#quota: no heading #quota in docs/deploy.md"]
    assert path_problems(text, root) == ["docs/nothere.md: no such file or directory", "events/*.json: matches no file"]
    assert slug("TAT (automation agent, 2020-10-28)") == "tat-automation-agent-2020-10-28"
    for line in ("see CONTRACT §7", "/work/main/.venv/bin/python", "../shared/reference", "reference §2.4",
                 "(§1.4 of the reference)", "scf-platform.md", "/root/.venv/bin/python"):
        assert any(pattern.search(line) for pattern, _ in OUTSIDE), line
    assert not any(pattern.search("RFC 9110 §10.2.3, $HOME/.pyenv, the contract") for pattern, _ in OUTSIDE)


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_links_and_paths_resolve_inside_the_repo(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    problems = link_problems(path, text) + path_problems(text)
    assert not problems, f"{path.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_openapi_and_serverless_name_only_files_the_repo_has() -> None:
    problems = [f"{name}: {why}" for name in ("docs/openapi.yaml", "serverless.yml")
                for why in path_problems((ROOT / name).read_text(encoding="utf-8"))]
    assert not problems, problems


def test_no_text_points_outside_the_repo() -> None:
    problems = []
    for path in text_files():
        if path == Path(__file__):
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(lines, 1):
            problems += [f"{path.relative_to(ROOT)}:{number}: {why}: {line.strip()[:120]}"
                         for pattern, why in OUTSIDE if pattern.search(line)]
            if "§" in line and not PUBLIC_SECTION.search(line):
                problems.append(f"{path.relative_to(ROOT)}:{number}: a § that names no public source: "
                                f"{line.strip()[:120]}")
    assert not problems, "\n".join(problems)
