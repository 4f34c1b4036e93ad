"""llmtrain.models on its own: where weights come from, the checks that name the key at fault,
and which model class each family, objective and head builds (tiny models, no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import (
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

from llmtrain import models
from llmtrain.config import Family, ModelConfig, ObjectiveName
from llmtrain.errors import ConfigError

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "list", "of", "a", "return"]
SMALL = {
    "hidden_size": 16,
    "num_layers": 1,
    "num_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 32,
}


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {word: i for i, word in enumerate(WORDS)}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="[UNK]")),
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        eos_token="[SEP]",
    )


def small(family: Family = Family.bert, **given) -> ModelConfig:
    return ModelConfig(family=family, **{**SMALL, **given})


def saved(model: torch.nn.Module, directory: Path) -> Path:
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory, tokenizer) -> Path:
    """A finished run's layout, <run>/final/, holding a masked LM."""
    run = tmp_path_factory.mktemp("mlm_run")
    model = models.build_model(small(), ObjectiveName.mlm, tokenizer)
    saved(model, run / "final")
    return run


@pytest.fixture(scope="module")
def clm_dir(tmp_path_factory, tokenizer) -> Path:
    run = tmp_path_factory.mktemp("clm_run")
    model = models.build_model(small(Family.gpt2), ObjectiveName.clm, tokenizer)
    saved(model, run / "final")
    return run


# --- source: where existing weights come from


def test_a_fresh_model_has_no_source():
    assert models.source(ModelConfig()) is None


@pytest.mark.parametrize("given", ["run", "final"])
def test_from_run_is_the_runs_final_model(mlm_dir, given):
    """model.from_run takes the run directory or its final/ alike."""
    path = mlm_dir if given == "run" else mlm_dir / "final"
    assert models.source(ModelConfig(from_run=str(path))) == str(mlm_dir / "final")


def test_from_run_without_a_finished_model_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=rf"model.from_run={tmp_path}: no finished model"):
        models.source(ModelConfig(from_run=str(tmp_path)))


def test_from_run_and_name_or_path_together_are_refused(mlm_dir):
    cfg = ModelConfig(from_run=str(mlm_dir), name_or_path=str(mlm_dir / "final"))
    with pytest.raises(ConfigError, match="model.from_run or model.name_or_path, not both"):
        models.source(cfg)


def test_name_or_path_of_a_model_directory(mlm_dir):
    path = str(mlm_dir / "final")
    assert models.source(ModelConfig(name_or_path=path)) == path


def test_a_hub_name_is_passed_on_unchecked():
    """`name` and `org/name` may be hub ids: nothing is looked up before loading."""
    for name in ("bert-base-uncased", "google/bert_uncased_L-2_H-128_A-2"):
        assert models.source(ModelConfig(name_or_path=name)) == name


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such directory"),
        (lambda p: (p / "weights.bin").touch() or p / "weights.bin", "is a file"),
        (lambda p: p, "no config.json in"),
    ],
)
def test_a_bad_local_name_or_path_names_the_key(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ConfigError, match=rf"model.name_or_path={path}: {message}"):
        models.source(ModelConfig(name_or_path=str(path)))


# --- checks of the settings alone


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"hidden_size": 0}, "model.hidden_size=0 must be positive"),
        ({"num_layers": -1}, "model.num_layers=-1 must be positive"),
        ({"num_heads": 0}, "model.num_heads=0 must be positive"),
        ({"intermediate_size": 0}, "model.intermediate_size=0 must be positive"),
        ({"max_position_embeddings": 0}, "model.max_position_embeddings=0 must be positive"),
        ({"dropout": 1.0}, r"model.dropout=1.0 must be in \[0, 1\)"),
        ({"num_heads": 3}, "model.hidden_size=16 is not divisible by model.num_heads=3"),
    ],
)
def test_check_config_names_the_key(given, message):
    with pytest.raises(ConfigError, match=message):
        models.check_config(small(**given))


def test_check_config_passes_a_sound_model():
    models.check_config(small())


def test_check_length_of_a_fresh_model():
    models.check_length(small(), 32, "trainer.block_size")
    with pytest.raises(ConfigError) as e:
        models.check_length(small(), 33, "trainer.block_size")
    assert str(e.value) == (
        "trainer.block_size=33 is longer than the 32 positions the model takes "
        "(model.max_position_embeddings)"
    )


def test_check_length_of_saved_weights_reads_their_config(mlm_dir):
    """The saved model's positions count, not model.max_position_embeddings."""
    cfg = ModelConfig(from_run=str(mlm_dir), max_position_embeddings=512)
    with pytest.raises(ConfigError, match="task.max_length=64 is longer than the 32 positions"):
        models.check_length(cfg, 64, "task.max_length")


