"""The GLUE benchmark: its nine tasks (fields, labels, metrics, file layout) and readers for GLUE's
own TSV files (task.data_dir) and the hub dataset nyu-mll/glue; both give a `TaskData`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from llmtrain.config import GLUE_TASKS
from llmtrain.data.files import read_tsv
from llmtrain.errors import ConfigError, DataError
from llmtrain.tasks import limit
from llmtrain.tasks.labelled_files import TaskData, label_id, no_label, rows_to_dataset


@dataclass(frozen=True)
class GlueSpec:
    hub_fields: tuple[str, ...]  # text columns of the hub dataset (glue/<task>)
    tsv_fields: tuple[str | int, ...]  # text columns of GLUE's TSV files: header names or indices
    tsv_label: str | int  # label column of the TSV files
    labels: tuple[str, ...]  # class names in the hub's id order; () for regression
    metrics: tuple[str, ...]  # the first is the main metric (best-checkpoint selection)
    header: bool = True
    named_labels: bool = False  # the TSV files write labels as names (else as ids)
    eval_splits: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {"validation": ("validation", "dev.tsv")}
    )  # our split name: (hub split, TSV file)
    test: tuple[str, str] = ("test", "test.tsv")
    directory: str = ""  # the task's directory in GLUE's distribution (CoLA, SST-2, …)
    # summary.json keys (less best_) averaged into GLUE's official score for the task
    score: tuple[str, ...] = ("accuracy",)

    def files(self) -> dict[str, str]:
        """Our split name: the TSV file it is read from (test files are optional)."""
        return {"train": "train.tsv", **{k: v[1] for k, v in self.eval_splits.items()}}


_PAIR = ("sentence1", "sentence2")
# A spec for each of config.GLUE_TASKS (the one list of GLUE's names, kept where the schema can
# read it without datasets), in its order.
_SPECS = (
    GlueSpec(
        ("sentence",),
        (3,),
        1,
        ("unacceptable", "acceptable"),
        ("mcc", "accuracy"),
        header=False,
        directory="CoLA",
        score=("mcc",),
    ),
    GlueSpec(
        ("sentence",),
        ("sentence",),
        "label",
        ("negative", "positive"),
        ("accuracy",),
        directory="SST-2",
    ),
    GlueSpec(
        _PAIR,
        ("#1 String", "#2 String"),
        "Quality",
        ("not_equivalent", "equivalent"),
        ("f1", "accuracy"),
        directory="MRPC",
        score=("f1", "accuracy"),
    ),
    GlueSpec(
        ("question1", "question2"),
        ("question1", "question2"),
        "is_duplicate",
        ("not_duplicate", "duplicate"),
        ("f1", "accuracy"),
        directory="QQP",
        score=("f1", "accuracy"),
    ),
    GlueSpec(
        _PAIR,
        _PAIR,
        "score",
        (),
        ("pearson", "spearman"),
        directory="STS-B",
        score=("pearson", "spearman"),
    ),
    GlueSpec(
        ("premise", "hypothesis"),
        _PAIR,
        "gold_label",
        ("entailment", "neutral", "contradiction"),
        ("accuracy",),
        named_labels=True,
        eval_splits={
            "validation": ("validation_matched", "dev_matched.tsv"),
            "mismatched": ("validation_mismatched", "dev_mismatched.tsv"),
        },
        test=("test_matched", "test_matched.tsv"),
        directory="MNLI",
        score=("accuracy", "mismatched_accuracy"),
    ),
    GlueSpec(
        ("question", "sentence"),
        ("question", "sentence"),
        "label",
        ("entailment", "not_entailment"),
        ("accuracy",),
        named_labels=True,
        directory="QNLI",
    ),
    GlueSpec(
        _PAIR,
        _PAIR,
        "label",
        ("entailment", "not_entailment"),
        ("accuracy",),
        named_labels=True,
        directory="RTE",
    ),
    GlueSpec(
        _PAIR, _PAIR, "label", ("not_entailment", "entailment"), ("accuracy",), directory="WNLI"
    ),
)
GLUE: dict[str, GlueSpec] = dict(zip(GLUE_TASKS, _SPECS, strict=True))


def read_glue(cfg: Any, cache_dir: Path, model_labels: list[str] | None) -> TaskData:
    """A GLUE task's splits; `model_labels`, the class names of a model being evaluated, must be
    the task's."""
    spec = GLUE[cfg.name]
    # Case aside (hub models say NEGATIVE, POSITIVE): other names or another order would map
    # the model's predictions to the wrong classes.
    if model_labels and [n.casefold() for n in model_labels] != [n.casefold() for n in spec.labels]:
        raise ConfigError(
            f"the model's labels ({', '.join(model_labels)}) are not task={cfg.name}'s "
            f"({', '.join(spec.labels) or 'a score: regression'}): evaluate it on its own task"
        )
    reader = _glue_tsv if cfg.data_dir else _glue_hub
    splits = limit(reader(cfg, spec, cache_dir), cfg.max_train_examples)
    pair = len(spec.hub_fields) == 2
    return TaskData(splits, list(spec.labels), list(spec.metrics), pair, spec.named_labels)


