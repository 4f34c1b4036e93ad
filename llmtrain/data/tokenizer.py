"""Tokenizers: train one on the corpus with `tokenizers` (cached), or load one by path or name.

A trained tokenizer is cached under a key made of the corpus fingerprint and the settings, so a
rerun on the same data does not train it again.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import datasets
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from llmtrain.atomic import atomic_dir
from llmtrain.config import Family, TokenizerConfig, TokenizerKind
from llmtrain.errors import ConfigError

BERT_SPECIALS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
EOT = "<|endoftext|>"
# Bump when training below changes, so caches built by older code are not reused.
_TRAINER_VERSION = 2


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """Load a tokenizer by local path or hub name (running no code from it unless allowed);
    a missing one is a config error."""
    try:
        return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load a tokenizer from '{name_or_path}': {e}") from e


def check_config(cfg: TokenizerConfig) -> None:
    """What the tokenizer settings alone show cannot work (before any data work)."""
    if cfg.name_or_path is None and cfg.vocab_size < 300:
        raise ConfigError(f"tokenizer.vocab_size={cfg.vocab_size} is too small (at least 300)")
    if cfg.min_frequency < 1:
        raise ConfigError(f"tokenizer.min_frequency={cfg.min_frequency} must be at least 1")


def build_tokenizer(
    cfg: TokenizerConfig,
    family: Family,
    corpus: datasets.Dataset | Callable[[], list[str]],
    cache_dir: Path,
    max_length: int,
    fallback_path: str | None = None,
    fingerprint: str | None = None,
    trust_remote_code: bool = False,
) -> PreTrainedTokenizerBase:
    """The configured tokenizer: loaded (cfg.name_or_path, else the model's own), or trained.

    A trained one is cached under the corpus's `fingerprint` (default: the datasets one).
    `corpus` may be a function giving the texts, called only when there is one to train.
    """
    source = cfg.name_or_path or fallback_path
    if source:
        return load_tokenizer(source, trust_remote_code)
    kind = cfg.kind
    if kind is TokenizerKind.auto:
        kind = TokenizerKind.wordpiece if family is Family.bert else TokenizerKind.bpe
    lowercase = cfg.lowercase if cfg.lowercase is not None else kind is TokenizerKind.wordpiece
    check_config(cfg)

    settings = {
        "kind": kind.value,
        "vocab_size": cfg.vocab_size,
        "min_frequency": cfg.min_frequency,
        "lowercase": lowercase,
        "max_length": max_length,
        "corpus": fingerprint or corpus._fingerprint,
        "version": _TRAINER_VERSION,
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    target = Path(cache_dir) / "tokenizers" / f"{kind.value}-{key}"
    if not (target / "tokenizer.json").exists():
        if callable(corpus):
            corpus = datasets.Dataset.from_dict({"text": corpus()})
        train = _train_wordpiece if kind is TokenizerKind.wordpiece else _train_bpe
        tokenizer = train(corpus, cfg.vocab_size, cfg.min_frequency, lowercase, max_length)
        with atomic_dir(target) as tmp:
            save_tokenizer(tokenizer, tmp)
    return AutoTokenizer.from_pretrained(str(target))


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A stable hash of everything that decides how the tokenizer splits text."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    spec = (
        backend.to_str()
        if backend is not None
        else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    )
    spec += json.dumps(tokenizer.special_tokens_map, sort_keys=True)
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, directory: Path) -> None:
    """save_pretrained, recording the class as PreTrainedTokenizerFast.

    transformers 5 records `TokenizersBackend`, which transformers 4 cannot load; the older
    name loads in both.
    """
    tokenizer.save_pretrained(str(directory))
    config_path = Path(directory) / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_path.write_text(json.dumps(config, indent=2) + "\n")


def _texts(corpus: datasets.Dataset, batch: int = 1000) -> Iterator[list[str]]:
    for i in range(0, len(corpus), batch):
        yield corpus[i : i + batch]["text"]


def _continuing_characters(
    corpus: datasets.Dataset, normalizer: normalizers.Normalizer
) -> list[str]:
    """The characters that can continue a word after BERT's normalisation and pre-tokenizer,
    sorted: not white space, and not punctuation, which always stands alone."""
    seen: set[str] = set()
    for texts in _texts(corpus):
        for text in texts:
            seen.update(normalizer.normalize_str(text))
    return sorted(c for c in seen if not (c.isspace() or _is_punctuation(c)))


def _is_punctuation(c: str) -> bool:
    # BERT's pre-tokenizer splits off ASCII symbols and Unicode punctuation as words of one
    return (c.isascii() and not c.isalnum()) or unicodedata.category(c).startswith("P")


def _train_wordpiece(
    corpus: datasets.Dataset, vocab_size: int, min_frequency: int, lowercase: bool, max_length: int
) -> PreTrainedTokenizerFast:
    normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    specials = list(BERT_SPECIALS.values())
    # The trainer numbers the "##x" pieces in hash-map order, and ties between merges go by
    # those numbers, so the same text gave different vocabularies (tokenizers#1794). Handing
    # it every "##x" up front, in a fixed order, fixes their numbers; they are then plain
    # vocabulary entries of a tokenizer built from the trained vocabulary.
    pieces = [f"##{c}" for c in _continuing_characters(corpus, normalizer)]
    scratch = Tokenizer(models.WordPiece(unk_token=BERT_SPECIALS["unk_token"]))
    scratch.normalizer = normalizer
    scratch.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        show_progress=False,  # the run's console reports; this bar prints blank lines in logs
        special_tokens=specials + pieces,
    )
    scratch.train_from_iterator(_texts(corpus), trainer=trainer, length=len(corpus))
    tok = Tokenizer(models.WordPiece(scratch.get_vocab(), unk_token=BERT_SPECIALS["unk_token"]))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(specials)
    cls, sep = (tok.token_to_id(BERT_SPECIALS[k]) for k in ("cls_token", "sep_token"))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=max_length,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        **BERT_SPECIALS,
    )


def _train_bpe(
    corpus: datasets.Dataset, vocab_size: int, min_frequency: int, lowercase: bool, max_length: int
) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        show_progress=False,  # the run's console reports; this bar prints blank lines in logs
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_texts(corpus), trainer=trainer, length=len(corpus))
    # GPT-2 has no padding token; the end-of-text token pads (and is masked out of every loss).
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=max_length,
        bos_token=EOT,
        eos_token=EOT,
        unk_token=EOT,
        pad_token=EOT,
    )
