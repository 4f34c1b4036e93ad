"""Labelled files for classification (`task=custom`): .csv, .tsv (quoting off), .jsonl or
.parquet, one or two text fields and a label (or a score: regression); and `TaskData`, what
every classification reader (these files, GLUE's) returns.

A split is rows `{"index", "text_a"[, "text_b"], "label"}` with labels as class ids (or floats
for regression; IGNORE / NaN where a split has no labels, as GLUE's test files). Readers name
file and row when a row is unusable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from llmtrain.data.files import read_records
from llmtrain.errors import ConfigError, DataError
from llmtrain.tasks import limit
from llmtrain.train.contract import IGNORE


@dataclass
class TaskData:
    splits: dict[
        str, datasets.Dataset
    ]  # "train", "validation", maybe more eval splits, maybe "test"
    labels: list[str]  # class names by id; [] for regression
    metrics: list[str]  # the first is the main metric
    pair: bool  # two text segments per example
    named_labels: bool = True  # prediction files write label names (else class ids)

    @property
    def regression(self) -> bool:
        return not self.labels

    @property
    def eval_splits(self) -> list[str]:
        return [s for s in self.splits if s not in ("train", "test")]

    def label_text(self, value: int | float) -> str:
        """A label as the data writes it: a name, a class id, or a score (exact repr)."""
        if self.regression:
            return repr(float(value))
        return self.labels[int(value)] if self.named_labels else str(int(value))

    def predictions_tsv(self, split: str, rows: list[tuple[int, Any, Any]]) -> str:
        """GLUE's submission layout, `index<TAB>prediction`, plus the gold label where known."""
        labelled = split != "test"
        lines = ["index\tprediction" + ("\tlabel" if labelled else "")]
        for index, pred, ref in rows:
            cells = [str(index), self.label_text(pred)] + (
                [self.label_text(ref)] if labelled else []
            )
            lines.append("\t".join(cells))
        return "\n".join(lines) + "\n"


def rows_to_dataset(rows: list[dict], pair: bool) -> datasets.Dataset:
    columns = ["index", "text_a", *(["text_b"] if pair else []), "label"]
    return datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in columns})


def label_id(raw: str, labels: tuple[str, ...] | list[str], where: str) -> int | float:
    """A class id from a label written as its name or its id; a float for regression."""
    raw = raw.strip()
    if not labels:
        try:
            return float(raw)
        except ValueError:
            raise DataError(f"{where}: label '{raw}' is not a number (regression task)") from None
    if raw in labels:
        return list(labels).index(raw)
    if raw.lstrip("-").isdigit() and 0 <= int(raw) < len(labels):
        return int(raw)
    raise DataError(f"{where}: label '{raw}' is not in the label set ({', '.join(labels)})")


def no_label(labels: tuple | list) -> int | float:
    return IGNORE if labels else math.nan


def read_custom(cfg: Any, training: bool, model_labels: list[str] | None) -> TaskData:
    if not 1 <= len(cfg.text_fields) <= 2:
        raise ConfigError(f"task.text_fields={list(cfg.text_fields)}: give one or two fields")
    regression = cfg.num_labels == 1
    labels = _custom_labels(cfg, model_labels)
    infer = not regression and not labels  # from the training file
    _check_custom_files(cfg, training, infer)
    files = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}
    if not (training or infer):
        del files["train"]  # evaluation scores the other splits
    raw = {split: read_records(Path(f).expanduser()) for split, f in files.items() if f}
    if infer:  # sorted, a fixed order; a row without a label is reported below
        path, records = raw["train"]
        field = cfg.label_field
        labels = sorted({str(r[field]).strip() for _, r in records if _has_label(r, field)})
    splits = {
        split: _custom_split(path, records, cfg, labels, split != "test")
        for split, (path, records) in raw.items()
    }
    if cfg.num_labels is not None and not regression and cfg.num_labels != len(labels):
        raise ConfigError(
            f"task.num_labels={cfg.num_labels} but the label set has {len(labels)}: {labels}"
        )
    metrics = (
        ["pearson", "spearman"]
        if regression
        else (["f1", "accuracy"] if len(labels) == 2 else ["accuracy"])
    )
    return TaskData(
        limit(splits, cfg.max_train_examples), labels, metrics, len(cfg.text_fields) == 2
    )


