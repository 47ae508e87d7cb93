"""Extractive question answering: the span of a context that answers a question.

The context is cut into windows with a document stride (`input_pipeline.tasks.squad_features`:
`doc_stride` is Google's step between windows, not `transformers`' overlap); the answer is chosen
as Google's `run_squad.py` chooses it (`squad_postprocess`: the n-best spans of every window up
to `max_answer_length` tokens, each scored in the window where it has the most context; with
SQuAD 2.0's no-answer option, the empty answer when the [CLS] score beats the best span by more
than the threshold). Answers come as `transformers`' question-answering pipeline gave them
(removed in `transformers` 5): `answer`, its first and last character `start` and `end` in the
context (the answer is exactly `context[start:end]`, as in Hugging Face's `run_qa.py`), and
`score`, its probability among the n-best (`run_squad.py`'s softmax of start + end logits).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bert_jax.inference.batching import round_up
from bert_jax.inference.squad_postprocess import QAPredictions, postprocess_predictions
from bert_jax.inference.task_model import TaskPredictor
from input_pipeline.tasks.squad_examples import QAExample
from input_pipeline.tasks.squad_features import QAFeatureConfig, QAFeatures, convert_examples_to_features


class QuestionAnswerer(TaskPredictor):
    """A fine-tuned `BertForQuestionAnswering`: `QuestionAnswerer.load(path)(question, context)`."""
    kind = "question_answering"
    task = "question answering"

    def feature_config(self, max_seq_length: int = 384, doc_stride: int = 128,
                       max_query_length: int = 64) -> QAFeatureConfig:
        """`run_squad.py`'s window settings, the length capped at what the model takes."""
        return QAFeatureConfig(min(max_seq_length, self.buckets.max_length), doc_stride, max_query_length)

    def window_logits(self, features: QAFeatures) -> tuple[np.ndarray, np.ndarray]:
        """Start and end logits [windows, max_seq_length], padding positions included: as
        `run_squad.py` runs the model on whole windows, whose padding positions can take places
        among the `n_best_size` best starts and ends."""
        windows, length = features.input_ids.shape
        bucket = round_up(length, self.buckets.lengths)
        start = np.zeros((windows, length), np.float32)
        end = np.zeros((windows, length), np.float32)
        for first in range(0, windows, self.buckets.max_batch_size):
            rows = slice(first, min(first + self.buckets.max_batch_size, windows))
            n = rows.stop - rows.start
            shape = (round_up(n, self.buckets.batch_sizes), bucket)
            inputs = []
            for name in ("input_ids", "input_mask", "segment_ids"):
                padded = np.zeros(shape, np.int32)
                padded[:n, :length] = getattr(features, name)[rows]
                if name == "input_ids" and self.tokenizer.pad_id != 0:
                    padded[:n, length:] = self.tokenizer.pad_id
                inputs.append(padded)
            out = self.forward(*inputs)
            start[rows] = out["start_logits"][:n, :length]
            end[rows] = out["end_logits"][:n, :length]
        return start, end

    def predict(self, examples: Sequence[QAExample], config: QAFeatureConfig | None = None, *,
                n_best_size: int = 20, max_answer_length: int = 30,
                version_2_with_negative: bool = False, null_score_diff_threshold: float = 0.0
                ) -> tuple[QAPredictions, QAFeatures, np.ndarray, np.ndarray]:
        """`run_squad.py`'s predictions for `examples` (what `write_predictions` writes), with the
        windows and their start and end logits."""
        features, _ = convert_examples_to_features(examples, self.tokenizer, config or self.feature_config())
        start, end = self.window_logits(features)
        predictions = postprocess_predictions(
            examples, features, start, end, n_best_size=n_best_size, max_answer_length=max_answer_length,
            version_2_with_negative=version_2_with_negative,
            null_score_diff_threshold=null_score_diff_threshold)
        return predictions, features, start, end

    def __call__(self, question: str | Sequence[str], context: str | Sequence[str], *,
                 max_seq_length: int = 384, doc_stride: int = 128, max_query_length: int = 64,
                 n_best_size: int = 20, max_answer_length: int = 30,
                 version_2_with_negative: bool = False, null_score_diff_threshold: float = 0.0) -> dict | list[dict]:
        """The answer to each question about its context (one context for all questions if one
        is given): `{"answer", "start", "end", "score"}` (see the module docstring). With
        `version_2_with_negative`, "no answer" is `{"answer": "", "start": 0, "end": 0}`, and
        every answer has its `null_odds` (the no-answer score minus the best span's; above
        `null_score_diff_threshold` means no answer)."""
        single = isinstance(question, str)
        questions = [question] if single else list(question)
        contexts = [context] * len(questions) if isinstance(context, str) else list(context)
        if len(contexts) != len(questions):
            raise ValueError(f"{len(questions)} questions and {len(contexts)} contexts; give one "
                             "context per question, or one for all.")
        examples = [QAExample(str(i), q, c, ()) for i, (q, c) in enumerate(zip(questions, contexts))]
        predictions, features, _, _ = self.predict(
            examples, self.feature_config(max_seq_length, doc_stride, max_query_length),
            n_best_size=n_best_size, max_answer_length=max_answer_length,
            version_2_with_negative=version_2_with_negative,
            null_score_diff_threshold=null_score_diff_threshold)
        answers = []
        for example in examples:
            answer = self._answer(example, predictions, features)
            if version_2_with_negative:
                answer["null_odds"] = predictions.null_odds[example.id]
            answers.append(answer)
        return answers[0] if single else answers

    def _answer(self, example: QAExample, predictions: QAPredictions, features: QAFeatures) -> dict:
        text = predictions.answers[example.id]
        entry = next(e for e in predictions.nbest[example.id] if e["text"] == text)
        span = predictions.spans[example.id]
        if text == "" or span is None:
            return {"answer": text, "start": 0, "end": 0, "score": entry["probability"]}
        window, first, last = span
        offsets = features.token_offsets[window]
        return {"answer": text, "start": int(offsets[first, 0]), "end": int(offsets[last, 1]),
                "score": entry["probability"]}
