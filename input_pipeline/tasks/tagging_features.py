"""Tagged sentences to fixed-length arrays, and predictions back to one tag per word.

As `run_ner.py` with `label_all_tokens=False`: each word is tokenized on its own, the sentence
is `[CLS] sub-tokens [SEP]` cut to `max_seq_length`, and only the FIRST sub-token of each word
carries the word's tag (`label_weights` 1); its other sub-tokens, `[CLS]`, `[SEP]` and padding
have weight 0 (where `run_ner.py` writes the label -100). `word_starts` keeps, per sentence, the
position of each word's first sub-token, which turns the model's per-token predictions back into
one tag per word; a word cut off by the length limit, or one that yields no sub-token (a space
in KLUE-NER, a control character), has none (-1) and is counted in the report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from input_pipeline.tasks.labels import LabelList
from input_pipeline.tasks.records import TaggedSentence, TaskDataError
from input_pipeline.tasks.truncation import TruncationReport

Tokenizer = Any  # wordpiece.BertTokenizer or sentencepiece_tokenizer.SentencePieceTokenizer


@dataclasses.dataclass(frozen=True)
class TaggingFeatures:
    """The model inputs of n sentences."""
    input_ids: np.ndarray      # [n, max_seq_length] int32
    input_mask: np.ndarray     # [n, max_seq_length] int32
    segment_ids: np.ndarray    # [n, max_seq_length] int32, all 0
    label_ids: np.ndarray      # [n, max_seq_length] int32, the tag id at first sub-tokens, else 0
    label_weights: np.ndarray  # [n, max_seq_length] float32, 1 at first sub-tokens, else 0
    word_starts: tuple[np.ndarray, ...]  # per sentence [words] int32: first sub-token or -1

    def __len__(self) -> int:
        return len(self.input_ids)


def tagging_features(sentences: Sequence[TaggedSentence], tokenizer: Tokenizer,
                     max_seq_length: int, labels: LabelList, *,
                     report: TruncationReport | None = None,
                     require_labels: bool = True) -> TaggingFeatures:
    """Arrays for `sentences`; cuts and words without a prediction are counted in `report`.

    With `require_labels` a sentence without tags is an error; without it (prediction) its
    `label_ids` stay 0 while `label_weights` still mark the first sub-tokens.

    Raises `TaskDataError` naming the sentence's file and line for a tag not in `labels`, or a
    missing one.
    """
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for a word between "
                         f"[CLS] and [SEP]; use at least 3.")
    report = report if report is not None else TruncationReport(max_seq_length)
    n = len(sentences)
    input_ids = np.full((n, max_seq_length), tokenizer.pad_id, np.int32)
    input_mask = np.zeros((n, max_seq_length), np.int32)
    label_ids = np.zeros((n, max_seq_length), np.int32)
    label_weights = np.zeros((n, max_seq_length), np.float32)
    word_starts = []
    room = max_seq_length - 2
    for row, sentence in enumerate(sentences):
        if sentence.tags is None and require_labels:
            raise TaskDataError(sentence.location, "tags", "no tags; training and evaluation "
                                                           "need a tag for every word.")
        ids = [tokenizer.cls_id]
        starts = np.full(len(sentence.words), -1, np.int32)
        total = 0
        for w, word in enumerate(sentence.words):
            pieces = tokenizer.encode(word)
            total += len(pieces)
            if not pieces:
                report.words_without_tokens += 1
                continue
            if len(ids) - 1 >= room:
                report.words_cut += 1
                continue
            starts[w] = len(ids)
            ids.extend(pieces[:room - (len(ids) - 1)])
            if sentence.tags is not None:
                label_ids[row, starts[w]] = labels.id(sentence.tags[w], sentence.location, "tags")
            label_weights[row, starts[w]] = 1.0
        ids.append(tokenizer.sep_id)
        report.words += len(sentence.words)
        report.add(sentence.location, total - (len(ids) - 2))
        input_ids[row, :len(ids)] = ids
        input_mask[row, :len(ids)] = 1
        word_starts.append(starts)
    return TaggingFeatures(input_ids, input_mask, np.zeros_like(input_ids), label_ids,
                           label_weights, tuple(word_starts))


def word_tags(predicted_ids: np.ndarray, features: TaggingFeatures, labels: LabelList,
              missing: str = "O") -> list[list[str]]:
    """One predicted tag per word of every sentence: the prediction at the word's first
    sub-token ([n, max_seq_length] ids, e.g. the argmax of the logits); `missing` for a word
    without one (cut off, or no sub-token)."""
    tags = []
    for row, starts in enumerate(features.word_starts):
        tags.append([labels.name(predicted_ids[row, s]) if s >= 0 else missing for s in starts])
    return tags


def scored_tags(sentences: Sequence[TaggedSentence], predicted_ids: np.ndarray,
                features: TaggingFeatures, labels: LabelList) -> tuple[list[list[str]], list[list[str]]]:
    """(gold tags, predicted tags) of the words that have a prediction, per sentence: what
    `run_ner.py` scores (it drops every position labelled -100, so words cut off or without a
    sub-token are not counted). The report says how many words that leaves out."""
    gold, predicted = [], []
    for row, (sentence, starts) in enumerate(zip(sentences, features.word_starts)):
        kept = [w for w, s in enumerate(starts) if s >= 0]
        gold.append([sentence.tags[w] for w in kept])
        predicted.append([labels.name(predicted_ids[row, starts[w]]) for w in kept])
    return gold, predicted
