"""Post-processing on constructed logits: the span is scored in its max-context window, longer
spans than `max_answer_length` are passed over, the no-answer threshold decides by the exact
difference, and the answer is the context's own characters (odd whitespace, accents, a zero-width
space inside a word). Google's `write_predictions` is the reference on random logits in
test_squad_google_reference.py."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bert_jax.inference.squad_postprocess import postprocess_predictions, write_predictions
from input_pipeline.tasks.squad_examples import QAAnswer, QAExample
from input_pipeline.tasks.squad_features import QAFeatureConfig, convert_examples_to_features
from input_pipeline.tokenizers.loading import load_tokenizer

# Forty words of one token each (checked below), to count windows and spans by.
WORDS = ["apple", "river", "stone", "light", "music", "water", "green", "house", "paper", "table",
         "chair", "window", "garden", "money", "story", "night", "field", "horse", "bread", "heart",
         "world", "power", "plant", "voice", "sound", "woman", "child", "paint", "metal", "glass",
         "ocean", "cloud", "storm", "train", "queen", "tiger", "lemon", "sugar", "honey", "bridge"]
CONTEXT = "  Der Weg\u00a0nach   Zürich\t— über  Café\u200bMüller, dann   weiter.  " + " ".join(WORDS)


@pytest.fixture(scope="module")
def tokenizer(uncased_vocab_path):
    tokenizer = load_tokenizer(uncased_vocab_path)
    assert len(WORDS) == 40 and all(len(tokenizer.encode(w)) == 1 for w in WORDS)
    return tokenizer


SMALL = QAFeatureConfig(max_seq_length=32, doc_stride=8, max_query_length=8)


def make(tokenizer, contexts, config=SMALL):
    examples = [QAExample(f"q{i}", "Where?", context, ()) for i, context in enumerate(contexts)]
    features, _ = convert_examples_to_features(examples, tokenizer, config)
    shape = features.input_ids.shape
    return examples, features, np.full(shape, -10.0, np.float32), np.full(shape, -10.0, np.float32)


def position(features, row, char):
    """The position in window `row` of the token starting at character `char` of the context."""
    [k] = np.flatnonzero(features.token_offsets[row, :, 0] == char)
    return int(k)


def test_text_is_the_contexts_own_characters(tokenizer):
    examples, features, start, end = make(tokenizer, [CONTEXT], QAFeatureConfig(max_seq_length=64, max_query_length=8))
    first, last = CONTEXT.index("Zürich"), CONTEXT.index("Müller")
    row = 0
    start[row, position(features, row, first)] = 5.0
    # "müller" is split into pieces: the span ends at the last one, covering "ller".
    end_position = int(np.flatnonzero(features.token_offsets[row, :, 1] == last + len("Müller"))[0])
    end[row, end_position] = 5.0
    predictions = postprocess_predictions(examples, features, start, end)
    assert predictions.answers == {"q0": "Zürich\t— über  Café\u200bMüller"}
    assert predictions.nbest["q0"][0]["text"] == "Zürich\t— über  Café\u200bMüller"
    assert predictions.nbest["q0"][0]["start_logit"] == 5.0 and predictions.null_odds is None


def test_span_scored_in_its_max_context_window(tokenizer):
    examples, features, start, end = make(tokenizer, [CONTEXT])
    char = CONTEXT.index("water")
    rows = [r for r in range(len(features)) if (features.token_offsets[r, :, 0] == char).any()]
    assert len(rows) >= 2
    flags = [bool(features.token_is_max_context[r, position(features, r, char)]) for r in rows]
    assert flags.count(True) == 1
    best, other = rows[flags.index(True)], rows[flags.index(False)]
    # Higher logits where "water" lacks context: passed over.
    start[other, position(features, other, char)] = 9.0
    end[other, position(features, other, char)] = 9.0
    start[best, position(features, best, char)] = 4.0
    end[best, position(features, best, char)] = 4.0
    nbest = postprocess_predictions(examples, features, start, end).nbest["q0"]
    assert nbest[0]["text"] == "water" and (nbest[0]["start_logit"], nbest[0]["end_logit"]) == (4.0, 4.0)


def test_max_answer_length(tokenizer):
    examples, features, start, end = make(tokenizer, [CONTEXT])
    row = len(features) - 1
    context = examples[0].context
    first = position(features, row, context.index("tiger"))
    start[row, first] = 6.0
    end[row, first + 3] = 6.0  # "tiger lemon sugar honey": 4 tokens.
    end[row, first + 1] = 1.0
    spans = [context[features.token_offsets[row, first, 0]:features.token_offsets[row, k, 1]] for k in (first + 1, first + 3)]
    assert spans == ["tiger lemon", "tiger lemon sugar honey"]
    assert postprocess_predictions(examples, features, start, end, max_answer_length=4).answers["q0"] == spans[1]
    assert postprocess_predictions(examples, features, start, end, max_answer_length=3).answers["q0"] == spans[0]


def test_null_threshold_v2(tokenizer):
    examples, features, start, end = make(tokenizer, [CONTEXT])
    row = len(features) - 1
    k = position(features, row, examples[0].context.index("sugar"))
    start[row, k], end[row, k] = 2.5, 1.25  # The best span: 3.75.
    # No-answer scores per window, the lowest decides: 6.0 - 0.5 = 5.5 in window 1.
    start[:, 0], end[:, 0] = 8.0, 0.0
    start[1, 0], end[1, 0] = 6.0, -0.5
    predictions = postprocess_predictions(examples, features, start, end, version_2_with_negative=True)
    assert predictions.null_odds == {"q0": 5.5 - 3.75}
    assert predictions.answers == {"q0": ""}
    nbest = predictions.nbest["q0"]
    assert (nbest[0]["text"], nbest[0]["start_logit"], nbest[0]["end_logit"]) == ("", 6.0, -0.5)
    assert nbest[1]["text"] == "sugar"
    probability = [e["probability"] for e in nbest]
    assert sum(probability) == pytest.approx(1.0) and probability == sorted(probability, reverse=True)
    # Predicted empty only when the difference exceeds the threshold.
    for threshold, answer in ((1.75, "sugar"), (1.7499, "")):
        assert postprocess_predictions(examples, features, start, end, version_2_with_negative=True,
                                       null_score_diff_threshold=threshold).answers["q0"] == answer


def test_no_valid_span(tokenizer):
    # An empty context has no span: Google's placeholder "empty" (v1); SQuAD 2.0 answers "".
    examples, features, start, end = make(tokenizer, ["", CONTEXT])
    v1 = postprocess_predictions(examples, features, start, end)
    assert v1.answers["q0"] == "empty" and v1.nbest["q0"] == [
        {"text": "empty", "probability": 1.0, "start_logit": 0.0, "end_logit": 0.0}]
    start[:, 0] = end[:, 0] = 1.0
    v2 = postprocess_predictions(examples, features, start, end, version_2_with_negative=True)
    assert v2.answers["q0"] == "" and [e["text"] for e in v2.nbest["q0"]] == ["empty", ""]
    assert v2.null_odds["q0"] == 2.0


def test_bad_logits_and_files(tokenizer, tmp_path):
    examples, features, start, end = make(tokenizer, [CONTEXT])
    with pytest.raises(ValueError, match=r"must each be \[windows, max_seq_length\]"):
        postprocess_predictions(examples, features, start[:-1], end)
    with pytest.raises(ValueError, match="the features refer to examples 0 to 0, but 0 examples"):
        postprocess_predictions([], features, start, end)
    predictions = postprocess_predictions(examples, features, start, end, version_2_with_negative=True)
    paths = write_predictions(predictions, tmp_path, prefix="eval_")
    assert sorted(os.listdir(tmp_path)) == ["eval_nbest_predictions.json", "eval_null_odds.json",
                                            "eval_predictions.json"]
    with open(paths[0], encoding="utf-8") as f:
        assert json.load(f) == predictions.answers
    with pytest.raises(FileExistsError, match="eval_predictions.json exists; pass overwrite=True"):
        write_predictions(predictions, tmp_path, prefix="eval_")
    write_predictions(predictions, tmp_path, prefix="eval_", overwrite=True)
    assert len(os.listdir(tmp_path)) == 3


def test_labels_round_trip(tokenizer):
    """Training labels, read as logits, predict the answer itself: features and post-processing
    agree on positions and offsets."""
    context = CONTEXT
    answers = ["Zürich", "Café\u200bMüller", "weiter", "money story", "Weg\u00a0nach"]
    examples = [QAExample(f"q{i}", "Where?", context, (QAAnswer(a, context.index(a)),)) for i, a in enumerate(answers)]
    features, _ = convert_examples_to_features(examples, tokenizer, SMALL, for_training=True)
    start = np.full(features.input_ids.shape, -10.0)
    end = np.full(features.input_ids.shape, -10.0)
    rows = np.arange(len(features))
    labelled = features.start_positions > 0
    start[rows[labelled], features.start_positions[labelled]] = 1.0
    end[rows[labelled], features.end_positions[labelled]] = 1.0
    assert postprocess_predictions(examples, features, start, end).answers == {
        f"q{i}": a for i, a in enumerate(answers)}
