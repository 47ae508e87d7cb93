"""Question answering examples to BERT's inputs: `[CLS] question [SEP] context window [SEP]`, with
the answer's first and last token in each window for training, and for prediction what maps a
predicted span back to the original characters.

As Google's `run_squad.py` (BERT paper, section 4.2) and Hugging Face's `run_qa.py` do it:

* The question is cut to `max_query_length` tokens. The context is cut into windows of
  `max_seq_length - len(question) - 3` tokens, each starting `doc_stride` tokens after the one
  before (the last ends at the context's end). `doc_stride` is Google's meaning: the step between
  windows. Hugging Face's `stride` is the overlap, so the same windows come from
  `stride = max_seq_length - len(question) - 3 - doc_stride`, which depends on the question's
  length; `tests/unit/test_squad_features.py` checks our windows against theirs that way.
* Training labels. The (first) answer's characters are mapped to tokens by character offsets
  (`qa_token_offsets`), the way `run_qa.py` maps them: the first token is the one holding the
  answer's first character, the last the one holding its last. In a window that does not hold the
  whole answer, and for an unanswerable question, both labels are 0, the `[CLS]` token. One
  difference, on purpose: whitespace around the answer is not labelled (a few SQuAD answers start
  with a space, where `run_qa.py` starts the span at the token before it), and an answer starting
  in a window's last token is labelled there (where `run_qa.py`'s loop runs past the last token
  and labels the final `[SEP]`).
  Offsets rather than Google's `_improve_answer_span` (which re-tokenizes the answer text and
  searches for it within whitespace-separated words): they agree where the answer is a run of
  whole tokens; offsets also serve SentencePiece, and give the tightest token span when an answer
  ends inside a token ("1990" of "1990s" is the token "1990"; "Japan" of "Japanese" is the token
  "japanese", which `answers_widened` counts).
* For prediction, each window keeps its example's index, each context token the characters it came
  from, and whether this window is the token's "max context" one (`_check_is_max_context` in
  `run_squad.py`): the window where the token has the most context on its closer side, so that a
  span is scored where the model saw the most around it.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence

import numpy as np

from input_pipeline.tasks.qa_token_offsets import OffsetTokenizer, QATokenizer, TokenOffsets
from input_pipeline.tasks.squad_examples import QADataError, QAExample


@dataclasses.dataclass(frozen=True)
class QAFeatureConfig:
    """How examples become windows; the defaults are `run_squad.py`'s."""
    max_seq_length: int = 384
    doc_stride: int = 128  # Tokens between the starts of consecutive windows.
    max_query_length: int = 64  # Longer questions are cut to this many tokens.

    def __post_init__(self):
        if self.max_query_length < 1 or self.doc_stride < 1:
            raise ValueError(f"max_query_length ({self.max_query_length}) and doc_stride "
                             f"({self.doc_stride}) must be at least 1.")
        if self.max_seq_length - self.max_query_length - 3 < 1:
            raise ValueError(
                f"max_seq_length {self.max_seq_length} leaves no room for the context after a "
                f"question of max_query_length {self.max_query_length} tokens, [CLS] and two "
                f"[SEP]: make max_seq_length at least {self.max_query_length + 4}.")


@dataclasses.dataclass(frozen=True)
class QAFeatures:
    """The windows of a list of examples; row `i` of every array is window `i`.

    The model takes `input_ids`, `input_mask` and `segment_ids`; training adds `start_positions`
    and `end_positions`; post-processing uses the rest.
    """
    input_ids: np.ndarray  # [windows, max_seq_length] int32, padded with [PAD]
    input_mask: np.ndarray  # [windows, max_seq_length] int32: 1 for tokens, 0 for padding
    segment_ids: np.ndarray  # [windows, max_seq_length] int32: 0 question, 1 context
    # [windows] int32: the first and last token of the (first) answer in the window; 0 ([CLS]) for
    # none: unanswerable, or not wholly in this window.
    start_positions: np.ndarray
    end_positions: np.ndarray
    example_index: np.ndarray  # [windows] int32: the window's example in the examples given
    window_index: np.ndarray  # [windows] int32: 0, 1, ... within its example
    # [windows, max_seq_length, 2] int32: the characters of the example's context each context
    # token came from (start, end exclusive); (-1, -1) for [CLS], question, [SEP] and padding.
    token_offsets: np.ndarray
    token_is_max_context: np.ndarray  # [windows, max_seq_length] bool; False outside the context

    def __len__(self) -> int:
        return len(self.input_ids)

    def model_inputs(self, with_labels: bool = True) -> dict[str, np.ndarray]:
        """The arrays a training (or, without labels, a prediction) step takes, by name."""
        inputs = {"input_ids": self.input_ids, "input_mask": self.input_mask,
                  "segment_ids": self.segment_ids}
        if with_labels:
            inputs.update(start_positions=self.start_positions, end_positions=self.end_positions)
        return inputs


