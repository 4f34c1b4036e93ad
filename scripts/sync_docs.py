"""Regenerate docs/configuration.md's option tables from the schema (llmtrain/config.py).

python scripts/sync_docs.py          # rewrite docs/configuration.md in place
python scripts/sync_docs.py --check  # exit 1 if docs/configuration.md is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from llmtrain.help import option_tables
from llmtrain.tasks import schemas

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
START, END = "<!-- options:start -->", "<!-- options:end -->"


def synced(text: str) -> str:
    """The page with everything between the markers replaced by the schema's tables."""
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{option_tables(schemas())}{END}{tail}"


def main() -> int:
    text = PAGE.read_text()
    new = synced(text)
    if "--check" in sys.argv:
        if new != text:
            print(f"{PAGE.name}'s option tables are out of date: run python scripts/sync_docs.py")
            return 1
        return 0
    PAGE.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
