"""Text corpora → a `datasets.DatasetDict` with `train` and `validation` splits of documents.

Every source yields one column, `text`, one document per row:
- `stdlib_docs`: docstrings of the running Python's standard library (parsed, never imported),
  built once and cached, so the default needs no network and no file in the repository;
- `text_files`: local .txt (a blank line separates documents), .jsonl or .parquet files;
- `hf`: a hub dataset by name (or a local dataset directory), one record a document.
"""

from __future__ import annotations

import ast
import sys
import sysconfig
from pathlib import Path

import datasets

from llmtrain.atomic import atomic_dir
from llmtrain.config import DataConfig, DecodeErrors, Source
from llmtrain.data.files import require_file
from llmtrain.errors import ConfigError, DataError

# Bump when the extraction below changes, so caches built by older code are not reused.
_STDLIB_VERSION = 1
_SKIP_DIRS = {"site-packages", "dist-packages", "idlelib", "lib2to3", "turtledemo", "ensurepip"}
_FORMATS = {
    ".txt": "text",
    ".text": "text",
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
}


def load_corpus(cfg: DataConfig, seed: int, need_train: bool = True) -> datasets.DatasetDict:
    """Load the configured corpus and make sure it has a non-empty train and validation split.

    With `need_train=False` (evaluation), given validation files are read alone.
    """
    cache = Path(cfg.cache_dir).expanduser()
    if cfg.source is Source.stdlib_docs:
        train, validation = _stdlib_docs(cache), None
    elif cfg.source is Source.text_files:
        validation = None
        if cfg.validation_files:
            validation = _read_files(cfg.validation_files, cfg, cache, "data.validation_files")
            if not need_train:
                return datasets.DatasetDict(validation=_non_empty(validation, cfg))
        if not cfg.train_files:
            raise ConfigError("data.train_files is empty: name at least one file")
        train = _read_files(cfg.train_files, cfg, cache, "data.train_files")
    else:
        train, validation = _hub(cfg, cache)

    train = _drop_blank(train)
    if len(train) == 0:
        raise DataError(f"the training corpus ({_describe(cfg)}) holds no text")
    if validation is None:
        train, validation = _hold_out(train, cfg.validation_fraction, seed, cfg)
    return datasets.DatasetDict(train=train, validation=_non_empty(validation, cfg))


def _non_empty(validation: datasets.Dataset, cfg: DataConfig) -> datasets.Dataset:
    validation = _drop_blank(validation)
    if len(validation) == 0:
        raise DataError(f"the validation corpus ({_describe(cfg)}) holds no text")
    return validation


def stdlib_docstrings() -> list[str]:
    """English docstrings of modules, classes and functions in the standard library's sources."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(p in _SKIP_DIRS or p.startswith("test") for p in parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a few stdlib files are templates or in other encodings
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc and len(doc.split()) >= 8:  # skip one-liners like "Return x."
                    docs.append(doc)
    return docs


def _stdlib_docs(cache: Path) -> datasets.Dataset:
    version = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    target = cache / "corpora" / f"stdlib_docs-py{version}-v{_STDLIB_VERSION}"
    if not (target / "dataset_info.json").exists():
        with atomic_dir(target) as tmp:
            datasets.Dataset.from_dict({"text": stdlib_docstrings()}).save_to_disk(str(tmp))
    return datasets.load_from_disk(str(target))


def _read_files(files: list[str], cfg: DataConfig, cache: Path, key: str) -> datasets.Dataset:
    paths = [Path(f).expanduser() for f in files]
    for p in paths:
        require_file(p, key, _files_in(p, key))
    kinds = {_FORMATS.get(p.suffix.lower()) for p in paths}
    if None in kinds:
        bad = next(p for p in paths if p.suffix.lower() not in _FORMATS)
        raise ConfigError(f"{key}: {bad} is not .txt, .jsonl or .parquet")
    if len(kinds) > 1:
        raise ConfigError(f"{key}: mixes file types ({', '.join(sorted(kinds))}); use one type")
    kind = kinds.pop()
    for p in paths:
        if p.stat().st_size == 0:
            raise DataError(f"{p}: the file is empty")
        if kind == "text" and cfg.decode_errors is DecodeErrors.strict:
            _check_utf8(p)
    extra = (
        {"sample_by": "paragraph", "encoding_errors": cfg.decode_errors.value}
        if kind == "text"
        else {}
    )
    try:
        ds = datasets.load_dataset(
            kind,
            data_files=[str(p) for p in paths],
            split="train",
            cache_dir=str(cache / "datasets"),
            **extra,
        )
    except datasets.exceptions.DatasetGenerationError as e:
        raise DataError(
            f"{key}: cannot read {', '.join(map(str, paths))}: {e.__cause__ or e}"
        ) from e
    return _text_column(ds, cfg.text_field, f"{key} ({', '.join(map(str, paths))})")


def _files_in(path: Path, key: str) -> str:
    """For a directory given as a corpus file: the setting naming the files in it instead."""
    if not path.is_dir():
        return ""
    found = sorted(str(f) for f in path.iterdir() if f.suffix.lower() in _FORMATS)
    listed = ",".join(found[:3]) + (",…" if len(found) > 3 else "") or f"{path}/FILE.txt"
    return f"; name the files in it: {key}=[{listed}]"


def _check_utf8(path: Path) -> None:
    """Name the file, line and byte offset of the first undecodable byte
    (data.decode_errors=replace substitutes U+FFFD instead)."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{lineno}: byte {e.start} of the line is not UTF-8 ({e.reason})"
                ) from None


