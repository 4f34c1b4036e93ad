"""docs/architecture.md's map of the code stays true both ways: every module and package it
names exists, and every module in llmtrain/ is in its layout block."""

from __future__ import annotations

import re

from conftest import REPO

PAGE = REPO / "docs" / "architecture.md"
ENTRY = re.compile(r"(?:\w[\w.]*\.py|\w[\w.-]*/)")


def layout(text: str) -> set[str]:
    """The paths the layout block names, e.g. "llmtrain/tasks/", "llmtrain/tasks/qa.py".

    The block is an indented tree: a line starts with one or more names (a directory ends in
    "/"), then its description; a name belongs to the nearest less indented directory above."""
    block = text.split("<!-- layout:start -->", 1)[1].split("<!-- layout:end -->", 1)[0]
    paths: set[str] = set()
    parents: list[tuple[int, str]] = []  # (indentation, path ending in "/")
    for line in block.splitlines():
        if not line.strip() or line.strip().startswith("```"):
            continue
        indent = len(line) - len(line.lstrip())
        while parents and parents[-1][0] >= indent:
            parents.pop()
        parent = parents[-1][1] if parents else ""
        for name in line.split():
            if not ENTRY.fullmatch(name):
                break  # the description starts
            paths.add(parent + name)
            if name.endswith("/"):
                parents.append((indent, parent + name))
    return paths


def test_the_layout_block_reads_as_a_tree():
    tree = "\n".join(
        [
            "```",
            "pkg/",
            "  a.py  b.py    two files",
            "  sub/          a package",
            "    c.py        reads x.py",
            "  d.py",
            "```",
        ]
    )
    text = f"<!-- layout:start -->\n{tree}\n<!-- layout:end -->"
    assert layout(text) == {"pkg/", "pkg/a.py", "pkg/b.py", "pkg/sub/", "pkg/sub/c.py", "pkg/d.py"}


def test_every_path_the_architecture_page_names_exists():
    text = PAGE.read_text()
    named = layout(text) | set(re.findall(r"\bllmtrain/[\w/]+\.py\b", text))
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"


def test_every_module_is_on_the_architecture_page():
    named = layout(PAGE.read_text())
    modules = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "llmtrain").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    unnamed = sorted(modules - named)
    assert not unnamed, f"docs/architecture.md's layout leaves out: {unnamed}"
