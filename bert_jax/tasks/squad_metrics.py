"""Exact match and F1 for extractive question answering, as the official evaluation scripts compute
them: SQuAD v1.1 (`evaluate-v1.1.py`), SQuAD v2.0 (`evaluate-v2.0.py`, with its HasAns/NoAns
breakdown and best no-answer threshold) and KorQuAD 1.0 (`evaluate-v1.0.py`).

The definitions, written afresh from those scripts:

* Normalization (SQuAD): lower case, remove ASCII punctuation (`string.punctuation`), remove the
  words "a", "an", "the", collapse whitespace. Exact match compares normalized strings; F1 is
  over normalized whitespace-separated tokens (counted with multiplicity). A question's score is
  the best over its gold answers; the totals are percentages over questions.
* v1.1 and v2.0 differ on empty strings. In v1.1 an F1 with no token in common is 0, even when
  both sides normalize to nothing. In v2.0 gold answers that normalize to nothing are dropped,
  an unanswerable question's only gold answer is "", and F1 is 1 when both sides are empty and 0
  when one is: an unanswerable question scores 1 only for the empty prediction.
* v2.0 with no-answer scores (`na_probs`, e.g. `null_odds.json`): a question whose score exceeds
  `na_prob_thresh` is predicted unanswerable first; `best_exact`/`best_f1` are the scores at the
  best threshold, found by sweeping the questions in increasing score (`find_best_thresh`).
* KorQuAD 1.0 (`korquad=True`) differs from SQuAD v1.1, for Korean: the quotes, brackets and
  parentheses ' " 《 》 < > 〈 〉 ( ) ‘ ’ become spaces before normalizing, articles are not
  removed, and F1 is over characters (spaces left out) instead of words.

A missing prediction scores 0 in v1.1 and KorQuAD, as in their scripts (counted in `missing`);
v2.0's script fails on one, and so does `evaluate_v2`. From post-processing:

    evaluate_v2(gold_answers(examples), predictions.answers, predictions.null_odds)
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Iterable, Mapping, Sequence

from input_pipeline.tasks.squad_examples import QAExample

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_KORQUAD_SYMBOLS = re.compile("['\"《》<>〈〉()‘’]")


def normalize_answer(text: str) -> str:
    """SQuAD's normalization: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def normalize_korquad_answer(text: str) -> str:
    """KorQuAD 1.0's normalization: quotes and brackets to spaces, lower case, no punctuation,
    single spaces (articles stay)."""
    text = _KORQUAD_SYMBOLS.sub(" ", text).lower()
    return " ".join("".join(ch for ch in text if ch not in _PUNCTUATION).split())


