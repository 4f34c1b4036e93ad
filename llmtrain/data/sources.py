"""Text corpora → a `datasets.DatasetDict` with `train` and `validation` splits of documents.

Every source yields one column, `text`, one document per row:
- `stdlib_docs`: docstrings of the running Python's standard library (parsed, never imported),
  built once and cached, so the default needs no network and no file in the repository;
- `text_files`: local .txt (a blank line separates documents), .jsonl or .parquet files;
- `hf`: a hub dataset by name (or a local dataset directory), one record a document;
- `mixture`: named sources of local files, each with a weight (`inputs` only).
"""

from __future__ import annotations

import ast
import sys
import sysconfig
from dataclasses import fields
from pathlib import Path

import datasets

from llmtrain.atomic import atomic_dir
from llmtrain.config import DataConfig, DecodeErrors, MixtureSource, Source
from llmtrain.data import records
from llmtrain.data.files import require_file
from llmtrain.data.prepare import Input
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
    if cfg.source is Source.mixture:
        raise ConfigError(
            "data=mixture is read as prepared shards: it applies to objective=mlm and clm"
        )
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


def inputs(cfg: DataConfig, seed: int, need_train: bool = True) -> list[Input]:
    """The configured corpus as units to prepare (llmtrain.data.prepare), each with the share
    of its documents held out for validation: all of the validation files', none of the
    training files' when validation files are given, else `data.validation_fraction`. A
    mixture's units carry their source's name.

    With `need_train=False` (evaluation), given validation files are read alone."""
    unit_bytes = max(1, int(cfg.shard_mb * 2**20))
    if cfg.source is Source.text_files:
        files = (cfg.train_files, cfg.validation_files)
        return _file_inputs(files, cfg.validation_fraction, unit_bytes, "data", "", need_train)
    if cfg.source is Source.mixture:
        return [
            item
            for name, src in mixture_sources(cfg).items()
            for item in _file_inputs(
                (src.files, src.validation_files),
                cfg.validation_fraction,
                unit_bytes,
                f"data.sources.{name}",
                name,
                need_train,
            )
        ]
    cache = Path(cfg.cache_dir).expanduser()
    if cfg.source is Source.stdlib_docs:
        train, validation = _stdlib_docs(cache), None
    else:
        train, validation = _hub(cfg, cache)
    held_out = 0.0 if validation is not None else cfg.validation_fraction
    found = [Input(u, held_out) for u in _arrow_units(train, unit_bytes)]
    if validation is not None:
        found += [Input(u, 1.0) for u in _arrow_units(validation, unit_bytes)]
    return found


def _file_inputs(
    files: tuple[list[str], list[str]],
    fraction: float,
    unit_bytes: int,
    key: str,
    source: str,
    need_train: bool,
) -> list[Input]:
    """Training and validation files (`key`.train_files or .files, `key`.validation_files)."""
    train_key = f"{key}.{'files' if source else 'train_files'}"
    found = records.find_files(files[1], f"{key}.validation_files")
    validation = [Input(u, 1.0, source) for u in records.plan_units(found, unit_bytes)]
    if validation and not need_train:
        return validation
    if not files[0]:
        raise ConfigError(f"{train_key} is empty: name at least one file")
    units = records.plan_units(records.find_files(files[0], train_key), unit_bytes)
    return [Input(u, 0.0 if validation else fraction, source) for u in units] + validation


def _arrow_units(ds: datasets.Dataset, unit_bytes: int) -> list[records.Unit]:
    """A loaded dataset's Arrow files (the datasets cache), as units."""
    files = [Path(f["filename"]) for f in ds.cache_files]
    if not files or ds._indices is not None:  # rows not as stored: nothing to read in place
        raise DataError(f"the dataset {ds.info.dataset_name or ''} is not stored as Arrow files")
    return records.plan_units(files, unit_bytes)


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
    if cfg.source is Source.mixture:
        mixture_sources(cfg)
    elif cfg.sources:
        raise ConfigError(f"data.sources applies to data=mixture, not data={cfg.source.value}")
    if not 0 < cfg.validation_fraction < 1:
        raise ConfigError(
            f"data.validation_fraction={cfg.validation_fraction} must be between 0 and 1"
        )
    if cfg.num_proc is not None and cfg.num_proc < 1:
        raise ConfigError(f"data.num_proc={cfg.num_proc} must be at least 1 (null: all cores)")
    if cfg.shard_mb <= 0:
        raise ConfigError(f"data.shard_mb={cfg.shard_mb} must be positive")
    if cfg.streaming and cfg.source is Source.mixture:
        raise ConfigError(
            "data.streaming reads one corpus in order: data=mixture draws from prepared shards"
        )
    if cfg.stream_validation_blocks < 1:
        raise ConfigError(
            f"data.stream_validation_blocks={cfg.stream_validation_blocks} must be at least 1"
        )


def mixture_sources(cfg: DataConfig) -> dict[str, MixtureSource]:
    """data.sources (data=mixture), typed and checked: each one-line error names its key."""
    if not cfg.sources:
        raise ConfigError(
            "data=mixture needs data.sources: e.g. +data.sources.web.files=[web/*.jsonl] "
            "+data.sources.web.weight=0.7 +data.sources.code.files=[code/*.txt] ..."
        )
    keys = [f.name for f in fields(MixtureSource)]
    found = {}
    for name, given in cfg.sources.items():
        key = f"data.sources.{name}"
        if not name.isidentifier():
            raise ConfigError(f"{key}: a source's name is letters, digits and _")
        if not isinstance(given, dict):
            raise ConfigError(f"{key}={given}: give its keys, e.g. +{key}.files=[FILE]")
        unknown = sorted(set(given) - set(keys))
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}: not a key of a source ({', '.join(keys)})")
        src = MixtureSource(**given)
        for field in ("files", "validation_files"):
            value = getattr(src, field)
            setattr(src, field, [value] if isinstance(value, str) else list(value))
        if not src.files:
            raise ConfigError(f"{key}.files is empty: name at least one file")
        if not isinstance(src.weight, int | float) or not src.weight > 0:
            raise ConfigError(f"{key}.weight={src.weight} must be a positive number")
        found[name] = src
    return found