def _hub(cfg: DataConfig, cache: Path) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    if not cfg.name:
        raise ConfigError("data.name is required with data=hf")
    try:
        loaded = datasets.load_dataset(cfg.name, cfg.config, cache_dir=str(cache / "datasets"))
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as e:
        raise ConfigError(f"data.name={cfg.name}: cannot load the dataset: {e}") from e
    splits = list(loaded.keys())
    for key, split in (
        ("data.train_split", cfg.train_split),
        ("data.validation_split", cfg.validation_split),
    ):
        if split is not None and split not in loaded:
            raise ConfigError(f"{key}={split}: {cfg.name} has splits {', '.join(splits)}")
    train = _text_column(loaded[cfg.train_split], cfg.text_field, f"data.name={cfg.name}")
    validation = None
    if cfg.validation_split is not None:
        validation = _text_column(
            loaded[cfg.validation_split], cfg.text_field, f"data.name={cfg.name}"
        )
    return train, validation


def _text_column(ds: datasets.Dataset, text_field: str, where: str) -> datasets.Dataset:
    if text_field not in ds.column_names:
        columns = ", ".join(ds.column_names)
        raise DataError(f"{where}: no column '{text_field}' (data.text_field); columns: {columns}")
    ds = ds.select_columns([text_field])
    return ds.rename_column(text_field, "text") if text_field != "text" else ds


def _drop_blank(ds: datasets.Dataset) -> datasets.Dataset:
    return ds.filter(lambda batch: [bool(t and t.strip()) for t in batch["text"]], batched=True)


def _hold_out(
    ds: datasets.Dataset, fraction: float, seed: int, cfg: DataConfig
) -> tuple[datasets.Dataset, datasets.Dataset]:
    if not 0 < fraction < 1:
        raise ConfigError(f"data.validation_fraction={fraction} must be between 0 and 1")
    if len(ds) < 2:
        raise DataError(
            f"the corpus ({_describe(cfg)}) has {len(ds)} document: too few to hold out a "
            "validation split; give data.validation_files (in .txt files a blank line "
            "separates documents)"
        )
    n_val = max(1, round(fraction * len(ds)))
    split = ds.train_test_split(test_size=n_val, seed=seed, shuffle=True)
    return split["train"], split["test"]


def _describe(cfg: DataConfig) -> str:
    if cfg.source is Source.text_files:
        return ", ".join(cfg.train_files)
    if cfg.source is Source.hf:
        return f"hub dataset {cfg.name}"
    return "the standard library's docstrings"


def check_config(cfg: DataConfig) -> None:
    """What the data settings alone show cannot work (before any file is read)."""
    if cfg.source is Source.text_files and not cfg.train_files:
        raise ConfigError("data.train_files is empty: name at least one file")
    if cfg.source is Source.hf and not cfg.name:
        raise ConfigError("data.name is required with data=hf")
    if not 0 < cfg.validation_fraction < 1:
        raise ConfigError(
            f"data.validation_fraction={cfg.validation_fraction} must be between 0 and 1"
        )