@pytest.mark.parametrize("head", ["tag", "qa"])
def test_encoder_heads_refuse_a_decoder(head, clm_dir):
    with pytest.raises(ConfigError, match="needs an encoder .*model.family=gpt2"):
        models.check_head(small(Family.gpt2), head)
    with pytest.raises(ConfigError, match="needs an encoder .*is a 'gpt2' model"):
        models.check_head(ModelConfig(from_run=str(clm_dir)), head)
    models.check_head(small(), head)


def test_classification_takes_either_family():
    for family in Family:
        models.check_head(small(family), "classify")


# --- building: the class each family and objective gives


@pytest.mark.parametrize(
    ("family", "objective", "cls"),
    [
        (Family.bert, ObjectiveName.mlm, BertForMaskedLM),
        (Family.gpt2, ObjectiveName.clm, GPT2LMHeadModel),
        (Family.bert, ObjectiveName.mlm_nsp, BertForPreTraining),
        (Family.bert, ObjectiveName.mlm_sop, BertForPreTraining),
    ],
)
def test_build_model_fresh(family, objective, cls, tokenizer):
    model = models.build_model(small(family), objective, tokenizer)
    assert type(model) is cls
    assert model.config.vocab_size == len(tokenizer)
    assert models.max_positions(model) == SMALL["max_position_embeddings"]


@pytest.mark.parametrize(
    ("family", "objective"),
    [(Family.gpt2, ObjectiveName.mlm), (Family.bert, ObjectiveName.clm)],
)
def test_build_model_refuses_the_wrong_family(family, objective, tokenizer):
    with pytest.raises(ConfigError, match=f"objective={objective.value} needs .*{family.value}"):
        models.build_model(small(family), objective, tokenizer)


def test_build_model_from_a_run(mlm_dir, tokenizer):
    model = models.build_model(ModelConfig(from_run=str(mlm_dir)), ObjectiveName.mlm, tokenizer)
    assert type(model) is BertForMaskedLM and model.dtype == torch.float32


def test_build_model_refuses_a_tokenizer_larger_than_the_embeddings(mlm_dir, tokenizer):
    bigger = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer)
    bigger.add_tokens(["extra"])
    with pytest.raises(ConfigError, match="the tokenizer has 11 tokens but the model .* only 10"):
        models.build_model(ModelConfig(from_run=str(mlm_dir)), ObjectiveName.mlm, bigger)


@pytest.mark.parametrize(
    ("family", "head", "cls"),
    [
        (Family.bert, "classify", BertForSequenceClassification),
        (Family.gpt2, "classify", GPT2ForSequenceClassification),
        (Family.bert, "tag", BertForTokenClassification),
        (Family.bert, "qa", BertForQuestionAnswering),
    ],
)
def test_build_head_fresh(family, head, cls, tokenizer):
    assert type(models.build_head(small(family), tokenizer, head)) is cls


def test_a_classifier_keeps_its_label_names(tokenizer):
    model = models.build_classifier(small(), tokenizer, ["negative", "positive"])
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert model.config.problem_type == "single_label_classification"


def test_a_classifier_without_labels_is_a_regression(tokenizer):
    model = models.build_classifier(small(Family.gpt2), tokenizer, [])
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"
    assert model.config.pad_token_id == tokenizer.pad_token_id  # GPT-2 finds the last token


def test_a_classifier_on_a_pretrained_encoder(mlm_dir, tokenizer):
    cfg = ModelConfig(from_run=str(mlm_dir))
    model = models.build_classifier(cfg, tokenizer, ["a", "b", "c"])
    assert type(model) is BertForSequenceClassification and model.config.num_labels == 3


def test_require_trained_refuses_an_untrained_head(mlm_dir):
    final = str(mlm_dir / "final")
    models.require_trained(final, "mlm")
    with pytest.raises(ConfigError, match="no trained classification head"):
        models.require_trained(final, "classify")


def test_run_model_points_to_the_command_for_the_run(mlm_dir, clm_dir):
    model, path = models.run_model(str(mlm_dir), ObjectiveName.mlm)
    assert type(model) is BertForMaskedLM and not model.training and path.endswith("final")
    with pytest.raises(ConfigError, match="holds a GPT2LMHeadModel model: use llmtrain generate"):
        models.run_model(str(clm_dir), ObjectiveName.mlm)


def test_run_model_of_an_unfinished_run(tmp_path):
    with pytest.raises(ConfigError, match="is not a finished llmtrain run"):
        models.run_model(str(tmp_path), ObjectiveName.clm)


# --- size


def test_count_parameters_counts_tied_weights_once(tokenizer):
    a, b = torch.nn.Linear(4, 4, bias=False), torch.nn.Linear(4, 4)
    b.weight = a.weight
    assert models.count_parameters(torch.nn.Sequential(a, b)) == 16 + 4
    gpt2 = models.build_model(small(Family.gpt2), ObjectiveName.clm, tokenizer)
    # the LM head is the token embedding itself
    assert models.count_parameters(gpt2) == sum(p.numel() for p in gpt2.transformer.parameters())
