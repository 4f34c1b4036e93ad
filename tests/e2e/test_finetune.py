"""Fine-tuning and evaluation end to end: every GLUE layout, custom files, metrics, reloading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FT_TINY, cli_summary, run_cli
from glue_fixtures import tsv_dir, write_glue
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from llmtrain.tasks.glue import GLUE

TASKS = list(GLUE)
FT = [
    *FT_TINY,
    "trainer.max_steps=6",
    "trainer.batch_size=8",
    "trainer.log_every=2",
    "trainer.eval_every=3",
    "trainer.save_every=3",
]
SCORERS = {
    "accuracy": accuracy_score,
    "f1": f1_score,
    "mcc": matthews_corrcoef,
    "pearson": lambda y, p: pearsonr(p, y)[0],
    "spearman": lambda y, p: spearmanr(p, y)[0],
}


@pytest.fixture(scope="session")
def glue_dir(tmp_path_factory) -> Path:
    return write_glue(tmp_path_factory.mktemp("glue"))


@pytest.fixture(scope="session")
def glue_sweep(glue_dir, cache_dir, tmp_path_factory) -> Path:
    """All nine tasks fine-tuned in one multirun, each from its own GLUE-layout directory."""
    sweep = tmp_path_factory.mktemp("glue-sweep")
    args = ["finetune", "-m", f"task={','.join(TASKS)}", f"task.data_dir={glue_dir}/${{task.name}}"]
    result = run_cli([*args, *FT, f"hydra.sweep.dir={sweep}"], cache_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


def _job(sweep: Path, task: str) -> Path:
    return sweep / str(TASKS.index(task))


def _read_predictions(path: Path, labels: tuple[str, ...]) -> tuple[list, list]:
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]

    def value(text: str):
        return float(text) if not labels else (labels.index(text) if text in labels else int(text))

    return [value(r[1]) for r in rows], [value(r[2]) for r in rows]


@pytest.mark.parametrize("task", TASKS)
def test_glue_task_end_to_end(glue_sweep, task):
    run = _job(glue_sweep, task)
    summary = json.loads((run / "summary.json").read_text())
    spec = GLUE[task]
    assert summary["task"] == task and summary["main_metric"] == spec.metrics[0]
    assert summary["steps"] == 6 and summary["best_step"] in (0, 3, 6)
    # Every reported metric equals scikit-learn / scipy on the written predictions.
    splits = {"validation": ""} | ({"mismatched": "mismatched_"} if task == "mnli" else {})
    for split, prefix in splits.items():
        preds, refs = _read_predictions(run / "predictions" / f"{split}.tsv", spec.labels)
        assert len(preds) == 16
        for metric in spec.metrics:
            expected = SCORERS[metric](np.array(refs), np.array(preds))
            assert summary[f"best_{prefix}{metric}"] == pytest.approx(expected, abs=1e-9), (
                split,
                metric,
            )
    test = (run / "predictions" / "test.tsv").read_text().splitlines()
    assert test[0] == "index\tprediction" and len(test) == 17
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [0, 3, 6] and all(spec.metrics[0] in r for r in evals)


def test_final_is_the_best_model_and_reloads_with_transformers(glue_sweep, glue_dir):
    run = _job(glue_sweep, "sst2")
    summary = json.loads((run / "summary.json").read_text())
    model = AutoModelForSequenceClassification.from_pretrained(run / "final")
    tokenizer = AutoTokenizer.from_pretrained(run / "final")
    assert model.config.id2label == {0: "negative", 1: "positive"}
    lines = (glue_dir / "sst2" / "dev.tsv").read_text().splitlines()[1:]
    sentences, labels = zip(*(line.split("\t") for line in lines), strict=True)
    batch = tokenizer(list(sentences), padding=True, return_tensors="pt")
    preds = model(**batch).logits.argmax(-1).tolist()
    assert accuracy_score([int(x) for x in labels], preds) == pytest.approx(
        summary["best_accuracy"]
    )
    out = pipeline("text-classification", model=str(run / "final"))(list(sentences[:2]))
    assert {o["label"] for o in out} <= {"negative", "positive"}


def test_evaluate_reproduces_a_finetune(glue_sweep, glue_dir, cache_dir, tmp_path):
    run = _job(glue_sweep, "mrpc")
    summary = json.loads((run / "summary.json").read_text())
    out = tmp_path / "eval"
    args = [
        "evaluate",
        "task=mrpc",
        f"task.data_dir={glue_dir}/mrpc",
        f"model.from_run={run}",
        "trainer.batch_size=8",
    ]
    evaluated = cli_summary(args, out, cache_dir)
    assert evaluated["f1"] == pytest.approx(summary["best_f1"]) and evaluated[
        "accuracy"
    ] == pytest.approx(summary["best_accuracy"])
    assert (out / "predictions" / "validation.tsv").read_text() == (
        run / "predictions" / "validation.tsv"
    ).read_text()


def test_evaluate_gives_a_language_models_perplexity(mlm_run, cache_dir, tmp_path):
    from conftest import TINY

    out = tmp_path / "eval"
    same_data = [
        a
        for a in TINY
        if a.startswith(("trainer.block_size", "trainer.eval_batches", "trainer.batch_size"))
    ]
    result = run_cli(
        ["evaluate", f"model.from_run={mlm_run}", *same_data, f"hydra.run.dir={out}"], cache_dir
    )
    assert result.returncode == 0, result.stderr
    evaluated = json.loads((out / "summary.json").read_text())
    trained = json.loads((mlm_run / "summary.json").read_text())
    assert evaluated["objective"] == "mlm"
    assert evaluated["loss"] == pytest.approx(trained["loss"], rel=1e-6)
    assert evaluated["perplexity"] == pytest.approx(trained["perplexity"], rel=1e-6)


def _pairs(path: Path, n: int, offset: int = 0) -> None:
    rows = [
        {
            "premise": f"a cat sits number {i}",
            "hypothesis": f"the cat is {['here', 'away'][i % 2]}",
            "label": ["yes", "no"][i % 2],
        }
        for i in range(offset, offset + n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_custom_pair_classification(cache_dir, tmp_path):
    _pairs(tmp_path / "train.jsonl", 40)
    _pairs(tmp_path / "dev.jsonl", 12, offset=40)
    run = tmp_path / "run"
    args = [
        "finetune",
        "task=custom",
        f"task.train_file={tmp_path / 'train.jsonl'}",
        f"task.validation_file={tmp_path / 'dev.jsonl'}",
        "task.text_fields=[premise,hypothesis]",
        *FT,
    ]
    summary = cli_summary(args, run, cache_dir)
    config = json.loads((run / "final" / "config.json").read_text())
    assert config["id2label"] == {"0": "no", "1": "yes"}  # inferred, in sorted order
    preds, refs = _read_predictions(run / "predictions" / "validation.tsv", ("no", "yes"))
    assert summary["best_f1"] == pytest.approx(f1_score(refs, preds))
    assert summary["best_accuracy"] == pytest.approx(accuracy_score(refs, preds))


def test_custom_regression(cache_dir, tmp_path):
    for name, n in (("train.csv", 40), ("dev.csv", 12)):
        lines = ["text,score"] + [
            f'"sentence {i}, which is {["fine", "poor"][i % 2]}",{(i % 2) * 3.5 + 0.25}'
            for i in range(n)
        ]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    args = [
        "finetune",
        "task=custom",
        f"task.train_file={tmp_path / 'train.csv'}",
        f"task.validation_file={tmp_path / 'dev.csv'}",
        "task.label_field=score",
        "task.num_labels=1",
        *FT,
    ]
    summary = cli_summary(args, run, cache_dir)
    assert summary["main_metric"] == "pearson"
    assert json.loads((run / "final" / "config.json").read_text())["problem_type"] == "regression"
    preds, refs = _read_predictions(run / "predictions" / "validation.tsv", ())
    assert refs[:2] == [0.25, 3.75]
    assert summary["best_pearson"] == pytest.approx(pearsonr(preds, refs)[0], abs=1e-9)
    assert summary["best_spearman"] == pytest.approx(spearmanr(preds, refs)[0], abs=1e-9)


def test_early_stopping_ends_a_run_that_stops_improving(glue_dir, cache_dir, tmp_path):
    run = tmp_path / "run"
    args = [
        "finetune",
        "task=sst2",
        f"task.data_dir={glue_dir}/sst2",
        *FT,
        "trainer.lr=1e-12",
        "trainer.early_stopping=1",
    ]
    result = run_cli([*args, f"hydra.run.dir={run}"], cache_dir)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["best_step"] == 0
    assert "early stopping at step 3" in result.stdout


def test_evaluate_refuses_a_head_that_was_never_trained(
    mlm_run, glue_sweep, glue_dir, cache_dir, tmp_path
):
    """A pretraining run has no classifier, a classifier no language-model head: scores of
    either would come from randomly initialised weights."""
    task = ["task=sst2", f"task.data_dir={glue_dir / 'sst2'}", f"model.from_run={mlm_run}"]
    classifier = f"model.from_run={_job(glue_sweep, 'sst2')}"
    for args, holds, lacks in [
        (task, "BertForMaskedLM", "classification"),
        (["data=stdlib_docs", classifier], "BertForSequenceClassification", "masked language"),
    ]:
        result = run_cli(["evaluate", *args, f"hydra.run.dir={tmp_path / 'run'}"], cache_dir)
        assert result.returncode == 2
        [line] = result.stderr.strip().splitlines()
        assert holds in line and f"no trained {lacks}" in line
        assert not (tmp_path / "run").exists()


def test_bad_data_is_one_line_from_the_cli(cache_dir, tmp_path):
    d = tsv_dir(tmp_path, "sst2", b"sentence\tlabel\nfine .\t1\nbad .\tmaybe\n")
    result = run_cli(
        ["finetune", "task=sst2", f"task.data_dir={d}", f"hydra.run.dir={tmp_path / 'run'}"],
        cache_dir,
    )
    assert result.returncode == 2
    where = d / "train.tsv"
    assert result.stderr.strip().splitlines() == [
        f"llmtrain finetune: error: {where}:3: "
        "label 'maybe' is not in the label set (negative, positive)"
    ]
