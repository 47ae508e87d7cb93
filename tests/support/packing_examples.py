"""BERT-like examples and the unpacking helpers shared by the packing tests."""

from __future__ import annotations

import numpy as np

SEQ, PREDS = 64, 10


def bert_like_examples(n: int, seed: int = 0, seq: int = SEQ, preds: int = PREDS) -> dict[str, np.ndarray]:
    """Examples in the original layout ([CLS] A [SEP] B [SEP], then padding; predictions first,
    then zero padding) with lengths from 5 to `seq`, most of them short."""
    rng = np.random.default_rng(seed)
    out = {name: np.zeros((n, seq), np.int32) for name in ("input_ids", "input_mask", "segment_ids")}
    out |= {"masked_lm_positions": np.zeros((n, preds), np.int32),
            "masked_lm_ids": np.zeros((n, preds), np.int32),
            "masked_lm_weights": np.zeros((n, preds), np.float32),
            "next_sentence_labels": rng.integers(0, 2, n).astype(np.int32)}
    for i in range(n):
        length = int(min(seq, 5 + rng.geometric(1 / 20)))
        a = int(rng.integers(1, length - 3)) if length > 4 else 1
        out["input_ids"][i, :length] = rng.integers(5, 100, length)
        out["input_ids"][i, [0, a + 1, length - 1]] = [2, 3, 3]
        out["input_mask"][i, :length] = 1
        out["segment_ids"][i, a + 2:length] = 1
        count = min(preds, max(1, round(0.15 * length)))
        out["masked_lm_positions"][i, :count] = np.sort(rng.choice(np.arange(1, length), count, replace=False))
        out["masked_lm_ids"][i, :count] = rng.integers(5, 100, count)
        out["masked_lm_weights"][i, :count] = 1.0
    return out


def unpack(packed: dict[str, np.ndarray]) -> list[dict]:
    """Each packed sequence as (row, slot, its tokens, segments, predictions, label)."""
    found = []
    for r in range(len(packed["input_ids"])):
        for slot in np.flatnonzero(packed["next_sentence_weights"][r]):
            tokens = packed["input_mask"][r] == slot + 1
            start = packed["cls_positions"][r, slot]
            span = np.flatnonzero(tokens)
            assert span[0] == start and np.all(np.diff(span) == 1), "a sequence is one contiguous span"
            np.testing.assert_array_equal(packed["position_ids"][r, span], np.arange(len(span)))
            predicted = (packed["masked_lm_weights"][r] > 0) & tokens[packed["masked_lm_positions"][r]]
            found.append({"row": r, "input_ids": packed["input_ids"][r, span].tolist(),
                          "segment_ids": packed["segment_ids"][r, span].tolist(),
                          "positions": (packed["masked_lm_positions"][r, predicted] - start).tolist(),
                          "ids": packed["masked_lm_ids"][r, predicted].tolist(),
                          "label": int(packed["next_sentence_labels"][r, slot])})
    return found


def as_originals(examples: dict[str, np.ndarray]) -> list[dict]:
    out = []
    for i in range(len(examples["input_ids"])):
        n = int(examples["input_mask"][i].sum())
        k = int((examples["masked_lm_weights"][i] > 0).sum())
        out.append({"input_ids": examples["input_ids"][i, :n].tolist(),
                    "segment_ids": examples["segment_ids"][i, :n].tolist(),
                    "positions": examples["masked_lm_positions"][i, :k].tolist(),
                    "ids": examples["masked_lm_ids"][i, :k].tolist(),
                    "label": int(examples["next_sentence_labels"][i])})
    return out


def key(example: dict) -> str:
    return repr({k: v for k, v in example.items() if k != "row"})
