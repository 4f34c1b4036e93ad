"""Labelled tasks: the GLUE registry and readers for GLUE's files, the hub and custom files.

Every task becomes a `TaskData`: splits of rows `{"index", "text_a"[, "text_b"], "label"}` with
labels as class ids (or floats for regression; -100 / NaN where a split has no labels, as GLUE's
test files), plus the label names and the metrics to report. Readers name file and row when a
row is unusable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase

from llmtrain.config import GLUE_TASKS, TaskConfig
from llmtrain.data.files import read_records, read_tsv
from llmtrain.errors import ConfigError, DataError

NO_LABEL = -100


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
TASKS = (*GLUE, "custom", "sft")


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


def encode(
    split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> datasets.Dataset:
    """Token ids (and segment ids where the tokenizer makes them) for one or two text segments,
    truncated to `max_length`; padding is left to each batch."""
    pair = "text_b" in split.column_names

    def tokenize(batch: dict) -> dict:
        return tokenizer(
            batch["text_a"],
            batch["text_b"] if pair else None,
            truncation=True,
            max_length=max_length,
            return_attention_mask=False,
        )

    return split.map(
        tokenize,
        batched=True,
        remove_columns=[c for c in ("text_a", "text_b") if c in split.column_names],
    )


def load_task(
    cfg: TaskConfig, cache_dir: Path, training: bool = True, model_labels: list[str] | None = None
) -> TaskData:
    """The task's splits (custom files: the training file only when training or when the labels
    are read from it); `model_labels`, the class names of a model being evaluated, are the
    labels, and must be a GLUE task's."""
    if cfg.name == "custom":
        return _custom(cfg, training, model_labels)
    if cfg.name not in GLUE:
        raise ConfigError(f"task.name={cfg.name} is not one of {', '.join(TASKS)}")
    spec = GLUE[cfg.name]
    # Case aside (hub models say NEGATIVE, POSITIVE): other names or another order would map
    # the model's predictions to the wrong classes.
    if model_labels and [n.casefold() for n in model_labels] != [n.casefold() for n in spec.labels]:
        raise ConfigError(
            f"the model's labels ({', '.join(model_labels)}) are not task={cfg.name}'s "
            f"({', '.join(spec.labels) or 'a score: regression'}): evaluate it on its own task"
        )
    reader = _glue_tsv if cfg.data_dir else _glue_hub
    splits = reader(cfg, spec, cache_dir)
    pair = len(spec.hub_fields) == 2
    return TaskData(splits, list(spec.labels), list(spec.metrics), pair, spec.named_labels)


def _rows_to_dataset(rows: list[dict], pair: bool) -> datasets.Dataset:
    columns = ["index", "text_a", *(["text_b"] if pair else []), "label"]
    return datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in columns})


def _label_id(raw: str, labels: tuple[str, ...] | list[str], where: str) -> int | float:
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


def _glue_tsv(cfg: TaskConfig, spec: GlueSpec, cache_dir: Path) -> dict[str, datasets.Dataset]:
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
                _no_label(spec.labels) if test else _label_id(values[label_col], spec.labels, where)
            )
            out.append(row)
        splits[split] = _rows_to_dataset(out, len(cols) == 2)
    return _limit(splits, cfg)


def _column(col: str | int, names: list[str] | None, path: Path) -> int:
    if isinstance(col, int):
        return col
    if names is None or col not in names:
        raise DataError(f"{path}: no column '{col}' in the header ({', '.join(names or [])})")
    return names.index(col)


def _no_label(labels) -> int | float:
    return NO_LABEL if labels else math.nan


def _glue_hub(cfg: TaskConfig, spec: GlueSpec, cache_dir: Path) -> dict[str, datasets.Dataset]:
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
            out["label"] = row["label"] if labelled else _no_label(spec.labels)
            return out

        splits[split] = ds.map(convert, with_indices=True, remove_columns=ds.column_names)
    return _limit(splits, cfg)


def _limit(splits: dict[str, datasets.Dataset], cfg: TaskConfig) -> dict[str, datasets.Dataset]:
    if cfg.max_train_examples is not None and "train" in splits:
        n = min(cfg.max_train_examples, len(splits["train"]))
        splits["train"] = splits["train"].select(range(n))
    return splits


def _custom(cfg: TaskConfig, training: bool, model_labels: list[str] | None) -> TaskData:
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
    return TaskData(_limit(splits, cfg), labels, metrics, len(cfg.text_fields) == 2)


def _custom_labels(cfg: TaskConfig, model_labels: list[str] | None) -> list[str]:
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


def _check_custom_files(cfg: TaskConfig, training: bool, infer: bool) -> None:
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
    path: Path, records: list[tuple[int, dict]], cfg: TaskConfig, labels: list[str], required: bool
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
            row["label"] = _label_id(label, labels, f"{path}:{number}")
        else:
            row["label"] = _no_label(labels)
        out.append(row)
    return _rows_to_dataset(out, len(cfg.text_fields) == 2)


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
