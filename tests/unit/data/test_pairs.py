"""Sentence pairs for NSP / SOP and whole-word masking, on synthetic documents and on real
tokenizer output."""

from __future__ import annotations

import random

import datasets
import pytest
import torch
from conftest import tiny_bert
from transformers import BertForPreTraining

from llmtrain.config import (
    DataConfig,
    Family,
    ObjectiveConfig,
    ObjectiveName,
    SentenceSplit,
    TokenizerConfig,
)
from llmtrain.data.pairs import PairDataset, make_pairs, pair_blocks, split_sentences
from llmtrain.data.sources import load_corpus
from llmtrain.data.tokenizer import build_tokenizer
from llmtrain.errors import DataError
from llmtrain.objectives.masked import MaskedLM, MaskedLMWithPairs
from llmtrain.objectives.vocab_loss import sum_cross_entropy
from llmtrain.train.contract import IGNORE
from llmtrain.train.sampler import Keyed

MAX = 61  # block 64 less [CLS] and two [SEP]


def _documents(n: int, seed: int = 0) -> list[list[list[int]]]:
    """Documents whose every token names its document, sentence and place:
    doc * 100_000 + sentence * 100 + k."""
    rng = random.Random(seed)
    return [
        [
            [d * 100_000 + s * 100 + k for k in range(rng.randint(1, 30))]
            for s in range(rng.randint(1, 12))
        ]
        for d in range(n)
    ]


def _flat(doc: list[list[int]]) -> list[int]:
    return [t for sentence in doc for t in sentence]


def _contiguous(run: list[int], doc: list[list[int]]) -> bool:
    text = _flat(doc)
    start = text.index(run[0])
    return text[start : start + len(run)] == run


