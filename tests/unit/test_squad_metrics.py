"""Exact match and F1 against the official definitions (SQuAD's evaluate-v1.1.py and
evaluate-v2.0.py, KorQuAD's evaluate-v1.0.py), on hand-made predictions whose expected numbers are
derived by hand below in exact arithmetic (`Fraction`), and against torchmetrics' SQuAD metric.

Each case says what it tests; the comment after it gives the normalized strings and the arithmetic.
"""

from __future__ import annotations

import json
from fractions import Fraction as F

import pytest

from bert_jax.tasks.squad_metrics import (
    evaluate_v1,
    evaluate_v2,
    f1_v1,
    find_best_threshold,
    gold_answers,
    normalize_answer,
    normalize_korquad_answer,
)
from input_pipeline.tasks.squad_examples import read_squad_json


def percent(fraction: F) -> float:
    return float(100 * fraction)


# (id, gold answers, prediction or None for a missing one, exact match, F1), SQuAD v1.1 rules.
V1_CASES = [
    # Articles and punctuation: "denver broncos" both.
    ("articles", ["Denver Broncos"], "the Denver Broncos.", 1, F(1)),
    # Several golds: the prediction normalizes to "levis stadium in santa clara" (5 tokens).
    # Gold 1, "santa clara california": 2 common, P 2/5, R 2/3, F1 1/2. Gold 2, "levis stadium":
    # 2 common, P 2/5, R 1, F1 4/7. Gold 3, "levis stadium in san francisco bay area at santa
    # clara california" (11 tokens, "the" removed): 5 common, P 1, R 5/11, F1 5/8. Best: 5/8.
    ("several golds", ["Santa Clara, California", "Levi's Stadium",
                       "Levi's Stadium in the San Francisco Bay Area at Santa Clara, California."],
     "Levi's Stadium in Santa Clara", 0, F(5, 8)),
    # An empty prediction for an answerable question.
    ("empty prediction", ["1990s"], "", 0, F(0)),
    # Unicode: lower case applies to "Ñ" and "É"; accents stay (both sides "ñandú café").
    ("unicode", ["Ñandú café"], "ñandú CAFÉ", 1, F(1)),
    # Tokens counted with multiplicity: "cat cat sat" and "cat cat cat": 2 common, F1 2/3.
    ("repeated tokens", ["the cat the cat sat"], "cat cat cat", 0, F(2, 3)),
    # A gold answer that is only an article normalizes to "", as does "": equal strings (exact
    # match 1) but no token in common (v1.1's F1 0).
    ("both empty", ["The"], "", 1, F(0)),
    # Punctuation is removed, not made a space: "usbased" against "us based".
    ("inner punctuation", ["U.S.-based"], "US based", 0, F(0)),
    # No prediction: scored 0, still counted.
    ("missing", ["Broncos"], None, 0, F(0)),
]


def test_normalize_answer_is_squads():
    assert normalize_answer("  The Denver\tBroncos. ") == "denver broncos"
    assert normalize_answer("Anathema, a theme") == "anathema theme"  # Whole words only.
    assert normalize_answer("«Les Misérables»") == "«les misérables»"  # ASCII punctuation only.
    assert normalize_answer("U.S.-based") == "usbased"


def test_v1_hand_computed():
    golds = {qid: answers for qid, answers, _, _, _ in V1_CASES}
    predictions = {qid: p for qid, _, p, _, _ in V1_CASES if p is not None}
    result = evaluate_v1(golds, predictions)
    n = len(V1_CASES)
    exact = F(sum(e for *_, e, _ in V1_CASES), n)
    f1 = sum((f for *_, f in V1_CASES), F(0)) / n
    # 3/8 and (1 + 5/8 + 1 + 2/3) / 8 = 79/192.
    assert (exact, f1) == (F(3, 8), F(79, 192))
    assert result["exact_match"] == pytest.approx(percent(exact), rel=1e-12)
    assert result["f1"] == pytest.approx(percent(f1), rel=1e-12)
    assert (result["total"], result["missing"]) == (8, 1)
    for qid, answers, prediction, _, expected_f1 in V1_CASES:
        if prediction is not None:
            assert max(f1_v1(prediction, a) for a in answers) == pytest.approx(float(expected_f1)), qid


