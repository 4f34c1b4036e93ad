"""What a user does with a finished run: generate (CLM), fill-mask (MLM), and a tokenizer
trained on its own."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, run_cli
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

from llmtrain.commands import fill_mask, generate
from llmtrain.errors import ConfigError


def test_greedy_generation_is_transformers_own(clm_run, capsys):
    generate.main([str(clm_run), "prompt=Return the", "temperature=0", "max_new_tokens=8"])
    printed = capsys.readouterr().out.removesuffix("\n")  # the text may end in newlines
    final = str(clm_run / "final")
    tokenizer = AutoTokenizer.from_pretrained(final)
    model = AutoModelForCausalLM.from_pretrained(final)
    ids = tokenizer("Return the", return_tensors="pt")["input_ids"]
    out = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert printed == tokenizer.decode(out[0], skip_special_tokens=True)
    assert printed.startswith("Return the") and len(printed) > len("Return the")


def test_sampling_follows_the_seed(clm_run, capsys):
    def sample(seed: int) -> list[str]:
        args = ["prompt=def", "max_new_tokens=12", "num_samples=2", f"seed={seed}", "top_k=0"]
        generate.main([str(clm_run), *args])
        return capsys.readouterr().out.strip().split("\n---\n")

    first = sample(1)
    assert len(first) == 2 and all(s.startswith("def") for s in first)
    assert sample(1) == first and sample(2) != first


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


@pytest.mark.parametrize(
    ("command", "run", "args", "message"),
    [
        (generate, "mlm_run", ["prompt=x"], "a BertForMaskedLM model: use llmtrain fill-mask"),
        (fill_mask, "clm_run", ["text=a [MASK]"], "a GPT2LMHeadModel model: use llmtrain generate"),
        (fill_mask, "mlm_run", ["text=no mask here"], "text has no [MASK] to fill"),
        (generate, "clm_run", ["prompt=x", "max_new_tokens=5000"], "the model's 512 positions"),
        (generate, "clm_run", ["promt=x"], "unknown option 'promt' (options: prompt,"),
        (generate, "clm_run", ["prompt=x", "top_p=0"], "top_p=0.0 must be in (0, 1]"),
    ],
)
def test_inference_mistakes_are_config_errors(command, run, args, message, request):
    with pytest.raises(ConfigError) as error:
        command.main([str(request.getfixturevalue(run)), *args])
    assert message in str(error.value)


def test_not_a_run_directory_is_one_line(tmp_path, cache_dir):
    result = run_cli(["generate", str(tmp_path), "prompt=hello"], cache_dir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"llmtrain generate: error: {tmp_path} is not a finished llmtrain run: "
        f"no model in {tmp_path / 'final'}"
    ]


def test_tokenizer_train_saves_the_tokenizer_pretrain_trains(mlm_run, cache_dir, tmp_path):
    settings = [a for a in TINY if a.startswith("tokenizer.")]
    run_dir = tmp_path / "tok"
    result = run_cli(["tokenizer", "train", *settings, f"hydra.run.dir={run_dir}"], cache_dir)
    assert result.returncode == 0, result.stderr
    assert f"tokenizer: {run_dir / 'tokenizer'}" in result.stdout
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    pretrained = AutoTokenizer.from_pretrained(mlm_run / "final")
    assert len(tokenizer) == 2000 and tokenizer.get_vocab() == pretrained.get_vocab()
    ids = tokenizer("Return the list.")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "return the list."
    assert torch.tensor(ids)[0].item() == tokenizer.cls_token_id
