"""The metrics fine-tuning tasks report, as their benchmarks define them, computed by maintained
libraries (scikit-learn, SciPy, seqeval) rather than by hand; which ones each task reports; the
one that picks the best checkpoint; and the GLUE average.

GLUE (Wang et al. 2019, section 3): accuracy, but Matthews correlation for CoLA, F1 and accuracy
for MRPC and QQP (F1 of the positive class, "equivalent" / "duplicate", id 1), Pearson and
Spearman correlation for STS-B, MNLI accuracy on the matched and the mismatched sets. KLUE (Park
et al. 2021, and its baseline's `klue_baseline/metrics/functional.py`): macro F1 for YNAT,
accuracy for NLI, Pearson correlation and F1 of the scores split at 3.0 for STS, entity-level
macro F1 (seqeval, strict IOB2) and character-level macro F1 for NER. CoNLL-2003 as `run_ner.py`
reports it: seqeval's entity-level precision, recall and F1 (micro average over entities, its
default mode, which reads IOB1 and IOB2 tags alike, as conlleval) and its token accuracy.

Values are fractions (0.85), not percentages.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.stats
import seqeval.metrics
import seqeval.scheme
import sklearn.metrics


def accuracy(labels: Sequence, predictions: Sequence) -> float:
    return float(sklearn.metrics.accuracy_score(labels, predictions))


def binary_f1(labels: Sequence[int], predictions: Sequence[int], positive: int = 1) -> float:
    """F1 of the positive class (GLUE's MRPC and QQP: id 1)."""
    return float(sklearn.metrics.f1_score(labels, predictions, pos_label=positive, average="binary"))


def macro_f1(labels: Sequence, predictions: Sequence, classes: Sequence | None = None,
             zero_division: float | str = "warn") -> float:
    """The unweighted mean of the F1 of each class (over `classes` if given)."""
    return float(sklearn.metrics.f1_score(labels, predictions, labels=classes, average="macro",
                                          zero_division=zero_division))


def matthews_correlation(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """Matthews correlation coefficient (CoLA): (TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)),
    0 when a factor of the denominator is 0 (as scikit-learn)."""
    return float(sklearn.metrics.matthews_corrcoef(labels, predictions))


def pearson(labels: Sequence[float], predictions: Sequence[float]) -> float:
    return float(scipy.stats.pearsonr(labels, predictions).statistic)


def spearman(labels: Sequence[float], predictions: Sequence[float]) -> float:
    return float(scipy.stats.spearmanr(labels, predictions).statistic)


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]],
                  strict_iob2: bool = False, average: str = "micro") -> dict[str, float]:
    """Entity-level precision, recall and F1 (seqeval) and token accuracy of tag sequences, one
    list per sentence. Default: seqeval's default mode, micro average (`run_ner.py`'s
    "overall_*"); `strict_iob2` with `average="macro"` is KLUE-NER's entity macro F1."""
    mode = {"mode": "strict", "scheme": seqeval.scheme.IOB2} if strict_iob2 else {}
    gold, predicted = [list(s) for s in gold], [list(s) for s in predicted]
    return {
        "precision": float(seqeval.metrics.precision_score(gold, predicted, average=average,
                                                           zero_division=0, **mode)),
        "recall": float(seqeval.metrics.recall_score(gold, predicted, average=average,
                                                     zero_division=0, **mode)),
        "f1": float(seqeval.metrics.f1_score(gold, predicted, average=average, zero_division=0,
                                             **mode)),
        "accuracy": float(seqeval.metrics.accuracy_score(gold, predicted)),
    }


@dataclasses.dataclass(frozen=True)
class TaskMetrics:
    """What a task reports (`names`, in order) and the metric that picks its best checkpoint
    (`main`: "score" is the mean of `names`, GLUE's task score for MRPC, QQP and STS-B)."""
    kind: str  # classification, regression or tagging
    names: tuple[str, ...]
    main: str


_ACCURACY = TaskMetrics("classification", ("accuracy",), "accuracy")

TASK_METRICS: dict[str, TaskMetrics] = {
    "glue/cola": TaskMetrics("classification", ("matthews_correlation",), "matthews_correlation"),
    "glue/sst2": _ACCURACY,
    "glue/mrpc": TaskMetrics("classification", ("f1", "accuracy"), "score"),
    "glue/qqp": TaskMetrics("classification", ("f1", "accuracy"), "score"),
    "glue/stsb": TaskMetrics("regression", ("pearson", "spearman"), "score"),
    "glue/mnli": _ACCURACY,  # The matched dev set; the mismatched one is "glue/mnli_mismatched".
    "glue/mnli_matched": _ACCURACY,
    "glue/mnli_mismatched": _ACCURACY,
    "glue/qnli": _ACCURACY,
    "glue/rte": _ACCURACY,
    "glue/wnli": _ACCURACY,
    "glue/ax": TaskMetrics("classification", ("matthews_correlation",), "matthews_correlation"),
    "snli": _ACCURACY,
    "multi_nli": _ACCURACY,
    "klue/ynat": TaskMetrics("classification", ("macro_f1",), "macro_f1"),
    "klue/nli": _ACCURACY,
    "klue/sts": TaskMetrics("regression", ("pearson", "f1"), "pearson"),
    "klue/ner": TaskMetrics("tagging", ("entity_macro_f1", "char_macro_f1"), "entity_macro_f1"),
    "conll2003": TaskMetrics("tagging", ("precision", "recall", "f1", "accuracy"), "f1"),
    # Any other data, by the task's type (`bert-jax finetune` without a known --format).
    "classification": _ACCURACY,
    "regression": TaskMetrics("regression", ("pearson", "spearman"), "score"),
    "tagging": TaskMetrics("tagging", ("precision", "recall", "f1", "accuracy"), "f1"),
}