def test_v1_against_torchmetrics():
    """torchmetrics' SQuAD metric agrees but where prediction and gold both normalize to
    nothing: it applies v2.0's rule there (F1 1) where v1.1's script gives 0."""
    from torchmetrics.functional.text import squad as torchmetrics_squad

    cases = [c for c in V1_CASES if c[2] is not None]
    targets = [{"id": qid, "answers": {"text": answers, "answer_start": [0] * len(answers)}}
               for qid, answers, _, _, _ in cases]
    preds = [{"id": qid, "prediction_text": p} for qid, _, p, _, _ in cases]
    golds = {qid: answers for qid, answers, _, _, _ in cases}
    ours = evaluate_v1(golds, {qid: p for qid, _, p, _, _ in cases})
    theirs = torchmetrics_squad(preds, targets)
    assert float(theirs["exact_match"]) == pytest.approx(ours["exact_match"], rel=1e-6)
    # The one difference: "both empty" has F1 0 in v1.1, 1 in torchmetrics.
    assert float(theirs["f1"]) == pytest.approx(ours["f1"] + 100 / len(cases), rel=1e-6)
    without = [i for i, c in enumerate(cases) if c[0] != "both empty"]
    theirs = torchmetrics_squad([preds[i] for i in without], [targets[i] for i in without])
    ours = evaluate_v1({cases[i][0]: cases[i][1] for i in without},
                       {cases[i][0]: cases[i][2] for i in without})
    assert float(theirs["f1"]) == pytest.approx(ours["f1"], rel=1e-6)
    assert float(theirs["exact_match"]) == pytest.approx(ours["exact_match"], rel=1e-6)


def test_v1_refuses_questions_without_gold():
    with pytest.raises(ValueError, match="'q' has no gold answer.*evaluate_v2"):
        evaluate_v1({"q": []}, {"q": ""})


# (id, gold answers, prediction, exact match, F1, no-answer score), SQuAD v2.0 rules.
V2_CASES = [
    ("unanswerable, empty", [], "", 1, F(1), F(5)),
    ("unanswerable, answered", [], "something", 0, F(0), F(-1)),
    ("answerable, empty", ["Denver Broncos"], "", 0, F(0), F(2)),
    # Golds that normalize to nothing are dropped; none left, "" is the gold: 1 and 1 (v1.1's F1
    # would be 0). The question still counts as answerable (it has answers).
    ("golds only articles", ["The", "a"], "", 1, F(1), F(1, 2)),
    # Dropped even beside another gold: only "broncos" counts, and "" does not match it.
    ("an article and a gold", ["The", "Broncos"], "", 0, F(0), F(-2)),
    ("second gold", ["Denver Broncos", "Broncos"], "Broncos", 1, F(1), F(-3)),
    # "santa clara" against "santa clara california": P 1, R 2/3, F1 4/5.
    ("partial", ["Santa Clara, California"], "Santa Clara", 0, F(4, 5), F(3, 2)),
]


def _v2_inputs():
    golds = {qid: answers for qid, answers, *_ in V2_CASES}
    predictions = {qid: p for qid, _, p, *_ in V2_CASES}
    na_probs = {qid: float(na) for qid, *_, na in V2_CASES}
    return golds, predictions, na_probs


def test_v2_hand_computed():
    golds, predictions, _ = _v2_inputs()
    result = evaluate_v2(golds, predictions)
    has = [c for c in V2_CASES if c[1]]
    no = [c for c in V2_CASES if not c[1]]

    def mean(cases, column):
        return sum((F(c[column]) for c in cases), F(0)) / len(cases)

    # Overall 3/7 and 19/5/7 = 19/35; HasAns 2/5 and 14/5/5 = 14/25; NoAns 1/2 and 1/2.
    assert (mean(V2_CASES, 3), mean(V2_CASES, 4)) == (F(3, 7), F(19, 35))
    assert (mean(has, 3), mean(has, 4), mean(no, 3), mean(no, 4)) == (F(2, 5), F(14, 25), F(1, 2), F(1, 2))
    expected = {"exact": mean(V2_CASES, 3), "f1": mean(V2_CASES, 4),
                "HasAns_exact": mean(has, 3), "HasAns_f1": mean(has, 4),
                "NoAns_exact": mean(no, 3), "NoAns_f1": mean(no, 4)}
    assert set(result) == set(expected) | {"total", "HasAns_total", "NoAns_total"}
    for key, value in expected.items():
        assert result[key] == pytest.approx(percent(value), rel=1e-12), key
    assert (result["total"], result["HasAns_total"], result["NoAns_total"]) == (7, 5, 2)


