"""Evaluating a fine-tuning task during training (`training.objective.Evaluator`): one pass over
the evaluation set in order, the model's predictions gathered on the host, and the task's metrics
over all of them as its benchmark defines them (`tasks.metrics`: GLUE's, KLUE's, seqeval's
entity F1; `tasks.squad_metrics`: SQuAD's EM and F1 after `squad_postprocess` picks each
question's answer span from its windows).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.config.finetuning import TaskConfig
from bert_jax.tasks.head_objective import HeadObjective
from bert_jax.tasks.metrics import TASK_METRICS, compute_metrics
from bert_jax.tasks.squad_metrics import evaluate_v1, evaluate_v2, gold_answers
from bert_jax.inference.squad_postprocess import postprocess_predictions
from bert_jax.tasks.task_data import TaskSet, metric_task
from bert_jax.training.array_batches import ArrayBatches
from bert_jax.training.objective import Batch
from input_pipeline.tasks.labels import LabelList
from input_pipeline.tasks.tagging_features import scored_tags

# SQuAD's official scripts report percentages; every other metric here is a fraction.
SQUAD_METRICS = {"squad": ("exact_match", "f1"), "squad_v2": ("exact", "f1")}


def main_metric_name(task: TaskConfig) -> str:
    """The metric that picks the best checkpoint: `task.metric`, else the task's main one."""
    if task.metric:
        return task.metric
    name = metric_task(task)
    return "f1" if name in SQUAD_METRICS else TASK_METRICS[name].main


class TaskEvaluator:
    """The metrics of `objective`'s model on `eval_set`, every evaluation of the loop."""

    def __init__(self, task: TaskConfig, objective: HeadObjective, eval_set: TaskSet,
                 labels: LabelList | None, global_batch_size: int):
        self.task, self.objective, self.eval_set, self.labels = task, objective, eval_set, labels
        self.global_batch_size = global_batch_size
        self.metric_task = metric_task(task)

    def batches(self) -> ArrayBatches:
        inputs = {k: self.eval_set.arrays[k] for k in ("input_ids", "input_mask", "segment_ids")}
        return ArrayBatches(inputs, self.global_batch_size, shuffle=False, repeat=False,
                            process_index=jax.process_index(), process_count=jax.process_count())

    def outputs(self, params: Any, batch: Batch) -> dict[str, jax.Array]:
        """What the metrics need of each row: the predicted class or score, every token's
        predicted tag, or the span logits."""
        logits = self.objective.outputs(params, batch)
        if self.task.type == "qa":
            return logits
        if self.task.type == "regression":
            return {"prediction": logits[:, 0]}
        return {"prediction": jnp.argmax(logits, axis=-1).astype(jnp.int32)}

    def metrics(self, outputs: Iterator[dict[str, np.ndarray]]) -> dict[str, float]:
        # Rows in the evaluation set's order; the padding of the last batch comes after them.
        gathered = list(outputs)
        n = len(self.eval_set)
        every = {k: np.concatenate([o[k] for o in gathered])[:n] for k in gathered[0]}
        if self.task.type == "qa":
            return self._qa_metrics(every["start_logits"], every["end_logits"])
        if self.task.type == "tagging":
            gold, predicted = scored_tags(self.eval_set.examples, every["prediction"],
                                          self.eval_set.features, self.labels)
            return compute_metrics(self.metric_task, gold, predicted, self.labels.names)
        labels = self.eval_set.arrays["label"]
        return compute_metrics(self.metric_task, labels, every["prediction"])

    def _qa_metrics(self, start_logits: np.ndarray, end_logits: np.ndarray) -> dict[str, float]:
        task, examples = self.task, self.eval_set.examples
        predictions = postprocess_predictions(
            examples, self.eval_set.features, start_logits, end_logits, n_best_size=task.n_best_size,
            max_answer_length=task.max_answer_length, version_2_with_negative=task.version_2_with_negative,
            null_score_diff_threshold=task.null_score_diff_threshold)
        golds = gold_answers(examples)
        if task.version_2_with_negative:
            scores = evaluate_v2(golds, predictions.answers, predictions.null_odds)
        else:
            scores = evaluate_v1(golds, predictions.answers)
        return {k: float(v) for k, v in scores.items()}