# KLUE-STS counts a pair as a paraphrase from this score up (its "binary-label").
KLUE_STS_THRESHOLD = 3.0


def compute_metrics(task: str, labels, predictions, label_names: Sequence[str] | None = None,
                    ) -> dict[str, float]:
    """The metrics `task` reports (`TASK_METRICS[task].names`), and "score" (their mean) where
    that is the main metric.

    Classification: `labels` and `predictions` are class ids. Regression: scores. Tagging: one
    list of tags per sentence (`input_pipeline.tasks.tagging_features.scored_tags`), and
    `label_names` the tag list (KLUE-NER's character F1 is over every tag).
    """
    spec = TASK_METRICS.get(task)
    if spec is None:
        raise ValueError(f"no metrics for task {task!r}; known: {sorted(TASK_METRICS)}.")
    if spec.kind == "tagging":
        if task == "klue/ner":
            entities = entity_scores(labels, predictions, strict_iob2=True, average="macro")
            flat_gold = [t for s in labels for t in s]
            flat_predicted = [t for s in predictions for t in s]
            # KLUE's baseline scores characters over every tag, O included, and counts a tag
            # never gold nor predicted as F1 1 (zero_division=True).
            classes = list(label_names) if label_names is not None else None
            values = {"entity_macro_f1": entities["f1"],
                      "char_macro_f1": macro_f1(flat_gold, flat_predicted, classes, zero_division=1)}
        else:
            values = entity_scores(labels, predictions)
    else:
        labels, predictions = np.asarray(labels), np.asarray(predictions)
        if labels.shape != predictions.shape or labels.ndim != 1 or not len(labels):
            raise ValueError(f"{task}: labels {labels.shape} and predictions {predictions.shape} "
                             f"must be equally long, non-empty vectors.")
        functions = {
            "accuracy": lambda: accuracy(labels, predictions),
            "f1": lambda: binary_f1(labels, predictions),
            "macro_f1": lambda: macro_f1(labels, predictions),
            "matthews_correlation": lambda: matthews_correlation(labels, predictions),
            "pearson": lambda: pearson(labels, predictions),
            "spearman": lambda: spearman(labels, predictions),
        }
        if task == "klue/sts":
            functions["f1"] = lambda: binary_f1(labels >= KLUE_STS_THRESHOLD,
                                                predictions >= KLUE_STS_THRESHOLD, positive=True)
        values = {name: functions[name]() for name in spec.names}
    values = {name: values[name] for name in spec.names}
    if spec.main == "score":
        values["score"] = sum(values.values()) / len(values)
    return values


def main_metric(task: str, metrics: Mapping[str, float]) -> float:
    """The value that picks `task`'s best checkpoint (higher is better)."""
    return metrics[TASK_METRICS[task].main]


GLUE_TASKS = ("glue/cola", "glue/sst2", "glue/mrpc", "glue/stsb", "glue/qqp", "glue/mnli",
              "glue/qnli", "glue/rte", "glue/wnli")
GLUE_CONVENTIONS = ("glue", "bert")
# Devlin et al. (2019), Table 1: one number per task (F1 for QQP and MRPC, Spearman for STS-B).
_BERT_TABLE_METRIC = {"glue/mrpc": "f1", "glue/qqp": "f1", "glue/stsb": "spearman",
                      "glue/cola": "matthews_correlation"}


def glue_score(results: Mapping[str, Mapping[str, float]], tasks: Sequence[str] = GLUE_TASKS,
               convention: str = "glue") -> float:
    """The GLUE average of per-task results (`compute_metrics` outputs, keyed by task; MNLI's
    mismatched set under "glue/mnli_mismatched").

    "glue": the leaderboard's score (Wang et al. 2019, section 3.4): the macro-average of task
    scores, a task with several metrics scoring their unweighted mean (MRPC and QQP: F1 and
    accuracy; STS-B: Pearson and Spearman; MNLI: matched and mismatched accuracy). BERT-Large's
    published test results give its leaderboard score, 80.5 (tests/unit/test_task_metrics.py).
    "bert": the "Average" of BERT's Table 1: F1 for MRPC and QQP, Spearman for STS-B, and MNLI's
    matched and mismatched accuracy as two entries; Devlin et al. leave WNLI out (pass `tasks`
    without it) and get 79.6 (Base) and 82.1 (Large).

    Raises ValueError naming a task of `tasks` missing from `results`.
    """
    if convention not in GLUE_CONVENTIONS:
        raise ValueError(f"convention {convention!r} is not one of {GLUE_CONVENTIONS}.")
    needed = list(tasks) + (["glue/mnli_mismatched"] if "glue/mnli" in tasks else [])
    missing = [task for task in needed if task not in results]
    if missing:
        raise ValueError(f"the GLUE average needs results for {missing}; pass `tasks` to average "
                         f"over fewer (e.g. without glue/wnli, as BERT's paper).")
    entries = []
    for task in tasks:
        metrics = TASK_METRICS[task].names
        if convention == "bert":
            entries.append(results[task][_BERT_TABLE_METRIC.get(task, "accuracy")])
            if task == "glue/mnli":
                entries.append(results["glue/mnli_mismatched"]["accuracy"])
        elif task == "glue/mnli":
            entries.append((results[task]["accuracy"] + results["glue/mnli_mismatched"]["accuracy"]) / 2)
        else:
            entries.append(sum(results[task][m] for m in metrics) / len(metrics))
    score = sum(entries) / len(entries)
    if not math.isfinite(score):
        raise ValueError(f"the GLUE average is {score} (a task's metric is not a number).")
    return score