def test_v2_no_answer_scores_and_best_threshold():
    golds, predictions, na_probs = _v2_inputs()
    result = evaluate_v2(golds, predictions, na_probs)
    # Scores above na_prob_thresh = 1.0 (5, 2 and 3/2) predict "no answer": "unanswerable, empty"
    # stays 1, "answerable, empty" stays 0, "partial" drops from 0 and 4/5 to 0 and 0.
    assert result["exact"] == pytest.approx(percent(F(3, 7)), rel=1e-12)
    assert result["f1"] == pytest.approx(percent(F(3, 7)), rel=1e-12)
    assert result["HasAns_f1"] == pytest.approx(percent(F(2, 5)), rel=1e-12)
    # The sweep, in increasing score: start at 2 (the unanswerable questions); "second gold"
    # (-3) +1 = 3; "an article and a gold" (-2) +0; "unanswerable, answered" (-1) -1 = 2; "golds
    # only articles" (1/2) +1 = 3; "partial" (3/2) +0 (exact) or +4/5 (F1); "answerable, empty"
    # (2) +0; "unanswerable, empty" (5) -0. Exact: best 3 first reached at -3. F1: best 19/5
    # reached at 3/2.
    assert result["best_exact"] == pytest.approx(percent(F(3, 7)), rel=1e-12)
    assert result["best_exact_thresh"] == -3.0
    assert result["best_f1"] == pytest.approx(percent(F(19, 5) / 7), rel=1e-12)
    assert result["best_f1_thresh"] == 1.5
    # The threshold found, applied, gives the best score.
    at_best = evaluate_v2(golds, predictions, na_probs, na_prob_thresh=result["best_f1_thresh"])
    assert at_best["f1"] == pytest.approx(result["best_f1"], rel=1e-12)


def test_find_best_threshold_keeps_the_first_best():
    # Ties keep the first threshold reaching the best score; never beaten, it is 0.0.
    has_answer = {"a": True, "b": True, "u": False}
    scores = {"a": 1.0, "b": 0.0, "u": 1.0}
    assert find_best_threshold({"a": "x", "b": "y", "u": "z"}, scores, {"a": 0.3, "b": 0.4, "u": 0.9},
                               has_answer) == (pytest.approx(200 / 3), 0.3)
    assert find_best_threshold({"a": "x", "b": "y", "u": "z"}, {"a": 0.0, "b": 0.0, "u": 1.0},
                               {"a": 0.3, "b": 0.4, "u": 0.9}, has_answer) == (pytest.approx(100 / 3), 0.0)


def test_v2_requires_every_prediction():
    golds, predictions, _ = _v2_inputs()
    del predictions["partial"]
    with pytest.raises(ValueError, match=r"1 questions have no prediction, e.g. \['partial'\]"):
        evaluate_v2(golds, predictions)


# (gold, prediction, KorQuAD exact match, KorQuAD F1, SQuAD exact match, SQuAD F1)
KORQUAD_CASES = [
    # 《》 are spaces for KorQuAD: "대한민국 의 수도"; its characters equal the gold's, F1 1. SQuAD
    # keeps them (not ASCII): words "《대한민국》의 수도" against "대한민국의 수도", F1 1/2.
    ("대한민국의 수도", "《대한민국》의 수도", 0, F(1), 0, F(1, 2)),
    # ‘’ are removed by KorQuAD only.
    ("서울", "‘서울’", 1, F(1), 0, F(0)),
    # Characters: 2 of the prediction's 5 are the gold's 2: P 2/5, R 1, F1 4/7. SQuAD: one word
    # each, different.
    ("서울", "서울특별시", 0, F(4, 7), 0, F(0)),
    # KorQuAD keeps articles: "the apple" (8 characters) against "apple" (5): P 1, R 5/8,
    # F1 10/13. SQuAD removes "the": equal.
    ("the apple", "apple", 0, F(10, 13), 1, F(1)),
]


def test_korquad_differs_from_squad_as_its_script_does():
    assert normalize_korquad_answer("《대한민국》의 (수도)") == "대한민국 의 수도"
    for gold, prediction, k_exact, k_f1, s_exact, s_f1 in KORQUAD_CASES:
        korquad = evaluate_v1({"q": [gold]}, {"q": prediction}, korquad=True)
        squad = evaluate_v1({"q": [gold]}, {"q": prediction})
        assert korquad["exact_match"] == 100 * k_exact, (gold, prediction)
        assert korquad["f1"] == pytest.approx(percent(k_f1), rel=1e-12), (gold, prediction)
        assert squad["exact_match"] == 100 * s_exact, (gold, prediction)
        assert squad["f1"] == pytest.approx(percent(s_f1), rel=1e-12), (gold, prediction)


def test_gold_answers_from_a_squad_file(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [{
        "context": "The Broncos won.", "qas": [
            {"id": "a", "question": "Who won?", "answers": [
                {"text": "The Broncos", "answer_start": 0}, {"text": "Broncos", "answer_start": 4}]},
            {"id": "b", "question": "Who lost?", "answers": [], "is_impossible": True}]}]}]}))
    golds = gold_answers(read_squad_json(path))
    assert golds == {"a": ["The Broncos", "Broncos"], "b": []}
    result = evaluate_v2(golds, {"a": "broncos", "b": ""})
    assert (result["exact"], result["HasAns_exact"], result["NoAns_exact"]) == (100.0, 100.0, 100.0)
