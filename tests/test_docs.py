"""The documentation: README.md stays short and keeps its Quick start; every link in README.md and docs/*.md
resolves inside the repository; nothing in the repository points at files outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_BYTES = 10_240
# External http(s) links allowed in the docs (none so far: the docs describe the code in this repository).
EXTERNAL_LINKS: set[str] = set()
# The README's first Quick-start command, byte for byte (the second is read from .ci/run, which runs it).
DEMO_COMMAND = ("python -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e . && "
                ".venv/bin/kdbench run benchmarks/suites/quickstart.yaml")

INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"(?m)^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")


def prose(text: str) -> str:
    """The markdown without fenced code blocks and inline code spans (what is there is not a link)."""
    text = re.sub(r"(?ms)^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", "", text)
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text, flags=re.S)


def links(page: Path) -> list[str]:
    text = prose(page.read_text(encoding="utf-8"))
    return INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for heading in re.findall(r"(?m)^#{1,6}\s+(.+?)\s*#*\s*$", prose(page.read_text(encoding="utf-8"))):
        base, n = slug(heading), 0
        while (name := base if n == 0 else f"{base}-{n}") in found:
            n += 1
        found.add(name)
    return found


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_link_resolves_inside_the_repository(page):
    problems = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, flags=re.I):  # a scheme: http, https, mailto, file…
            if target not in EXTERNAL_LINKS:
                problems.append(f"{target}: external link not in EXTERNAL_LINKS")
            continue
        path, _, anchor = target.partition("#")
        if path.startswith(("/", "\\", "~")):
            problems.append(f"{target}: an absolute path")
            continue
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{target}: leaves the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{target}: no heading #{anchor} in {page_id(resolved)}")
    assert not problems, f"{page_id(page)}:\n" + "\n".join(problems)


def test_the_docs_link_checker_sees_links_and_anchors():
    """The checker itself: links in prose are found, code is not a link, anchors follow GitHub's rule."""
    sample = "[a](docs/x.md#y) `[b](nope.md)`\n```\n[c](nope.md)\n```\n[d]: ../out.md\n"
    page = ROOT / "sample.md"
    text = prose(sample)
    assert INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text) == ["docs/x.md#y", "../out.md"]
    assert slug("Stores and their environment") == "stores-and-their-environment"
    assert slug("The `kdbench` command") == "the-kdbench-command"
    assert not page.exists()


def test_the_readme_is_at_most_10_kib():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"


def test_the_readme_keeps_both_quick_start_commands_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    marker = next(i for i, line in enumerate(ci) if "Quick-start command, verbatim" in line)
    test_command = ci[marker + 1]
    assert test_command.startswith("python -m venv .venv && ") and test_command.endswith("-m pytest")
    text = README.read_text(encoding="utf-8")
    quick = text[text.index("\n## Quick start\n"):]
    block = re.search(r"```bash\n(.*?)```", quick, flags=re.S).group(1).splitlines()
    assert block[:2] == [DEMO_COMMAND, test_command]


def test_every_docs_page_is_in_the_index_and_linked_from_the_readme():
    index = {Path(t).name for t in links(ROOT / "docs" / "index.md")}
    pages = {p.name for p in PAGES[1:]} - {"index.md"}
    assert pages <= index, f"docs/index.md does not list {sorted(pages - index)}"
    assert "docs/index.md" in links(README)


def test_the_results_page_documents_every_column_of_the_schema():
    from kdbench.results.schema import PLAN_SCHEMA, RESULT_SCHEMA

    text = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    missing = [n for n in [*RESULT_SCHEMA.names, *PLAN_SCHEMA.names] if f"`{n}`" not in text and f" {n}," not in text]
    assert not missing, f"docs/results.md does not document {missing}"


# Files that exist only outside the repository: nothing in it may point at them.
OUTSIDE = re.compile(r"\.\./shared|\b(?:DESIGN|METHODS|STYLE)\.md\b")
SKIP_DIRS = {".git", ".venv", ".cache", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache", "kdbench-store"}


def repository_files() -> list[Path]:
    """The files git tracks, plus untracked ones it does not ignore; without git, every file but build outputs."""
    try:
        done = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                              capture_output=True, check=True, timeout=60)
        return [ROOT / name for name in done.stdout.decode().split("\0") if name and (ROOT / name).is_file()]
    except (OSError, subprocess.SubprocessError):
        return [p for p in ROOT.rglob("*") if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts)
                and not p.relative_to(ROOT).parts[0].endswith(".egg-info")]


def test_nothing_in_the_repository_points_outside_it():
    me = Path(__file__).resolve()
    hits = []
    for path in repository_files():
        if path == me or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        hits += [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
                 if OUTSIDE.search(line)]
    assert not hits, "references to files outside the repository:\n" + "\n".join(hits)