def test_nsp_pairs_half_random_never_from_the_same_document():
    docs = _documents(600)
    pairs = list(make_pairs(docs, MAX, False, 0.1, random.Random(1)))
    assert len(pairs) > 1400
    labels = [label for _, _, label in pairs]
    assert abs(sum(labels) / len(labels) - 0.5) < 0.04
    continued = random_ok = 0
    for a, b, label in pairs:
        assert a and b and len(a) + len(b) <= MAX
        (doc,) = {t // 100_000 for t in a}  # A comes from one document
        b_docs = {t // 100_000 for t in b}
        if label == 1:  # random: from one other document, never A's own
            assert len(b_docs) == 1 and doc not in b_docs
            random_ok += _contiguous(b, docs[b_docs.pop()])
        else:  # the true next segment: same document, after A
            assert b_docs == {doc} and max(a) < min(b)
            if len(a) + len(b) < MAX:  # untruncated: A then B is a run of the document
                continued += _contiguous(a + b, docs[doc])
                assert _contiguous(a + b, docs[doc])
    assert continued > 300 and random_ok > 300
    # Some pairs are cut short on purpose (short_seq_prob), most fill the block.
    lengths = [len(a) + len(b) for a, b, _ in pairs]
    assert sum(n == MAX for n in lengths) > len(pairs) / 4


def test_sop_pairs_are_one_document_half_swapped():
    docs = _documents(300, seed=2)
    pairs = list(make_pairs(docs, MAX, True, 0.1, random.Random(3)))
    labels = [label for _, _, label in pairs]
    assert abs(sum(labels) / len(labels) - 0.5) < 0.05
    for a, b, label in pairs:
        assert len({t // 100_000 for t in a + b}) == 1
        assert (min(a) > max(b)) if label == 1 else (max(a) < min(b))


def test_sentence_rules():
    text = "First line. Still the first\nsecond line! Third? yes\n\n  \nlast"
    assert split_sentences(text, SentenceSplit.line) == [
        "First line. Still the first",
        "second line! Third? yes",
        "last",
    ]
    assert split_sentences(text, SentenceSplit.punctuation) == [
        "First line.",
        "Still the first second line!",
        "Third?",
        "yes last",
    ]


@pytest.fixture(scope="module")
def corpus(cache_dir):
    return load_corpus(DataConfig(cache_dir=str(cache_dir)), seed=0)["train"].select(range(400))


@pytest.fixture(scope="module")
def wordpiece(corpus, tmp_path_factory):
    cfg = TokenizerConfig(vocab_size=1000)
    return build_tokenizer(cfg, Family.bert, corpus, tmp_path_factory.mktemp("wp"), max_length=512)


@pytest.fixture(scope="module")
def bpe(corpus, tmp_path_factory):
    """Byte-level BPE with a mask token, as RoBERTa's."""
    cfg = TokenizerConfig(vocab_size=1000)
    tokenizer = build_tokenizer(
        cfg, Family.gpt2, corpus, tmp_path_factory.mktemp("bpe"), max_length=512
    )
    tokenizer.add_special_tokens({"mask_token": "<mask>"})
    return tokenizer


def _pairs(corpus, tokenizer, tmp_path, sentence_order=False):
    rows = pair_blocks(
        corpus,
        tokenizer,
        64,
        tmp_path,
        "training",
        sentence_order=sentence_order,
        rule=SentenceSplit.line,
        short_seq_prob=0.1,
        dupe_factor=1,
        seed=0,
    )
    return PairDataset(rows)


def test_pair_layout_and_token_types_match_the_tokenizers_own(corpus, wordpiece, tmp_path):
    data = _pairs(corpus, wordpiece, tmp_path)
    cls, sep, pad = wordpiece.cls_token_id, wordpiece.sep_token_id, wordpiece.pad_token_id
    same = 0
    for i in range(len(data)):
        ex = data[i]
        ids, types, mask = ex["input_ids"], ex["token_type_ids"], ex["attention_mask"]
        n = int(mask.sum())
        assert mask[:n].all() and not mask[n:].any() and (ids[n:] == pad).all()
        (seps,) = torch.nonzero(ids[:n] == sep, as_tuple=True)
        assert ids[0] == cls and len(seps) == 2 and seps[1] == n - 1
        a_end = int(seps[0])
        assert (types[: a_end + 1] == 0).all() and (types[a_end + 1 : n] == 1).all()
        assert not types[n:].any() and ex["next_sentence_label"] in (0, 1)
        # Where the segments survive a round trip through text, the tokenizer's own pair
        # encoding (what fine-tuning feeds the model) is the same ids and token types.
        a, b = ids[1:a_end].tolist(), ids[a_end + 1 : n - 1].tolist()
        text_a, text_b = wordpiece.decode(a), wordpiece.decode(b)
        if wordpiece(text_a, add_special_tokens=False)["input_ids"] == a and (
            wordpiece(text_b, add_special_tokens=False)["input_ids"] == b
        ):
            own = wordpiece(text_a, text_b)
            assert own["input_ids"] == ids[:n].tolist()
            assert own["token_type_ids"] == types[:n].tolist()
            same += 1
    assert same > 50


def test_a_single_document_is_refused(wordpiece, tmp_path):
    one = datasets.Dataset.from_dict({"text": ["one line\nand another\nand a third"]})
    with pytest.raises(DataError, match="training split has 1 document.*blank line"):
        _pairs(one, wordpiece, tmp_path)
    with pytest.raises(DataError, match="1 document"):
        _pairs(one, wordpiece, tmp_path, sentence_order=True)


def _encoded(tokenizer, corpus, length=64):
    """Sequences of exactly `length` tokens with their encodings (word ids, offsets)."""
    texts = [t for t in corpus["text"] if len(t) > 400][:250]
    encodings = tokenizer(texts, truncation=True, max_length=length, return_offsets_mapping=True)
    keep = [i for i, ids in enumerate(encodings["input_ids"]) if len(ids) == length]
    return texts, encodings, keep


def _whole_word_checks(tokenizer, words_of, texts, encodings, keep):
    objective = MaskedLM(ObjectiveConfig(whole_word_mask=True), tokenizer)
    examples = [
        {"input_ids": torch.tensor(encodings["input_ids"][i]), "sample_seed": i} for i in keep
    ]
    batch = objective.collate(examples)
    chosen_words = all_mask = kept = tokens = targets = 0
    for row, i in enumerate(keep):
        chosen = (batch["labels"][row] != IGNORE).tolist()
        inputs = batch["input_ids"][row].tolist()
        original = encodings["input_ids"][i]
        for word in words_of(texts[i], encodings, i):
            picks = {chosen[t] for t in word}
            assert len(picks) == 1, "a word was partly masked"  # the invariant
            tokens += len(word)
            if picks.pop():
                targets += len(word)
                chosen_words += 1
                all_mask += all(inputs[t] == tokenizer.mask_token_id for t in word)
                kept += all(inputs[t] == original[t] for t in word)
    words = sum(len(list(words_of(texts[i], encodings, i))) for i in keep)
    assert abs(chosen_words / words - 0.15) < 0.02  # 15 % of words
    assert abs(targets / tokens - 0.15) < 0.03
    assert abs(all_mask / chosen_words - 0.8) < 0.05  # 80-10-10 per word
    assert abs(kept / chosen_words - 0.1) < 0.04
    halves = objective.collate(examples[:4]), objective.collate(examples[4:8])
    whole = objective.collate(examples[:8])  # masks follow the example, not the batch
    assert torch.equal(whole["labels"], torch.cat([h["labels"] for h in halves]))


def test_whole_word_masking_wordpiece(wordpiece, corpus):
    texts, encodings, keep = _encoded(wordpiece, corpus)

    def words(text, enc, i):  # the tokenizer's own words (whitespace and punctuation)
        groups: dict[int, list[int]] = {}
        for t, w in enumerate(enc.word_ids(i)):
            if w is not None:
                groups.setdefault(w, []).append(t)
        return groups.values()

    assert any(len(w) > 1 for w in words(texts[keep[0]], encodings, keep[0]))
    _whole_word_checks(wordpiece, words, texts, encodings, keep)


def test_whole_word_masking_byte_level_bpe(bpe, corpus):
    texts, encodings, keep = _encoded(bpe, corpus)

    def words(text, enc, i):  # runs of non-whitespace characters of the text
        spans, start = [], None
        for c, ch in enumerate(text + " "):
            if ch.isspace() and start is not None:
                spans.append((start, c))
                start = None
            elif not ch.isspace() and start is None:
                start = c
        offsets = enc["offset_mapping"][i]
        for s, e in spans:
            word = [t for t, (ts, te) in enumerate(offsets) if ts < e and te > s]
            if word and word[-1] < len(offsets) - 1:  # skip the word the truncation cut
                yield word

    _whole_word_checks(bpe, words, texts, encodings, keep)


def test_pair_loss_is_bert_pretraining_loss_and_adds_up(corpus, wordpiece, tmp_path):
    data = Keyed(_pairs(corpus, wordpiece, tmp_path), seed=0)
    model = tiny_bert(BertForPreTraining, vocab_size=len(wordpiece))
    objective = MaskedLMWithPairs(
        ObjectiveConfig(name=ObjectiveName.mlm_nsp), wordpiece, tokens_per_pair=40
    )
    assert objective.pair_weight == pytest.approx(6.0)
    examples = [data[(0, i)] for i in range(8)]
    batch = objective.collate(examples)
    loss_sum, n, parts = objective.loss(model, batch)
    # The sparse head equals BERT's own full forward.
    inputs = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    out = model(**inputs)
    mlm_sum, n_full = sum_cross_entropy(out.prediction_logits, batch["labels"])
    nsp_sum = torch.nn.functional.cross_entropy(
        out.seq_relationship_logits, batch["next_sentence_label"], reduction="sum"
    )
    assert n == n_full and torch.allclose(loss_sum, mlm_sum + 6.0 * nsp_sum, rtol=1e-4)
    assert parts[4] == 8
    # Sums over examples: two half batches (each padded to its own width) add up to the whole,
    # which is what makes gradient accumulation and several processes exact.
    halves = [objective.loss(model, objective.collate(h)) for h in (examples[:4], examples[4:])]
    assert torch.allclose(halves[0][0] + halves[1][0], loss_sum, rtol=1e-4)
    assert torch.allclose(halves[0][2] + halves[1][2], parts, rtol=1e-4)
