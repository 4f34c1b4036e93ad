"""Regenerate the README's config option tables from the schema (llmtrain/config.py).

python scripts/sync_readme.py          # rewrite README.md in place
python scripts/sync_readme.py --check  # exit 1 if README.md is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from llmtrain.config import option_tables

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- options:start -->", "<!-- options:end -->"


def synced(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{option_tables()}{END}{tail}"


def main() -> int:
    text = README.read_text()
    new = synced(text)
    if "--check" in sys.argv:
        if new != text:
            print("README.md's option tables are out of date: run python scripts/sync_readme.py")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
