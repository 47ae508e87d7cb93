"""From a QA model's start and end logits over each window to an answer per question, the text of
it cut from the original context; and the prediction files of Google's `run_squad.py`.

The choice is `run_squad.py`'s `write_predictions`:

* In each window, the `n_best_size` highest start logits and end logits (over all positions, ties
  to the earlier one) pair into candidate spans; a span is kept if both ends are context tokens,
  the start token has its "max context" in this window, the end is not before the start, and it
  is at most `max_answer_length` tokens long. Candidates of all the question's windows are ranked
  by start logit + end logit; the first `n_best_size` distinct texts are the n-best list, with
  their softmax probabilities.
* The text of a span is the context from its first token's first character to its last token's
  last character (`QAFeatures.token_offsets`): the original characters, case, accents and
  whitespace included. (Google projects a normalized token string back onto whitespace-separated
  words with a heuristic, `get_final_text`; Hugging Face's `run_qa.py` uses offsets as here.)
* SQuAD 2.0 (`version_2_with_negative`): the no-answer score is the [CLS] start + end logit of the
  window where it is lowest; it enters the ranking as the empty answer. The question gets no
  answer ("") when that score minus the best non-empty span's score exceeds
  `null_score_diff_threshold`; the difference is written to `null_odds.json`, which
  `squad_metrics.evaluate_v2`'s `na_probs` takes to find the best threshold.

Two edge cases follow Hugging Face rather than crash or differ: an example whose n-best list has
no non-empty text gets Google's placeholder answer "empty" first (logits 0), and an example whose
windows all have an empty context still gets an entry.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence

import numpy as np

from input_pipeline.tasks.squad_examples import QAExample
from input_pipeline.tasks.squad_features import QAFeatures

PREDICTIONS_FILE = "predictions.json"
NBEST_FILE = "nbest_predictions.json"
NULL_ODDS_FILE = "null_odds.json"


@dataclasses.dataclass(frozen=True)
class QAPredictions:
    """The answers to a list of examples, by question id, and what they were chosen from."""
    answers: dict[str, str]  # predictions.json: the answer text ("" for no answer, SQuAD 2.0).
    # nbest_predictions.json: per question, the n-best list, best first: {"text", "probability",
    # "start_logit", "end_logit"}.
    nbest: dict[str, list[dict]]
    # null_odds.json (SQuAD 2.0 only): no-answer score minus the best span's score.
    null_odds: dict[str, float] | None = None
    # Per question, where its best non-empty span lies: (window, first token, last token) in the
    # features; None when no window has a valid span. Not written; for character offsets and
    # scores (`inference.question_answerer`).
    spans: dict[str, tuple[int, int, int] | None] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Candidate:
    window: int  # Row in the features.
    start: int  # Token positions in that window; 0 and 0 for no answer.
    end: int
    start_logit: float
    end_logit: float


def postprocess_predictions(examples: Sequence[QAExample], features: QAFeatures,
                            start_logits: np.ndarray, end_logits: np.ndarray, *,
                            n_best_size: int = 20, max_answer_length: int = 30,
                            version_2_with_negative: bool = False,
                            null_score_diff_threshold: float = 0.0) -> QAPredictions:
    """The answer to each of `examples` from the logits of `features`, the windows made of them
    by `convert_examples_to_features` (`start_logits`, `end_logits`: [windows, max_seq_length]).

    Raises:
      ValueError: if the logits do not match the features, or an example has no window.
    """
    expected = features.input_ids.shape
    if np.shape(start_logits) != expected or np.shape(end_logits) != expected:
        raise ValueError(f"start and end logits must each be [windows, max_seq_length] = "
                         f"{list(expected)}, one row per window of the features; got "
                         f"{list(np.shape(start_logits))} and {list(np.shape(end_logits))}.")
    if n_best_size < 1 or max_answer_length < 1:
        raise ValueError(f"n_best_size ({n_best_size}) and max_answer_length "
                         f"({max_answer_length}) must be at least 1.")
    # Sums and the softmax in float64, as the original's Python floats.
    start_logits = np.asarray(start_logits, np.float64)
    end_logits = np.asarray(end_logits, np.float64)
    windows_of = _windows_by_example(features, len(examples))
    answers: dict[str, str] = {}
    nbest_by_id: dict[str, list[dict]] = {}
    null_odds: dict[str, float] = {}
    spans: dict[str, tuple[int, int, int] | None] = {}
    for example, windows in zip(examples, windows_of):
        if not windows:
            raise ValueError(f"{example.source or example.id}: no window in the features; make "
                             f"the features from these very examples.")
        candidates = [c for w in windows for c in _window_candidates(
            features, w, start_logits[w], end_logits[w], n_best_size, max_answer_length)]
        null = None
        if version_2_with_negative:
            # The window most sure there is an answer decides; ties go to the earlier window.
            null_window = min(windows, key=lambda w: start_logits[w, 0] + end_logits[w, 0])
            null = _Candidate(null_window, 0, 0, float(start_logits[null_window, 0]),
                              float(end_logits[null_window, 0]))
            candidates.append(null)
        # Python's sort is stable: equal scores keep the order found (window, start, end).
        candidates.sort(key=lambda c: c.start_logit + c.end_logit, reverse=True)
        nbest = _nbest(example.context, features, candidates, n_best_size, null)
        nbest_by_id[example.id] = nbest
        spans[example.id] = next(((c.window, c.start, c.end) for c in candidates
                                  if c is not null and _text(example.context, features, c)), None)
        best = next(entry for entry in nbest if entry["text"])
        if not version_2_with_negative:
            answers[example.id] = nbest[0]["text"]
            continue
        score_diff = (null.start_logit + null.end_logit) - best["start_logit"] - best["end_logit"]
        null_odds[example.id] = score_diff
        answers[example.id] = "" if score_diff > null_score_diff_threshold else best["text"]
    return QAPredictions(answers=answers, nbest=nbest_by_id,
                         null_odds=null_odds if version_2_with_negative else None, spans=spans)


def _text(context: str, features: QAFeatures, candidate: _Candidate) -> str:
    offsets = features.token_offsets[candidate.window]
    return context[offsets[candidate.start, 0]:offsets[candidate.end, 1]]


def _windows_by_example(features: QAFeatures, num_examples: int) -> list[list[int]]:
    if len(features) and not 0 <= features.example_index.min() <= features.example_index.max() < num_examples:
        raise ValueError(f"the features refer to examples 0 to {features.example_index.max()}, "
                         f"but {num_examples} examples were given; pass the examples the "
                         f"features were made from.")
    windows: list[list[int]] = [[] for _ in range(num_examples)]
    for row, example_index in enumerate(features.example_index.tolist()):
        windows[example_index].append(row)
    return windows


def _best_indexes(logits: np.ndarray, n: int) -> np.ndarray:
    """The positions of the `n` largest logits, largest first, ties to the lower position."""
    return np.argsort(-logits, kind="stable")[:n]


def _window_candidates(features: QAFeatures, window: int, start_logits: np.ndarray,
                       end_logits: np.ndarray, n_best_size: int,
                       max_answer_length: int) -> list[_Candidate]:
    """The valid spans among the window's best starts and ends, starts outer, ends inner."""
    starts = _best_indexes(start_logits, n_best_size)[:, None]
    ends = _best_indexes(end_logits, n_best_size)[None, :]
    in_context = features.token_offsets[window, :, 0] >= 0
    valid = (in_context[starts] & in_context[ends] & features.token_is_max_context[window][starts]
             & (ends >= starts) & (ends - starts + 1 <= max_answer_length))
    rows, cols = np.nonzero(valid)  # Row-major: the original's nested loops' order.
    return [_Candidate(window, int(s), int(e), float(start_logits[s]), float(end_logits[e]))
            for s, e in zip(starts[rows, 0], ends[0, cols])]


