"""Features and predictions against Google's own `run_squad.py`, the script the BERT paper's SQuAD
numbers come from (the `bert-tensorflow` wheel): its `read_squad_examples`,
`convert_examples_to_features` and `write_predictions`, run as published on the same SQuAD file
of real paragraphs (the standard library's docstrings, ASCII) and, for predictions, the same random
logits.

The functions are taken from the installed `bert/run_squad.py` (`tests/support/google_squad.py`).
"""

from __future__ import annotations

import collections
import json
import os
import random
import re

import numpy as np
import pytest
from conftest import stdlib_docstring_lines

from bert_jax.inference.squad_postprocess import postprocess_predictions, write_predictions
from input_pipeline.tasks.squad_examples import read_squad_json
from input_pipeline.tasks.squad_features import QAFeatureConfig, convert_examples_to_features
from input_pipeline.tokenizers.loading import load_tokenizer
from tests.support.google_squad import google_run_squad

CONFIG = QAFeatureConfig(max_seq_length=96, doc_stride=40, max_query_length=24)
def ascii_squad_file(path, *, seed: int, impossible_share: float = 0.0) -> None:
    """A SQuAD file of docstring paragraphs (ASCII lines, joined by one or two spaces or a
    newline), three questions each, each answer a run of 1 to 4 whitespace-separated words; with
    `impossible_share`, SQuAD 2.0 unanswerable questions too."""
    rng = random.Random(seed)
    lines = [line for line in stdlib_docstring_lines(8000) if line.isascii()]
    paragraphs, position = [], 0
    for p in range(80):
        n = rng.randrange(3, 30)
        context = rng.choice([" ", "  ", "\n"]).join(lines[position:position + n])
        position += n
        words = [m.span() for m in re.finditer(r"\S+", context)]
        qas = []
        for q in range(3):
            i = rng.randrange(len(words))
            start, end = words[i][0], words[min(len(words) - 1, i + rng.randrange(4))][1]
            qa = {"id": f"{p}-{q}", "question": lines[rng.randrange(len(lines))][:80],
                  "answers": [{"text": context[start:end], "answer_start": start}], "is_impossible": False}
            if rng.random() < impossible_share:
                qa.update(answers=[], is_impossible=True)
            qas.append(qa)
        paragraphs.append({"context": context, "qas": qas})
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "stdlib", "paragraphs": paragraphs}]}))


def single_spaced(text: str) -> str:
    return " ".join(text.split())


def google_features(google, path, vocab_path, is_training):
    examples = google.read_squad_examples(str(path), is_training)
    features = []
    tokenizer = google.tokenization.FullTokenizer(vocab_path, do_lower_case=True)
    google.convert_examples_to_features(examples, tokenizer, CONFIG.max_seq_length, CONFIG.doc_stride,
                                        CONFIG.max_query_length, is_training, features.append)
    return examples, features


def test_max_context_flags_equal_googles(monkeypatch):
    """`_check_is_max_context` on random window layouts, irregular ones included (a later window
    longer than an earlier one, which only the 0.01 * length term decides)."""
    from input_pipeline.tasks.squad_features import _max_context_flags

    google = google_run_squad(False, monkeypatch)
    DocSpan = collections.namedtuple("DocSpan", ["start", "length"])
    rng = random.Random(0)
    for _ in range(300):
        num_tokens = rng.randrange(1, 40)
        windows = [(s, rng.randrange(1, num_tokens - s + 1))
                   for s in sorted(rng.randrange(num_tokens) for _ in range(rng.randrange(1, 6)))]
        flags = _max_context_flags(windows, num_tokens)
        spans = [DocSpan(s, n) for s, n in windows]
        for w, (start, length) in enumerate(windows):
            for position in range(start, start + length):
                assert flags[w, position] == google._check_is_max_context(spans, w, position), (windows, w, position)


def test_features_equal_googles(tmp_path, uncased_vocab_path, monkeypatch):
    """Windows, ids, segments, max-context flags, the token -> word map and training labels.

    The answers are whole words, where Google's `_improve_answer_span` and our character offsets
    agree (they part only inside words; see squad_features' docstring)."""
    google = google_run_squad(True, monkeypatch)
    path = tmp_path / "train.json"
    ascii_squad_file(path, seed=0, impossible_share=0.2)
    theirs_examples, theirs = google_features(google, path, uncased_vocab_path, is_training=True)
    examples = read_squad_json(path)
    assert len(theirs_examples) == len(examples)  # Google skipped none.
    ours, report = convert_examples_to_features(examples, load_tokenizer(uncased_vocab_path), CONFIG,
                                                for_training=True)
    assert len(ours) == len(theirs) > 2 * len(examples)
    assert report.unanswerable > 20 and report.answers_widened == 0
    for row, feature in enumerate(theirs):
        assert (ours.example_index[row], ours.window_index[row]) == (feature.example_index, feature.doc_span_index)
        assert ours.input_ids[row].tolist() == feature.input_ids
        assert ours.input_mask[row].tolist() == feature.input_mask
        assert ours.segment_ids[row].tolist() == feature.segment_ids
        assert (ours.start_positions[row], ours.end_positions[row]) == (feature.start_position, feature.end_position)
        context_positions = sorted(feature.token_is_max_context)
        assert np.flatnonzero(ours.token_offsets[row, :, 0] >= 0).tolist() == context_positions
        assert ours.token_is_max_context[row].tolist() == [
            feature.token_is_max_context.get(k, False) for k in range(CONFIG.max_seq_length)]
        # Google maps a token to its whitespace-separated word; our characters lie in that word.
        context = examples[feature.example_index].context
        words = [m.span() for m in re.finditer(r"[^ \t\r\n\u202f]+", context)]
        for k in context_positions:
            start, end = ours.token_offsets[row, k]
            word_start, word_end = words[feature.token_to_orig_map[k]]
            assert word_start <= start < end <= word_end, (row, k)