def _f1(prediction: Sequence[str], gold: Sequence[str]) -> float:
    """F1 of two token (or character) sequences; 0 with nothing in common."""
    common = sum((collections.Counter(prediction) & collections.Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(prediction), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match_v1(prediction: str, gold: str, *, korquad: bool = False) -> float:
    normalize = normalize_korquad_answer if korquad else normalize_answer
    return float(normalize(prediction) == normalize(gold))


def f1_v1(prediction: str, gold: str, *, korquad: bool = False) -> float:
    """SQuAD v1.1's F1 over words, or KorQuAD 1.0's over characters."""
    if korquad:
        return _f1(normalize_korquad_answer(prediction).replace(" ", ""),
                   normalize_korquad_answer(gold).replace(" ", ""))
    return _f1(normalize_answer(prediction).split(), normalize_answer(gold).split())


def f1_v2(prediction: str, gold: str) -> float:
    """SQuAD v2.0's F1: as v1.1's, but 1 when both normalize to nothing, 0 when one does."""
    prediction_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not prediction_tokens or not gold_tokens:
        return float(prediction_tokens == gold_tokens)
    return _f1(prediction_tokens, gold_tokens)


def gold_answers(examples: Iterable[QAExample]) -> dict[str, list[str]]:
    """{question id: its gold answer texts} (empty for an unanswerable question)."""
    return {example.id: [answer.text for answer in example.answers] for example in examples}


def evaluate_v1(golds: Mapping[str, Sequence[str]], predictions: Mapping[str, str], *,
                korquad: bool = False) -> dict[str, float]:
    """SQuAD v1.1's (or KorQuAD 1.0's) `exact_match` and `f1`, percentages over the questions of
    `golds` ({id: gold answer texts}, from `gold_answers`); also `total` and `missing` (questions
    without a prediction, scored 0). Predictions for other ids are ignored.

    Raises:
      ValueError: for a question without a gold answer (v1.1 has none; use `evaluate_v2`).
    """
    if not golds:
        raise ValueError("no questions to evaluate.")
    exact = f1 = 0.0
    missing = 0
    for qid, answers in golds.items():
        if not answers:
            raise ValueError(f"question {qid!r} has no gold answer; SQuAD v1.1 has no unanswerable "
                             f"questions: evaluate a set with them with evaluate_v2.")
        if qid not in predictions:
            missing += 1
            continue
        prediction = predictions[qid]
        exact += max(exact_match_v1(prediction, a, korquad=korquad) for a in answers)
        f1 += max(f1_v1(prediction, a, korquad=korquad) for a in answers)
    total = len(golds)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total, "total": total,
            "missing": missing}


def evaluate_v2(golds: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
                na_probs: Mapping[str, float] | None = None, *,
                na_prob_thresh: float = 1.0) -> dict[str, float]:
    """SQuAD v2.0's evaluation, keys as `evaluate-v2.0.py` names them: `exact`, `f1`, `total`,
    `HasAns_exact`/`_f1`/`_total` and `NoAns_...` (those present), and, with `na_probs` ({id:
    no-answer score}, e.g. `null_odds.json`), `best_exact`, `best_exact_thresh`, `best_f1`,
    `best_f1_thresh`. A question is answerable when it has a gold answer.

    Raises:
      ValueError: for a question without a prediction, or without a no-answer score.
    """
    if not golds:
        raise ValueError("no questions to evaluate.")
    missing = [qid for qid in golds if qid not in predictions]
    if na_probs is not None:
        missing += [f"{qid} (no-answer score)" for qid in golds if qid not in na_probs]
    if missing:
        raise ValueError(f"{len(missing)} questions have no prediction, e.g. {missing[:5]}; "
                         f"SQuAD 2.0 scores every question.")
    given_na_probs = na_probs is not None
    if na_probs is None:
        na_probs = {qid: 0.0 for qid in golds}
    has_answer = {qid: bool(answers) for qid, answers in golds.items()}
    exact_raw: dict[str, float] = {}
    f1_raw: dict[str, float] = {}
    for qid, answers in golds.items():
        answers = [a for a in answers if normalize_answer(a)] or [""]
        prediction = predictions[qid]
        exact_raw[qid] = max(float(normalize_answer(a) == normalize_answer(prediction)) for a in answers)
        f1_raw[qid] = max(f1_v2(prediction, a) for a in answers)
    exact = _apply_no_answer_threshold(exact_raw, na_probs, has_answer, na_prob_thresh)
    f1 = _apply_no_answer_threshold(f1_raw, na_probs, has_answer, na_prob_thresh)
    result = _totals(exact, f1, list(golds))
    for name, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [qid for qid in golds if has_answer[qid] == wanted]
        if qids:
            result.update({f"{name}_{k}": v for k, v in _totals(exact, f1, qids).items()})
    if given_na_probs:
        for name, raw in (("exact", exact_raw), ("f1", f1_raw)):
            result[f"best_{name}"], result[f"best_{name}_thresh"] = find_best_threshold(
                predictions, raw, na_probs, has_answer)
    return result


def _apply_no_answer_threshold(scores: Mapping[str, float], na_probs: Mapping[str, float],
                               has_answer: Mapping[str, bool], threshold: float) -> dict[str, float]:
    """A question whose no-answer score exceeds `threshold` is predicted unanswerable: 1 if it
    is, 0 if not."""
    return {qid: float(not has_answer[qid]) if na_probs[qid] > threshold else score
            for qid, score in scores.items()}


def _totals(exact: Mapping[str, float], f1: Mapping[str, float], qids: Sequence[str]) -> dict[str, float]:
    return {"exact": 100.0 * sum(exact[q] for q in qids) / len(qids),
            "f1": 100.0 * sum(f1[q] for q in qids) / len(qids), "total": len(qids)}


def find_best_threshold(predictions: Mapping[str, str], scores: Mapping[str, float],
                        na_probs: Mapping[str, float],
                        has_answer: Mapping[str, bool]) -> tuple[float, float]:
    """(best score in percent, its threshold) over no-answer thresholds, as `evaluate-v2.0.py`'s
    `find_best_thresh`.

    With the threshold below every question's no-answer score all are predicted unanswerable,
    scoring the unanswerable ones. Raising it past each question in increasing no-answer score
    (ties in `na_probs`' order) answers that question too: an answerable one gains its raw
    `scores` value, an unanswerable one loses 1 if its prediction is not empty. The best running
    total and the score where it was reached are kept (the first, on ties; 0.0 if never beaten).
    """
    running = best = sum(1 for qid in has_answer if not has_answer[qid])
    best_threshold = 0.0
    for qid in sorted(na_probs, key=lambda q: na_probs[q]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            running += scores[qid]
        elif predictions[qid]:
            running -= 1
        if running > best:
            best, best_threshold = running, na_probs[qid]
    return 100.0 * best / len(scores), best_threshold
