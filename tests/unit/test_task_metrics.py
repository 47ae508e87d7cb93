"""Tests for the fine-tuning metrics (`bert_jax/tasks/metrics.py`).

References: scikit-learn, SciPy and seqeval called directly (seqeval's `classification_report`
"micro avg" is what Hugging Face's `evaluate` seqeval metric, and so `run_ner.py`, reports as
"overall"); values worked out by hand on small cases; and the GLUE averages BERT's authors
published (Devlin et al. 2019, Table 1, and the GLUE leaderboard's test results for BERT).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import seqeval.metrics
import seqeval.scheme
import sklearn.metrics

from bert_jax.tasks.metrics import (
    GLUE_TASKS,
    TASK_METRICS,
    compute_metrics,
    entity_scores,
    glue_score,
    main_metric,
    matthews_correlation,
    pearson,
    spearman,
)


def test_hand_computed_values():
    # TP=3, TN=2, FP=1, FN=1 (label 1 positive).
    labels = [1, 1, 1, 1, 0, 0, 0]
    predictions = [1, 1, 1, 0, 0, 0, 1]
    # MCC = (3*2 - 1*1) / sqrt(4 * 4 * 3 * 3) = 5/12; F1 = 2PR/(P+R) with P = R = 3/4.
    assert matthews_correlation(labels, predictions) == pytest.approx(5 / 12, abs=1e-15)
    metrics = compute_metrics("glue/mrpc", labels, predictions)
    assert metrics == pytest.approx({"f1": 0.75, "accuracy": 5 / 7, "score": (0.75 + 5 / 7) / 2})
    assert main_metric("glue/mrpc", metrics) == metrics["score"]
    # Pearson of (1, 2, 3) and (1, 2, 4): 3 / (sqrt(2) * sqrt(42) / 3) = 9 / sqrt(84).
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(9 / math.sqrt(84), abs=1e-15)
    # Spearman of ranks (1, 2, 3) and (1, 3, 2): 1 - 6 * 2 / (3 * 8) = 0.5.
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5, abs=1e-15)
    stsb = compute_metrics("glue/stsb", [1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    assert stsb["score"] == pytest.approx((stsb["pearson"] + 0.5) / 2)
    assert compute_metrics("glue/cola", labels, predictions) == pytest.approx(
        {"matthews_correlation": 5 / 12})


def test_hand_computed_entities():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    # Gold entities PER, LOC, ORG; predicted PER, ORG (wrong type), ORG: 2 right of 3 each way.
    scores = compute_metrics("conll2003", gold, predicted)
    assert scores == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "accuracy": 5 / 6})
    # An entity starting with I- counts in the default (conlleval) mode, not in strict IOB2.
    gold, predicted = [["I-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]]
    assert entity_scores(gold, predicted)["f1"] == 1.0
    assert entity_scores(gold, predicted, strict_iob2=True)["f1"] == 0.0


def test_equal_to_libraries_on_random_data():
    rng = np.random.default_rng(0)
    labels, predictions = rng.integers(0, 2, 500), rng.integers(0, 2, 500)
    predictions[:300] = labels[:300]
    metrics = compute_metrics("glue/qqp", labels, predictions)
    assert metrics["f1"] == sklearn.metrics.f1_score(labels, predictions)
    assert metrics["accuracy"] == sklearn.metrics.accuracy_score(labels, predictions)
    assert compute_metrics("glue/cola", labels, predictions)["matthews_correlation"] == \
        sklearn.metrics.matthews_corrcoef(labels, predictions)
    three = rng.integers(0, 3, 500)
    guesses = np.where(rng.random(500) < 0.6, three, 0)
    assert compute_metrics("klue/ynat", three, guesses)["macro_f1"] == \
        sklearn.metrics.f1_score(three, guesses, average="macro")
    scores, noisy = rng.uniform(0, 5, 300), rng.uniform(0, 5, 300)
    noisy = (scores + noisy) / 2
    stsb = compute_metrics("glue/stsb", scores, noisy)
    assert stsb["pearson"] == scipy.stats.pearsonr(scores, noisy)[0]
    assert stsb["spearman"] == scipy.stats.spearmanr(scores, noisy)[0]
    klue = compute_metrics("klue/sts", scores, noisy)
    assert klue["f1"] == sklearn.metrics.f1_score(scores >= 3, noisy >= 3)
    assert main_metric("klue/sts", klue) == klue["pearson"]


def _random_tags(rng, n):
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    return [[tags[i] for i in rng.integers(0, len(tags), rng.integers(1, 20))] for _ in range(n)]


def test_entities_equal_seqeval_report():
    rng = np.random.default_rng(1)
    gold = _random_tags(rng, 200)
    predicted = [[t if rng.random() < 0.7 else "O" for t in s] for s in gold]
    ours = compute_metrics("conll2003", gold, predicted)
    report = seqeval.metrics.classification_report(gold, predicted, output_dict=True)
    assert ours["precision"] == report["micro avg"]["precision"]
    assert ours["recall"] == report["micro avg"]["recall"]
    assert ours["f1"] == report["micro avg"]["f1-score"]
    assert ours["accuracy"] == seqeval.metrics.accuracy_score(gold, predicted)
    klue_tags = ["B-PS", "I-PS", "B-LC", "I-LC", "O"]
    gold = [[klue_tags[i] for i in rng.integers(0, 5, 15)] for _ in range(50)]
    predicted = [[t if rng.random() < 0.8 else "O" for t in s] for s in gold]
    klue = compute_metrics("klue/ner", gold, predicted, label_names=klue_tags)
    assert klue["entity_macro_f1"] == seqeval.metrics.f1_score(
        gold, predicted, average="macro", mode="strict", scheme=seqeval.scheme.IOB2)
    flat_gold = [t for s in gold for t in s]
    flat_predicted = [t for s in predicted for t in s]
    assert klue["char_macro_f1"] == sklearn.metrics.f1_score(
        flat_gold, flat_predicted, labels=klue_tags, average="macro", zero_division=1)


# Published results of BERT (Devlin et al. 2019, Table 1, GLUE test sets; the leaderboard adds
# the second metric of MRPC, QQP and STS-B): the averages computed from them must be the ones
# published, 79.6 / 82.1 (the paper's "Average", without WNLI) and 78.3 / 80.5 (the GLUE score).
BERT_BASE = {"glue/cola": {"matthews_correlation": 52.1}, "glue/sst2": {"accuracy": 93.5},
             "glue/mrpc": {"f1": 88.9, "accuracy": 84.8}, "glue/stsb": {"pearson": 87.1, "spearman": 85.8},
             "glue/qqp": {"f1": 71.2, "accuracy": 89.2}, "glue/mnli": {"accuracy": 84.6},
             "glue/mnli_mismatched": {"accuracy": 83.4}, "glue/qnli": {"accuracy": 90.5},
             "glue/rte": {"accuracy": 66.4}, "glue/wnli": {"accuracy": 65.1}}
BERT_LARGE = {"glue/cola": {"matthews_correlation": 60.5}, "glue/sst2": {"accuracy": 94.9},
              "glue/mrpc": {"f1": 89.3, "accuracy": 85.4}, "glue/stsb": {"pearson": 87.6, "spearman": 86.5},
              "glue/qqp": {"f1": 72.1, "accuracy": 89.3}, "glue/mnli": {"accuracy": 86.7},
              "glue/mnli_mismatched": {"accuracy": 85.9}, "glue/qnli": {"accuracy": 92.7},
              "glue/rte": {"accuracy": 70.1}, "glue/wnli": {"accuracy": 65.1}}


def test_glue_averages_reproduce_published_ones():
    without_wnli = [t for t in GLUE_TASKS if t != "glue/wnli"]
    assert round(glue_score(BERT_BASE, without_wnli, convention="bert"), 1) == 79.6
    assert round(glue_score(BERT_LARGE, without_wnli, convention="bert"), 1) == 82.1
    assert round(glue_score(BERT_BASE), 1) == 78.3
    assert round(glue_score(BERT_LARGE), 1) == 80.5
    with pytest.raises(ValueError, match=r"needs results for \['glue/wnli'\]"):
        glue_score({k: v for k, v in BERT_BASE.items() if k != "glue/wnli"})


def test_every_task_has_its_metrics():
    for task, spec in TASK_METRICS.items():
        assert spec.main in spec.names + ("score",), task
    with pytest.raises(ValueError, match="no metrics for task"):
        compute_metrics("glue/nothing", [1], [1])
