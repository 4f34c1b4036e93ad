"""llmtrain.commands.fill_mask on a finished MLM run: agrees with transformers'
fill-mask pipeline."""

from __future__ import annotations

from transformers import pipeline

from llmtrain.commands import fill_mask


def test_fill_mask_agrees_with_the_pipeline(mlm_run, capsys):
    text = "return the [MASK] of the list."
    fill_mask.main([str(mlm_run), f"text={text}", "top_k=3"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("mask 1: ") and lines[1].startswith("filled: ")
    guesses = lines[0].removeprefix("mask 1: ").split(" · ")
    expected = pipeline("fill-mask", model=str(mlm_run / "final"), top_k=3)(text)
    assert [g.rsplit(" ", 1)[0] for g in guesses] == [p["token_str"] for p in expected]
    for guess, p in zip(guesses, expected, strict=True):
        assert abs(float(guess.rsplit(" ", 1)[1]) - p["score"]) < 1e-3
    assert expected[0]["token_str"] in lines[1]
