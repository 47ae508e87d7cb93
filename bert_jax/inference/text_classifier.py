"""Sequence classification and regression of single texts and text pairs, answered as
`transformers`' `pipeline("text-classification")` answers: `{"label", "score"}`, the score the
softmax probability of the label (or, for a regression model, the predicted value itself, under
the one label's name).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bert_jax.inference.batching import Tokens, padded_batches, sequence_pair, single_sequence
from bert_jax.inference.task_model import TaskPredictor

TextInput = str | tuple[str, str]  # A text, or a pair (text, text_pair).


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float32 as the pipeline computes it."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class TextClassifier(TaskPredictor):
    """A fine-tuned `BertForSequenceClassification`: `TextClassifier.load(path)(texts)`."""
    kind = "sequence_classification"
    task = "text classification"

    @property
    def is_regression(self) -> bool:
        """One output, or a source that says so: the score is the prediction (STS-B)."""
        return len(self.labels) == 1 or self.problem_type == "regression"

    def encode(self, inputs: Sequence[TextInput], truncate: bool = False,
               where: Sequence[str] | None = None) -> list[Tokens]:
        """The model inputs: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` (pairs cut as BERT's
        `run_classifier.py` cuts them when `truncate`). Errors name the input by `where` (e.g.
        "file:line"), or by number."""
        sequences = []
        for i, text in enumerate(inputs):
            what = f"input {i + 1}" if where is None else where[i]
            if isinstance(text, str):
                sequences.append(single_sequence(self.tokenizer, text, self.buckets.max_length,
                                                 truncate, what))
            else:
                a, b = text
                sequences.append(sequence_pair(self.tokenizer, a, b, self.buckets.max_length,
                                               truncate, what))
        return sequences

    def logits(self, sequences: Sequence[Tokens]) -> np.ndarray:
        """[inputs, num_labels] float32 logits (the regression value for one output)."""
        out = np.zeros((len(sequences), len(self.labels)), np.float32)
        for batch in padded_batches(sequences, self.buckets):
            logits = self.forward(batch.input_ids, batch.input_mask, batch.segment_ids)
            out[batch.rows] = logits[:len(batch.rows)]
        return out

    def __call__(self, inputs: TextInput | Sequence[TextInput], truncate: bool = False,
                 all_scores: bool = False) -> list[dict] | list[list[dict]]:
        """For each input (a text, or a pair as a tuple (text, text_pair); a list of two texts is
        two inputs), `{"label", "score"}` of the most probable label; with `all_scores`, a list of them for every label, in label order.
        A regression model's score is its prediction.

        A text longer than the model takes raises ValueError, unless `truncate`.
        """
        single = isinstance(inputs, str) or (isinstance(inputs, tuple) and len(inputs) == 2
                                             and all(isinstance(t, str) for t in inputs))
        inputs = [inputs] if single else list(inputs)
        logits = self.logits(self.encode(inputs, truncate))
        scores = logits if self.is_regression else softmax(logits)
        results = []
        for row in scores:
            if all_scores:
                results.append([{"label": name, "score": float(s)} for name, s in zip(self.labels, row)])
            else:
                best = int(np.argmax(row))
                results.append({"label": self.labels[best], "score": float(row[best])})
        return results