def _glue_tsv(cfg: Any, spec: GlueSpec, cache_dir: Path) -> dict[str, datasets.Dataset]:
    root = Path(cfg.data_dir).expanduser()
    if not root.is_dir():
        raise ConfigError(f"task.data_dir={root} is not a directory")
    files = spec.files()
    if (root / spec.test[1]).is_file():
        files["test"] = spec.test[1]
    splits = {}
    for split, name in files.items():
        path = root / name
        test = split == "test"
        names, rows = read_tsv(path, header=spec.header or test)  # test files have headers
        fields = spec.tsv_fields if (spec.header or not test) else ("sentence",)
        cols = [_column(c, names, path) for c in fields]
        label_col = None if test else _column(spec.tsv_label, names, path)
        index_col = names.index("index") if test and names and "index" in names else None
        out = []
        for number, values in rows:
            where = f"{path}:{number}"
            needed = max([*cols, label_col or 0, index_col or 0])
            if len(values) <= needed:
                raise DataError(f"{where}: {len(values)} columns, expected at least {needed + 1}")
            row = {"index": int(values[index_col]) if index_col is not None else len(out)}
            row["text_a"] = values[cols[0]]
            if len(cols) == 2:
                row["text_b"] = values[cols[1]]
            row["label"] = (
                no_label(spec.labels) if test else label_id(values[label_col], spec.labels, where)
            )
            out.append(row)
        splits[split] = rows_to_dataset(out, len(cols) == 2)
    return splits


def _column(col: str | int, names: list[str] | None, path: Path) -> int:
    if isinstance(col, int):
        return col
    if names is None or col not in names:
        raise DataError(f"{path}: no column '{col}' in the header ({', '.join(names or [])})")
    return names.index(col)


def _glue_hub(cfg: Any, spec: GlueSpec, cache_dir: Path) -> dict[str, datasets.Dataset]:
    try:
        hub = datasets.load_dataset("nyu-mll/glue", cfg.name, cache_dir=str(cache_dir / "datasets"))
    except Exception as e:  # offline, or not found: the message says which
        raise ConfigError(
            f"task={cfg.name}: cannot load GLUE from the hub ({type(e).__name__}: {e}); "
            "give task.data_dir with GLUE's TSV files"
        ) from e
    wanted = {
        "train": "train",
        **{k: v[0] for k, v in spec.eval_splits.items()},
        "test": spec.test[0],
    }
    splits = {}
    for split, hub_split in wanted.items():
        if hub_split not in hub:
            continue
        ds = hub[hub_split]
        labelled = split != "test"

        def convert(row: dict, i: int, labelled: bool = labelled) -> dict:
            out = {"index": row.get("idx", i), "text_a": row[spec.hub_fields[0]]}
            if len(spec.hub_fields) == 2:
                out["text_b"] = row[spec.hub_fields[1]]
            out["label"] = row["label"] if labelled else no_label(spec.labels)
            return out

        splits[split] = ds.map(convert, with_indices=True, remove_columns=ds.column_names)
    return splits
