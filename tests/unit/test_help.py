"""llmtrain.help for the plain commands: their help is their schema,
report's names its arguments."""

from __future__ import annotations

import pytest
from conftest import key_line


@pytest.mark.parametrize(
    ("command", "schema"), [("generate", "GenerateConfig"), ("fill-mask", "FillMaskConfig")]
)
def test_a_plain_commands_help_is_its_schema(command, schema):
    """generate's and fill-mask's keys, defaults and help come from their dataclasses."""
    from dataclasses import fields

    from llmtrain import config
    from llmtrain.help import plain_help

    out = plain_help(command)
    assert out.startswith(f"usage: llmtrain {command} RUN_DIR ")
    for f in fields(getattr(config, schema)):
        shown = "''" if f.default == "" else str(f.default)
        assert key_line(out, f.name).split()[1] == shown
        assert f.metadata["help"].split()[0] in key_line(out, f.name)
    assert all(len(line) <= 100 for line in out.splitlines())


def test_reports_help_names_its_arguments():
    from llmtrain.help import plain_help

    out = plain_help("report")
    assert out.startswith("usage: llmtrain report DIR") and "--out" in out and "status:" in out
