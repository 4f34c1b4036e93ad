"""llmtrain.commands.generate on a finished run: greedy decoding is transformers' own, sampling
follows the seed; generate's and fill-mask's mistakes are config errors."""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

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
