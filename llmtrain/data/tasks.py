"""Labelled tasks: the GLUE registry and readers for GLUE's files, the hub and custom files.

Every task becomes a `TaskData`: splits of rows `{"index", "text_a"[, "text_b"], "label"}` with
labels as class ids (or floats for regression; -100 / NaN where a split has no labels, as GLUE's
test files), plus the label names and the metrics to report. Readers name file and row when a
row is unusable.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase

from llmtrain.config import TaskConfig
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
GLUE: dict[str, GlueSpec] = {
    "cola": GlueSpec(
        ("sentence",),
        (3,),
        1,
        ("unacceptable", "acceptable"),
        ("mcc", "accuracy"),
        header=False,
        directory="CoLA",
        score=("mcc",),
    ),
    "sst2": GlueSpec(
        ("sentence",),
        ("sentence",),
        "label",
        ("negative", "positive"),
        ("accuracy",),
        directory="SST-2",
    ),
    "mrpc": GlueSpec(
        _PAIR,
        ("#1 String", "#2 String"),
        "Quality",
        ("not_equivalent", "equivalent"),
        ("f1", "accuracy"),
        directory="MRPC",
        score=("f1", "accuracy"),
    ),
    "qqp": GlueSpec(
        ("question1", "question2"),
        ("question1", "question2"),
        "is_duplicate",
        ("not_duplicate", "duplicate"),
        ("f1", "accuracy"),
        directory="QQP",
        score=("f1", "accuracy"),
    ),
    "stsb": GlueSpec(
        _PAIR,
        _PAIR,
        "score",
        (),
        ("pearson", "spearman"),
        directory="STS-B",
        score=("pearson", "spearman"),
    ),
    "mnli": GlueSpec(
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
    "qnli": GlueSpec(
        ("question", "sentence"),
        ("question", "sentence"),
        "label",
        ("entailment", "not_entailment"),
        ("accuracy",),
        named_labels=True,
        directory="QNLI",
    ),
    "rte": GlueSpec(
        _PAIR,
        _PAIR,
        "label",
        ("entailment", "not_entailment"),
        ("accuracy",),
        named_labels=True,
        directory="RTE",
    ),
    "wnli": GlueSpec(
        _PAIR, _PAIR, "label", ("not_entailment", "entailment"), ("accuracy",), directory="WNLI"
    ),
}
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


def load_task(cfg: TaskConfig, cache_dir: Path) -> TaskData:
    if cfg.name == "custom":
        return _custom(cfg)
    if cfg.name not in GLUE:
        raise ConfigError(f"task.name={cfg.name} is not one of {', '.join(TASKS)}")
    spec = GLUE[cfg.name]
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


def read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ConfigError(f"file not found: {path}")
    data = path.read_bytes()
    if not data.strip():
        raise DataError(f"{path}: the file is empty")
    lines = data.split(b"\n")
    out = []
    for number, line in enumerate(lines, 1):
        try:
            out.append(line.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r"))
        except UnicodeDecodeError as e:
            raise DataError(
                f"{path}:{number}: byte {e.start} of the line is not UTF-8 ({e.reason})"
            ) from None
    return out


def _read_tsv(path: Path, header: bool) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """GLUE's TSVs: tab-separated with quoting off (text holds stray quote characters)."""
    lines = read_lines(path)
    names = lines.pop(0).split("\t") if header else None
    rows = [
        (n, line.split("\t")) for n, line in enumerate(lines, 2 if header else 1) if line.strip()
    ]
    return names, rows


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
        names, rows = _read_tsv(path, header=spec.header or test)  # test files have headers
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
    if cfg.max_train_examples is not None:
        n = min(cfg.max_train_examples, len(splits["train"]))
        splits["train"] = splits["train"].select(range(n))
    return splits


def _custom(cfg: TaskConfig) -> TaskData:
    if not cfg.train_file or not cfg.validation_file:
        raise ConfigError("task=custom needs task.train_file and task.validation_file")
    if not 1 <= len(cfg.text_fields) <= 2:
        raise ConfigError(f"task.text_fields={list(cfg.text_fields)}: give one or two fields")
    regression = cfg.num_labels == 1
    files = {"train": cfg.train_file, "validation": cfg.validation_file}
    if cfg.test_file:
        files["test"] = cfg.test_file
    raw = {split: read_records(Path(f).expanduser()) for split, f in files.items()}
    labels: list[str] = [] if regression else list(cfg.labels)
    if not regression and not labels:  # inferred from the training file, in a fixed order
        labels = sorted({str(r.get(cfg.label_field, "")) for _, r in raw["train"][1]})
    if cfg.num_labels is not None and not regression and cfg.num_labels != len(labels):
        raise ConfigError(
            f"task.num_labels={cfg.num_labels} but the label set has {len(labels)}: {labels}"
        )
    splits = {}
    for split, (path, records) in raw.items():
        labelled = split != "test" or (records and cfg.label_field in records[0][1])
        out = []
        for number, rec in records:
            where = f"{path}:{number}"
            row = {"index": len(out)}
            for key, name in zip(("text_a", "text_b"), cfg.text_fields, strict=False):
                if name not in rec:
                    raise DataError(f"{where}: no text field '{name}' (task.text_fields)")
                row[key] = str(rec[name])
            if labelled:
                if cfg.label_field not in rec:
                    raise DataError(
                        f"{where}: no label field '{cfg.label_field}' (task.label_field)"
                    )
                row["label"] = _label_id(str(rec[cfg.label_field]), labels, where)
            else:
                row["label"] = _no_label(labels)
            out.append(row)
        splits[split] = _rows_to_dataset(out, len(cfg.text_fields) == 2)
    metrics = (
        ["pearson", "spearman"]
        if regression
        else (["f1", "accuracy"] if len(labels) == 2 else ["accuracy"])
    )
    return TaskData(_limit(splits, cfg), labels, metrics, len(cfg.text_fields) == 2)


def read_records(path: Path) -> tuple[Path, list[tuple[int, dict]]]:
    """Rows of a csv / tsv / jsonl / parquet file as (row number, record)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        if not path.is_file():
            raise ConfigError(f"file not found: {path}")
        records = list(enumerate(datasets.Dataset.from_parquet(str(path)).to_list(), 1))
    elif suffix == ".jsonl":
        records = []
        for number, line in enumerate(read_lines(path), 1):
            if line.strip():
                try:
                    records.append((number, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{number}: not a JSON object ({e.msg})") from None
    elif suffix == ".tsv":
        names, rows = _read_tsv(path, header=True)
        records = [(n, dict(zip(names, values, strict=False))) for n, values in rows]
    elif suffix == ".csv":
        reader = csv.DictReader(read_lines(path))
        records = [(reader.line_num, row) for row in reader]
    else:
        raise ConfigError(f"{path}: not .csv, .tsv, .jsonl or .parquet")
    if not records:
        raise DataError(f"{path}: the file has no rows")
    return path, records