@dataclasses.dataclass
class QAFeatureReport:
    """What conversion did to the examples, for the user to see (`format()`)."""
    examples: int = 0
    windows: int = 0
    windows_per_example: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    unanswerable: int = 0  # Examples without an answer (SQuAD 2.0's impossible questions).
    questions_truncated: int = 0  # Questions cut to max_query_length tokens.
    longest_question: int = 0  # In tokens, before cutting.
    longest_context: int = 0  # In tokens.
    # Windows of answerable examples labelled [CLS] because their answer is not wholly inside.
    windows_without_answer: int = 0
    answers_in_no_window: int = 0  # Answers longer than any window holds: no window is labelled.
    answers_widened: int = 0  # Answers ending inside a token: the label covers the whole token.
    answers_without_tokens: int = 0  # Answers covering no token (only removed characters).

    def format(self) -> str:
        """A few lines for a person."""
        spread = ", ".join(f"{n}: {c}" for n, c in sorted(self.windows_per_example.items()))
        lines = [f"{self.examples} questions -> {self.windows} windows (windows per question: {spread})",
                 f"unanswerable questions: {self.unanswerable}",
                 (f"questions cut to max_query_length: {self.questions_truncated} (longest "
                  f"{self.longest_question} tokens); longest context {self.longest_context} tokens")]
        if self.windows_without_answer:
            lines.append(f"windows of answerable questions without their answer (labelled [CLS]): "
                         f"{self.windows_without_answer}")
        for name, what in (("answers_in_no_window", "answers longer than a window (no window holds them)"),
                           ("answers_widened", "answers ending inside a token (label covers the token)"),
                           ("answers_without_tokens", "answers covering no token (labelled [CLS])")):
            if getattr(self, name):
                lines.append(f"{what}: {getattr(self, name)}")
        return "\n".join(lines)


def convert_examples_to_features(examples: Sequence[QAExample], tokenizer: QATokenizer,
                                 config: QAFeatureConfig = QAFeatureConfig(), *,
                                 for_training: bool = False) -> tuple[QAFeatures, QAFeatureReport]:
    """The windows of `examples` as arrays, and the report of what was cut.

    `for_training` requires every question that is not `is_impossible` to have an answer (the
    first one is the label, as in `run_qa.py`); otherwise labels are filled where an answer is
    known and the rest are 0.

    Raises:
      QADataError: naming the question, for a training question without an answer.
    """
    offset_tokenizer = OffsetTokenizer(tokenizer)
    report = QAFeatureReport(examples=len(examples))
    rows: dict[str, list] = collections.defaultdict(list)
    last_context, context_tokens = None, None
    for example_index, example in enumerate(examples):
        if for_training and not example.answers and not example.is_impossible:
            raise QADataError(f"{example.source or example.id}: a training question needs an "
                              f"answer; give it one, or mark it \"is_impossible\": true (SQuAD 2.0).")
        question = offset_tokenizer.encode(example.question)
        report.longest_question = max(report.longest_question, len(question))
        if len(question) > config.max_query_length:
            report.questions_truncated += 1
            question = question[:config.max_query_length]
        # Questions about one paragraph come together in SQuAD files: tokenize it once.
        if example.context != last_context:
            last_context, context_tokens = example.context, offset_tokenizer(example.context)
        report.longest_context = max(report.longest_context, len(context_tokens.ids))
        windows = _windows(len(context_tokens.ids), config.max_seq_length - len(question) - 3,
                                 config.doc_stride)
        answer = _answer_tokens(example, context_tokens, report)
        max_context = _max_context_flags(windows, len(context_tokens.ids))
        for window_index, window in enumerate(windows):
            _append_window(rows, tokenizer, question, context_tokens, window,
                           max_context[window_index], answer, config.max_seq_length, report)
            rows["example_index"].append(example_index)
            rows["window_index"].append(window_index)
        report.windows_per_example[len(windows)] += 1
        report.windows += len(windows)
        if answer is not None and not any(answer[0] >= s and answer[1] < s + n for s, n in windows):
            report.answers_in_no_window += 1
    features = QAFeatures(**_stack(rows, config.max_seq_length))
    return features, report


