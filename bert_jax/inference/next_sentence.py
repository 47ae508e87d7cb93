"""Next-sentence prediction: the probability that sentence B follows sentence A, from the
pretraining NSP head.

The pair is fed as in pretraining, `[CLS] A [SEP] B [SEP]` with segment 0 for `[CLS] A [SEP]` and
1 for `B [SEP]`. Of the head's two logits, index 0 is "B is the next sentence" and index 1 "B is
random", as in Google's original (`next_sentence_labels` is 1 for a random B) and in
`transformers.BertForNextSentencePrediction`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.inference.batching import BucketedModel, padded_batches, sequence_pair
from bert_jax.inference.loading import NSP_HEAD, POOLER

IS_NEXT, RANDOM = 0, 1


class NextSentencePredictor(BucketedModel):
    """P(B follows A) for pairs of texts. Build it with `NextSentencePredictor.load(path)`."""
    required_heads = (POOLER, NSP_HEAD)
    task = "next-sentence prediction"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._logits = self.jit(self._nsp_logits)

    def _nsp_logits(self, params: Any, input_ids: jax.Array, input_mask: jax.Array,
                    segment_ids: jax.Array) -> jax.Array:
        # The encoder and the NSP head only: the masked-LM head's vocabulary projection, the
        # largest matmul, is not needed.
        def nsp(module, *inputs):
            return module.next_sentence(module.bert(*inputs)[1]).astype(jnp.float32)
        return self.model.apply({"params": params}, input_ids, input_mask, segment_ids, method=nsp)

    def logits(self, pairs: Sequence[tuple[str, str]], truncate: bool = False) -> np.ndarray:
        """The NSP logits [len(pairs), 2] (index 0: is next, 1: random), in input order.

        Raises ValueError for a pair longer than the model takes, unless `truncate`.
        """
        sequences = [sequence_pair(self.tokenizer, a, b, self.buckets.max_length, truncate,
                                   what=f"pair {i + 1}") for i, (a, b) in enumerate(pairs)]
        logits = np.zeros((len(pairs), 2), np.float32)
        for batch in padded_batches(sequences, self.buckets):
            out = jax.device_get(self._logits(self.params, batch.input_ids, batch.input_mask,
                                              batch.segment_ids))
            logits[batch.rows] = out[:len(batch.rows)]
        return logits

    def __call__(self, pairs: Sequence[tuple[str, str]], truncate: bool = False) -> np.ndarray:
        """P(B is the sentence after A) for each (A, B) pair: [len(pairs)] float32."""
        logits = self.logits(pairs, truncate)
        # Softmax over the two logits, written out for float32 on the host.
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (shifted[:, IS_NEXT] / shifted.sum(axis=1)).astype(np.float32)


def read_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(A, B) pairs from a TSV file: one `A<TAB>B` per line; blank lines are skipped.

    Raises ValueError naming the line when a line does not have exactly one tab.
    """
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise ValueError(f"{path}:{number}: expected 'sentence A<TAB>sentence B', found "
                                 f"{len(fields) - 1} tabs.")
            pairs.append((fields[0], fields[1]))
    return pairs


def format_results(pairs: Iterable[tuple[str, str]], probabilities: Iterable[float],
                   output_format: str = "jsonl") -> str:
    """The results as JSON lines (`{"sentence_a", "sentence_b", "is_next"}`) or a table."""
    rows = list(zip(pairs, probabilities))
    if output_format == "jsonl":
        return "\n".join(json.dumps({"sentence_a": a, "sentence_b": b, "is_next": round(float(p), 6)},
                                    ensure_ascii=False) for (a, b), p in rows)
    if output_format != "table":
        raise ValueError(f"output format {output_format!r} must be 'jsonl' or 'table'.")
    width = 40

    def cut(text: str) -> str:
        return text if len(text) <= width else text[:width - 3] + "..."
    lines = [f"{'is_next':>7}  {'sentence A':<{width}}  sentence B"]
    lines += [f"{p:7.4f}  {cut(a):<{width}}  {cut(b)}" for (a, b), p in rows]
    return "\n".join(lines)
