"""Supervised fine-tuning rows for the SFT tests: a prompt/response pair and a chat per fruit,
written as JSON Lines."""

from __future__ import annotations

import json
from pathlib import Path

COLOURS = {
    "apple": "red",
    "banana": "yellow",
    "lime": "green",
    "plum": "purple",
    "orange": "orange",
    "cherry": "red",
    "grape": "green",
    "lemon": "yellow",
    "kiwi": "brown",
    "berry": "blue",
}


def sft_rows() -> list[dict]:
    """Per fruit in COLOURS: a prompt/response row, then a conversation row."""
    rows = []
    for fruit, colour in COLOURS.items():
        rows.append(
            {"prompt": f"What colour is a {fruit}?\n", "response": f"A {fruit} is {colour}."}
        )
        chat = [
            {"role": "user", "content": f"Colour of {fruit}?"},
            {"role": "assistant", "content": colour},
        ]
        rows.append({"messages": chat})
    return rows


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