def _windows(num_tokens: int, window_length: int, doc_stride: int) -> list[tuple[int, int]]:
    """(start, length) of each window over `num_tokens` context tokens, as `run_squad.py` makes
    them; one empty window for an empty context (Hugging Face's choice: every question gets a
    prediction)."""
    if window_length < 1:  # QAFeatureConfig rules it out; a loop that never ends otherwise.
        raise ValueError(f"no room for context tokens in windows of {window_length}")
    windows = []
    start = 0
    while True:
        length = min(window_length, num_tokens - start)
        windows.append((start, length))
        if start + length >= num_tokens:
            return windows
        start += min(length, doc_stride)


def _answer_tokens(example: QAExample, tokens: TokenOffsets,
                   report: QAFeatureReport) -> tuple[int, int] | None:
    """The first and last context token of the example's first answer, or None without one."""
    if not example.answers:
        report.unanswerable += 1
        return None
    first, last = example.answers[0].start, example.answers[0].end
    # Token offsets never decrease along the text: the first token ending after the answer's first
    # character, and the last token starting before its end. Whitespace around the answer, which
    # no token covers, changes neither.
    start = int(np.searchsorted(tokens.offsets[:, 1], first, side="right"))
    end = int(np.searchsorted(tokens.offsets[:, 0], last, side="left")) - 1
    if start > end:
        report.answers_without_tokens += 1
        return None
    if tokens.offsets[start, 0] < first or tokens.offsets[end, 1] > last:
        report.answers_widened += 1
    return start, end


def _max_context_flags(windows: Sequence[tuple[int, int]], num_tokens: int) -> np.ndarray:
    """[windows, num_tokens] bool: whether each window is the "max context" one for each token.

    `run_squad.py`'s `_check_is_max_context`: a token's score in a window is the smaller of its
    left and right context there, plus 0.01 of the window's length; the first window with the
    highest score wins.
    """
    best_score = np.full(num_tokens, -np.inf)
    best_window = np.zeros(num_tokens, np.int64)
    for index, (start, length) in enumerate(windows):
        positions = np.arange(start, start + length)
        score = np.minimum(positions - start, start + length - 1 - positions) + 0.01 * length
        better = score > best_score[positions]
        best_score[positions[better]] = score[better]
        best_window[positions[better]] = index
    return best_window[None, :] == np.arange(len(windows))[:, None]


def _append_window(rows: dict[str, list], tokenizer: QATokenizer, question: list[int],
                   context: TokenOffsets, window: tuple[int, int], window_max_context: np.ndarray,
                   answer: tuple[int, int] | None, max_seq_length: int,
                   report: QAFeatureReport) -> None:
    """Appends one window's row to each of `rows`' lists."""
    start, length = window
    context_offset = len(question) + 2  # [CLS] question [SEP]
    ids = [tokenizer.cls_id, *question, tokenizer.sep_id,
           *context.ids[start:start + length].tolist(), tokenizer.sep_id]
    padding = max_seq_length - len(ids)
    rows["input_ids"].append(ids + [tokenizer.pad_id] * padding)
    rows["input_mask"].append([1] * len(ids) + [0] * padding)
    rows["segment_ids"].append([0] * context_offset + [1] * (length + 1) + [0] * padding)
    offsets = np.full((max_seq_length, 2), -1, np.int32)
    offsets[context_offset:context_offset + length] = context.offsets[start:start + length]
    rows["token_offsets"].append(offsets)
    max_context = np.zeros(max_seq_length, bool)
    max_context[context_offset:context_offset + length] = window_max_context[start:start + length]
    rows["token_is_max_context"].append(max_context)
    if answer is not None and answer[0] >= start and answer[1] < start + length:
        rows["start_positions"].append(answer[0] - start + context_offset)
        rows["end_positions"].append(answer[1] - start + context_offset)
    else:
        if answer is not None:
            report.windows_without_answer += 1
        rows["start_positions"].append(0)
        rows["end_positions"].append(0)


def _stack(rows: dict[str, list], max_seq_length: int) -> dict[str, np.ndarray]:
    shapes = {"input_ids": (0, max_seq_length), "input_mask": (0, max_seq_length),
              "segment_ids": (0, max_seq_length), "token_offsets": (0, max_seq_length, 2),
              "token_is_max_context": (0, max_seq_length), "start_positions": (0,),
              "end_positions": (0,), "example_index": (0,), "window_index": (0,)}
    arrays = {}
    for name, empty_shape in shapes.items():
        dtype = bool if name == "token_is_max_context" else np.int32
        arrays[name] = np.asarray(rows[name], dtype) if rows[name] else np.zeros(empty_shape, dtype)
    return arrays
