"""Classification and regression examples to fixed-length arrays: `[CLS] a [SEP]` or
`[CLS] a [SEP] b [SEP]` with segment ids 0 for `[CLS] a [SEP]` and 1 for `b [SEP]`, padded with
`[PAD]` (id 0 in BERT's vocabularies and ours) to `max_seq_length`, as BERT's `run_classifier.py`
and Hugging Face's `BertTokenizer(a, b, truncation=True, padding="max_length")` build them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from input_pipeline.tasks.labels import LabelList
from input_pipeline.tasks.records import TaskDataError, TextExample
from input_pipeline.tasks.truncation import TruncationReport, truncate_pair

Tokenizer = Any  # wordpiece.BertTokenizer or sentencepiece_tokenizer.SentencePieceTokenizer


@dataclasses.dataclass(frozen=True)
class TextFeatures:
    """The model inputs of n examples. `label` is int32 class ids, or float32 scores for
    regression; -1 (classification) or NaN (regression) where the example has no label."""
    input_ids: np.ndarray    # [n, max_seq_length] int32
    input_mask: np.ndarray   # [n, max_seq_length] int32, 1 on real tokens
    segment_ids: np.ndarray  # [n, max_seq_length] int32
    label: np.ndarray        # [n] int32 or float32

    def __len__(self) -> int:
        return len(self.label)


def encode_text_example(tokenizer: Tokenizer, example: TextExample, max_seq_length: int,
                        pair_truncation: str = "google") -> tuple[list[int], list[int], int]:
    """(token ids, segment ids, tokens cut) of one example, with `[CLS]` and `[SEP]`s, at most
    `max_seq_length` long. A single text keeps its first `max_seq_length - 2` tokens."""
    tokens_a = tokenizer.encode(example.text_a)
    if not tokens_a:
        raise TaskDataError(example.location, "text_a", f"{example.text_a!r:.60} has no token "
                                                        f"(only control characters?).")
    if example.text_b is None:
        cut = max(0, len(tokens_a) - (max_seq_length - 2))
        del tokens_a[max_seq_length - 2:]
        ids = [tokenizer.cls_id, *tokens_a, tokenizer.sep_id]
        return ids, [0] * len(ids), cut
    tokens_b = tokenizer.encode(example.text_b)
    cut = truncate_pair(tokens_a, tokens_b, max_seq_length - 3, pair_truncation)
    ids = [tokenizer.cls_id, *tokens_a, tokenizer.sep_id, *tokens_b, tokenizer.sep_id]
    return ids, [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1), cut


def text_features(examples: Sequence[TextExample], tokenizer: Tokenizer, max_seq_length: int,
                  labels: LabelList | None, *, report: TruncationReport | None = None,
                  pair_truncation: str = "google", require_labels: bool = True) -> TextFeatures:
    """Arrays for `examples`: classification with `labels`, regression with `labels=None`.

    Every cut is counted in `report` (pass one to see it; the caller logs `report.summary()`).
    With `require_labels` (training, evaluation) an example without a label is an error; without
    it (prediction) its label is -1 or NaN.

    Raises `TaskDataError` naming the example's file, line and field for an unknown label, a
    missing one, or a text without any token.
    """
    if max_seq_length < 4:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for text between "
                         f"[CLS] and [SEP]s; use at least 4.")
    report = report if report is not None else TruncationReport(max_seq_length)
    n = len(examples)
    input_ids = np.zeros((n, max_seq_length), np.int32)
    segment_ids = np.zeros((n, max_seq_length), np.int32)
    input_mask = np.zeros((n, max_seq_length), np.int32)
    label = np.full(n, -1, np.int32) if labels is not None else np.full(n, np.nan, np.float32)
    pad_id = tokenizer.pad_id
    if pad_id != 0:
        input_ids.fill(pad_id)
    for row, example in enumerate(examples):
        ids, segments, cut = encode_text_example(tokenizer, example, max_seq_length, pair_truncation)
        report.add(example.location, cut)
        input_ids[row, :len(ids)] = ids
        segment_ids[row, :len(ids)] = segments
        input_mask[row, :len(ids)] = 1
        if example.label is None:
            if require_labels:
                raise TaskDataError(example.location, "label", "no label; training and "
                                                               "evaluation need one for every "
                                                               "example (is the label field "
                                                               "named right? Drop unlabelled "
                                                               "ones with records.drop_unlabeled).")
        elif labels is not None:
            if not isinstance(example.label, str):
                raise TaskDataError(example.location, "label", f"a score ({example.label!r}) "
                                                               f"where a class name is expected.")
            label[row] = labels.id(example.label, example.location)
        else:
            if isinstance(example.label, str):
                raise TaskDataError(example.location, "label", f"class {example.label!r} where "
                                                               f"a regression score is expected.")
            label[row] = example.label
    return TextFeatures(input_ids, input_mask, segment_ids, label)
