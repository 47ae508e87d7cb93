"""Sentence-BERT examples to arrays: each side of each example on its own as `[CLS] text [SEP]`
(segment 0), cut to `max_seq_length` tokens in all (as sentence-transformers' tokenizer call,
`truncation=True, max_length=max_seq_length`), padded with id 0 to `max_seq_length`.

Features, by side ("a", "b", then "negative_1", ...: `side_names`): `{side}_input_ids` and
`{side}_input_mask` [examples, max_seq_length] int32; with the label `labels` [examples] int32
(NLI) or `scores` [examples] float32 (STS, in [0, 1]). `lengths` [examples] is each example's
longest side in tokens, which length buckets pad a batch to (`training.array_batches`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from input_pipeline.tasks.records import TaskDataError
from input_pipeline.tasks.sentence_pairs import SentenceData
from input_pipeline.tasks.truncation import TruncationReport

Tokenizer = Any  # wordpiece.BertTokenizer or sentencepiece_tokenizer.SentencePieceTokenizer


def side_names(num_sides: int) -> tuple[str, ...]:
    """The sides of a batch's examples: "a", "b", then "negative_1", "negative_2", ..."""
    return ("a", "b", *(f"negative_{i}" for i in range(1, num_sides - 1)))[:num_sides]


@dataclasses.dataclass(frozen=True)
class SentenceFeatures:
    """The arrays of n examples (see the module docstring) and each one's longest side."""
    arrays: dict[str, np.ndarray]
    lengths: np.ndarray  # [n] int32

    def __len__(self) -> int:
        return len(self.lengths)


def lower_case(text: str) -> str:
    """Each character lower-cased on its own, as the `tokenizers` library's Lowercase normalizer
    (which sentence-transformers' `do_lower_case` adds) does, for training and `bert-jax encode`
    alike: `str.lower` would make a word's final capital sigma a final sigma, which it does not."""
    return "".join(c.lower() for c in text)


def sentence_features(data: SentenceData, tokenizer: Tokenizer, max_seq_length: int, *,
                      do_lower_case: bool = False, report: TruncationReport | None = None) -> SentenceFeatures:
    """The arrays of `data`'s examples; every text cut is counted in `report`.

    Raises `TaskDataError` naming the example's file and line for a text without any token.
    """
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for a token besides [CLS] and [SEP].")
    n, sides = len(data.examples), side_names(data.num_sides)
    ids = np.zeros((data.num_sides, n, max_seq_length), np.int32)
    lengths = np.zeros((data.num_sides, n), np.int32)
    for i, example in enumerate(data.examples):
        cut = 0
        for s, text in enumerate(example.texts):
            tokens = tokenizer.encode(lower_case(text) if do_lower_case else text)
            if not tokens:
                raise TaskDataError(example.location, None, f"{text!r:.60} (text {s + 1}) has no "
                                                            f"token (only control characters?).")
            cut += max(0, len(tokens) - (max_seq_length - 2))
            row = [tokenizer.cls_id, *tokens[:max_seq_length - 2], tokenizer.sep_id]
            ids[s, i, :len(row)] = row
            lengths[s, i] = len(row)
        if report is not None:
            report.add(example.location, cut)
    arrays = {}
    for s, side in enumerate(sides):
        arrays[f"{side}_input_ids"] = ids[s]
        arrays[f"{side}_input_mask"] = (np.arange(max_seq_length) < lengths[s][:, None]).astype(np.int32)
    if data.objective == "nli":
        arrays["labels"] = np.array([e.label for e in data.examples], np.int32)
    elif data.objective == "sts":
        arrays["scores"] = np.array([e.label for e in data.examples], np.float32)
    return SentenceFeatures(arrays, lengths.max(axis=0))