def _custom_labels(cfg: Any, model_labels: list[str] | None) -> list[str]:
    """The class names: those of the model being evaluated (task.labels must agree), else
    task.labels; [] for regression, or when they are to be read from the training file."""
    if cfg.num_labels == 1:
        if model_labels:
            raise ConfigError(
                f"task.num_labels=1 (regression), but the model classifies into "
                f"{', '.join(model_labels)}"
            )
        return []
    if model_labels and cfg.labels and list(cfg.labels) != model_labels:
        raise ConfigError(
            f"task.labels=[{','.join(cfg.labels)}] differ from the model's labels "
            f"[{','.join(model_labels)}] (in id order): leave task.labels out"
        )
    return list(model_labels or cfg.labels)


def _check_custom_files(cfg: Any, training: bool, infer: bool) -> None:
    if training and not (cfg.train_file and cfg.validation_file):
        raise ConfigError("task=custom needs task.train_file and task.validation_file")
    if not cfg.validation_file:
        raise ConfigError("task=custom needs task.validation_file")
    if infer and not cfg.train_file:
        raise ConfigError(
            "task=custom: the model names no labels (LABEL_0, LABEL_1, …): give task.labels in "
            "the model's id order or task.train_file to read them from (task.num_labels=1 for "
            "a regression model)"
        )


def _custom_split(
    path: Path, records: list[tuple[int, dict]], cfg: Any, labels: list[str], required: bool
) -> datasets.Dataset:
    """One custom file's rows; labels are read where `required` (train, validation), else
    (test) only when every row has one."""
    labelled = required or all(_has_label(rec, cfg.label_field) for _, rec in records)
    out = []
    for number, rec in records:
        row = {"index": len(out)}
        for key, name in zip(("text_a", "text_b"), cfg.text_fields, strict=False):
            row[key] = _value(rec, name, "text_fields", path, number)
        if labelled:
            label = _value(rec, cfg.label_field, "label_field", path, number)
            row["label"] = label_id(label, labels, f"{path}:{number}")
        else:
            row["label"] = no_label(labels)
        out.append(row)
    return rows_to_dataset(out, len(cfg.text_fields) == 2)


def _has_label(rec: dict, field: str) -> bool:
    return rec.get(field) is not None and bool(str(rec[field]).strip())


def _value(rec: dict, name: str, key: str, path: Path, number: int) -> str:
    """Column `name` (setting task.`key`) of row `number` as text: a column the file lacks, an
    empty cell or a blank label is a DataError (a blank text is still an input)."""
    what = "label" if key == "label_field" else "text"
    if name not in rec:
        raise DataError(
            f"{path}:{number}: no {what} field '{name}' (task.{key}); {_columns_found(rec, path)}"
        )
    if rec[name] is None or (what == "label" and not _has_label(rec, name)):
        raise DataError(f"{path}:{number}: no {what} in column '{name}' (task.{key})")
    return str(rec[name])


def _columns_found(rec: dict, path: Path) -> str:
    """A row's columns, and what a header row that is not one looks like."""
    names = [str(name) for name in rec if name is not None]  # None: cells past the header's
    found = f"columns found: {', '.join(map(repr, names))}"
    suffix = path.suffix.lower()
    if suffix == ".csv" and len(names) == 1 and "\t" in names[0]:
        return f"{found}: the file looks tab-separated (name it .tsv)"
    if suffix in (".csv", ".tsv"):
        return f"{found} (the first row is read as the header)"
    return found