@pytest.mark.parametrize("version_2_with_negative", [False, True])
def test_predictions_equal_googles(tmp_path, uncased_vocab_path, monkeypatch, version_2_with_negative):
    """predictions.json, nbest_predictions.json (texts, probabilities, logits) and null_odds.json
    from the same random logits, rounded to halves so that ties are common. The logits favour the
    context, so that most n-best lists are full; Google's text mapping (`get_final_text`) and our
    offsets agree on this ASCII text but for whitespace."""
    google = google_run_squad(version_2_with_negative, monkeypatch)
    path = tmp_path / "dev.json"
    ascii_squad_file(path, seed=1, impossible_share=0.3 if version_2_with_negative else 0.0)
    theirs_examples, theirs_features = google_features(google, path, uncased_vocab_path, is_training=False)
    examples = read_squad_json(path)
    features, _ = convert_examples_to_features(examples, load_tokenizer(uncased_vocab_path), CONFIG)
    assert len(features) == len(theirs_features)
    rng = np.random.default_rng(0)
    start_logits = rng.normal(size=features.input_ids.shape).astype(np.float32)
    end_logits = rng.normal(size=features.input_ids.shape).astype(np.float32)
    in_context = features.token_offsets[..., 0] >= 0
    start_logits[in_context] += 2.0
    end_logits[in_context] += 2.0
    # [CLS] as likely as the best span, give or take: some questions get no answer (SQuAD 2.0).
    start_logits[:, 0] += rng.normal(loc=5.0, scale=3.0, size=len(features)).astype(np.float32)
    end_logits[:, 0] += 5.0
    # Halves: many equal logits and sums, where the order of ties (the earlier position first,
    # then the order found) decides.
    start_logits, end_logits = np.round(start_logits * 2) / 2, np.round(end_logits * 2) / 2

    RawResult = collections.namedtuple("RawResult", ["unique_id", "start_logits", "end_logits"])
    results = [RawResult(f.unique_id, [float(x) for x in start_logits[i]], [float(x) for x in end_logits[i]])
               for i, f in enumerate(theirs_features)]
    google_dir = tmp_path / "google"
    google_dir.mkdir()
    google.write_predictions(theirs_examples, theirs_features, results, 20, 30, True,
                             str(google_dir / "predictions.json"), str(google_dir / "nbest_predictions.json"),
                             str(google_dir / "null_odds.json"))

    predictions = postprocess_predictions(examples, features, start_logits, end_logits, n_best_size=20,
                                          max_answer_length=30, version_2_with_negative=version_2_with_negative)
    paths = write_predictions(predictions, tmp_path / "ours")
    ours = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            ours[os.path.basename(path)] = json.load(f)
    expected = {"predictions.json", "nbest_predictions.json"} | ({"null_odds.json"} if version_2_with_negative else set())
    assert set(ours) == expected
    theirs = {name: json.loads((google_dir / name).read_text()) for name in expected}

    # Google's text joins the span's words with single spaces (`" ".join(orig_tokens)`); ours is
    # the context's own characters: the two differ only in whitespace between words, which the
    # metric ignores.
    assert ours["predictions.json"].keys() == theirs["predictions.json"].keys()
    assert {qid: single_spaced(text) for qid, text in ours["predictions.json"].items()} == theirs["predictions.json"]
    assert sum(text != single_spaced(text) for text in ours["predictions.json"].values()) > 5
    if version_2_with_negative:
        assert sum(text == "" for text in ours["predictions.json"].values()) > 20
        assert ours["null_odds.json"].keys() == theirs["null_odds.json"].keys()
        for qid, value in theirs["null_odds.json"].items():
            assert ours["null_odds.json"][qid] == pytest.approx(value, rel=1e-12, abs=1e-12), qid
    assert ours["nbest_predictions.json"].keys() == theirs["nbest_predictions.json"].keys()
    full = 0
    for qid, nbest in theirs["nbest_predictions.json"].items():
        ours_nbest = ours["nbest_predictions.json"][qid]
        assert [single_spaced(e["text"]) for e in ours_nbest] == [e["text"] for e in nbest], qid
        for ours_entry, entry in zip(ours_nbest, nbest):
            for key in ("probability", "start_logit", "end_logit"):
                assert ours_entry[key] == pytest.approx(entry[key], rel=1e-12, abs=1e-15), (qid, key)
        full += len(nbest) >= 20
    assert full > len(examples) / 2