def _nbest(context: str, features: QAFeatures, ranked: list[_Candidate], n_best_size: int,
           null: _Candidate | None) -> list[dict]:
    """The first `n_best_size` distinct texts of `ranked`, with their softmax probabilities."""
    entries: list[tuple[str, float, float]] = []
    seen: set[str] = set()
    for candidate in ranked:
        if len(entries) >= n_best_size:
            break
        if candidate is null:
            text = ""
        else:
            text = _text(context, features, candidate)
            if text in seen:
                continue
        seen.add(text)
        entries.append((text, candidate.start_logit, candidate.end_logit))
    if null is not None and "" not in seen:
        entries.append(("", null.start_logit, null.end_logit))
    if not any(text for text, _, _ in entries):
        entries.insert(0, ("empty", 0.0, 0.0))
    scores = [start + end for _, start, end in entries]
    top = max(scores)
    exps = [math.exp(score - top) for score in scores]
    total = sum(exps)
    return [{"text": text, "probability": e / total, "start_logit": start, "end_logit": end}
            for (text, start, end), e in zip(entries, exps)]


def write_predictions(predictions: QAPredictions, output_dir: str | os.PathLike, *,
                      prefix: str = "", overwrite: bool = False) -> list[str]:
    """Writes `predictions.json` ({id: answer}), `nbest_predictions.json` and, for SQuAD 2.0,
    `null_odds.json` into `output_dir` (names after `prefix`, e.g. "eval_"), each written whole
    under a temporary name first; returns their paths.

    Raises:
      FileExistsError: if one of them exists and `overwrite` is False.
    """
    os.makedirs(output_dir, exist_ok=True)
    contents = {PREDICTIONS_FILE: predictions.answers, NBEST_FILE: predictions.nbest}
    if predictions.null_odds is not None:
        contents[NULL_ODDS_FILE] = predictions.null_odds
    paths = {name: os.path.join(output_dir, prefix + name) for name in contents}
    existing = [p for p in paths.values() if os.path.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass overwrite=True to replace it, or "
                              f"another output directory or prefix.")
    for name, path in paths.items():
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(contents[name], indent=4, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    return list(paths.values())
