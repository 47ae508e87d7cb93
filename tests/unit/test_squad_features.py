"""Question answering features against Hugging Face: token offsets equal `BertTokenizerFast`'s
`return_offsets_mapping` on real text in many scripts, and windows and training labels equal what
`run_qa.py`'s `prepare_train_features` makes with `truncation="only_second"`, `stride` and
`return_overflowing_tokens`, on paragraphs of the standard library's docstrings written as a
SQuAD file. SentencePiece offsets map answers to tokens and back to the exact characters.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from conftest import stdlib_docstring_lines, stdlib_non_english_lines

from input_pipeline.tasks.qa_token_offsets import OffsetTokenizer, tokenize_with_offsets
from input_pipeline.tasks.squad_examples import QAAnswer, QADataError, QAExample, read_squad_json
from input_pipeline.tasks.squad_features import QAFeatureConfig, convert_examples_to_features
from input_pipeline.tokenizers.loading import load_tokenizer

CONFIG = QAFeatureConfig(max_seq_length=128, doc_stride=32, max_query_length=48)


@pytest.fixture(scope="module")
def hf_tokenizer(uncased_vocab_path):
    import transformers

    return transformers.BertTokenizerFast(uncased_vocab_path, do_lower_case=True)


def random_unicode_lines(n: int, seed: int = 0) -> list[str]:
    """Latin, combining accents, CJK, Hangul, and the odd spaces and controls BERT treats apart."""
    rng = random.Random(seed)
    pools = [(32, 0x250), (0x300, 0x370), (0x4E00, 0x4E80), (0xAC00, 0xAC80)]
    odd = [" ", "\u0085", "\u00a0", "\u001c", "\u2028", "\u200b", "\ufffd", "\x00"]
    lines = []
    for _ in range(n):
        chars = [rng.choice(odd) if rng.random() < 0.15 else chr(rng.randrange(*rng.choice(pools)))
                 for _ in range(rng.randrange(1, 40))]
        lines.append("".join(chars))
    return lines


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_wordpiece_offsets_equal_hugging_face(uncased_vocab_path, do_lower_case):
    import transformers

    ours = OffsetTokenizer(load_tokenizer(uncased_vocab_path, do_lower_case=do_lower_case))
    hf = transformers.BertTokenizerFast(uncased_vocab_path, do_lower_case=do_lower_case)
    lines = (list(stdlib_docstring_lines(6000)) + list(stdlib_non_english_lines())
             + random_unicode_lines(1000) + ["Café  naïve e\u0301te\u0301 İstanbul ΣΑΣ ﬁnance",
                                             "  (1895-1943).  ", ""])
    assert sum(not line.isascii() for line in lines) > 2000
    for line in lines:
        tokens = ours(line)
        expected = hf(line, add_special_tokens=False, return_offsets_mapping=True)
        assert tokens.ids.tolist() == expected["input_ids"], line
        assert tokens.offsets.tolist() == [list(o) for o in expected["offset_mapping"]], line


def test_special_tokens_in_text_are_text(uncased_vocab_path, hf_tokenizer):
    # The one difference from `transformers`, on purpose: "[SEP]" in data is text.
    tokens = tokenize_with_offsets(load_tokenizer(uncased_vocab_path), "a [SEP] b")
    assert tokens.offsets.tolist() == [[0, 1], [2, 3], [3, 6], [6, 7], [8, 9]]
    assert hf_tokenizer("a [SEP] b", add_special_tokens=False)["input_ids"][1] == hf_tokenizer.sep_token_id


def docstring_squad_file(path, seed: int = 0, num_paragraphs: int = 150) -> None:
    """A SQuAD v1.1 file of real paragraphs (3 to 40 docstring lines joined by one or two spaces
    or a newline), three questions each (other docstring lines), each with an answer of 1 to 60
    characters starting and ending anywhere but on whitespace: inside words too."""
    rng = random.Random(seed)
    lines = stdlib_docstring_lines(8000)
    position = 0
    paragraphs = []
    for p in range(num_paragraphs):
        n = rng.randrange(3, 40)
        context = rng.choice([" ", "  ", "\n"]).join(lines[position:position + n])
        position += n
        qas = []
        for q in range(3):
            start = rng.randrange(len(context))
            while context[start].isspace():
                start = rng.randrange(len(context))
            end = min(len(context), start + rng.randrange(1, 60))
            while context[end - 1].isspace():
                end -= 1
            qas.append({"id": f"{p}-{q}", "question": lines[rng.randrange(len(lines))][:120],
                        "answers": [{"text": context[start:end], "answer_start": start}]})
        paragraphs.append({"context": context, "qas": qas})
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "stdlib", "paragraphs": paragraphs}]}))


def run_qa_labels(encoding, window: int, start_char: int, end_char: int) -> tuple[int, int]:
    """The start and end labels `run_qa.py`'s `prepare_train_features` gives window `window` of a
    `BertTokenizerFast` encoding (its loop, restated): [CLS] (0) unless the window's context
    covers the answer's characters; else the last token starting at or before the answer's first
    character, and the token after the last one ending before the answer's end."""
    offsets, sequence_ids = encoding["offset_mapping"][window], encoding.sequence_ids(window)
    first = sequence_ids.index(1)
    last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return 0, 0
    start = first
    while start < len(offsets) and offsets[start][0] <= start_char:
        start += 1
    end = last
    while offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def test_windows_and_labels_equal_run_qa(tmp_path, uncased_vocab_path, hf_tokenizer):
    path = tmp_path / "train.json"
    docstring_squad_file(path)
    examples = read_squad_json(path)
    features, report = convert_examples_to_features(examples, load_tokenizer(uncased_vocab_path),
                                                    CONFIG, for_training=True)
    # Real lengths: most questions need several windows, some labels fall inside tokens.
    assert report.windows > 3 * report.examples and report.answers_widened > 50
    assert report.windows_without_answer > report.windows / 2
    compared = last_token_cases = 0
    for example_index, example in enumerate(examples):
        question_length = len(hf_tokenizer(example.question, add_special_tokens=False)["input_ids"])
        assert question_length <= CONFIG.max_query_length  # run_qa.py cuts no question.
        # Google's doc_stride is the step between windows, Hugging Face's stride the overlap.
        window_length = CONFIG.max_seq_length - question_length - 3
        encoding = hf_tokenizer(example.question, example.context, truncation="only_second",
                                max_length=CONFIG.max_seq_length, stride=window_length - CONFIG.doc_stride,
                                return_overflowing_tokens=True, return_offsets_mapping=True)
        rows = np.flatnonzero(features.example_index == example_index)
        assert len(rows) == len(encoding["input_ids"])
        answer = example.answers[0]
        for window, row in enumerate(rows):
            length = int(features.input_mask[row].sum())
            assert features.input_ids[row, :length].tolist() == encoding["input_ids"][window]
            assert features.segment_ids[row, :length].tolist() == encoding["token_type_ids"][window]
            assert features.window_index[row] == window
            context_tokens = [k for k, s in enumerate(encoding.sequence_ids(window)) if s == 1]
            assert (features.token_offsets[row, context_tokens].tolist()
                    == [list(encoding["offset_mapping"][window][k]) for k in context_tokens])
            ours = (int(features.start_positions[row]), int(features.end_positions[row]))
            theirs = run_qa_labels(encoding, window, answer.start, answer.end)
            compared += 1
            if ours != theirs:
                # run_qa.py's edge case ("we could go after the last offset"): an answer starting
                # in the window's last context token; its loop runs on past the final [SEP]
                # (offsets (0, 0)) and labels the start at [SEP]. Ours is that last token.
                last_token_cases += 1
                assert theirs[0] == length - 1 and ours == (length - 2, theirs[1]), (example.id, window)
    assert compared == report.windows and last_token_cases < compared / 100


def test_answer_whitespace_is_not_labelled(uncased_vocab_path, hf_tokenizer):
    """An answer written with surrounding spaces (a few SQuAD answers are) is labelled without
    them; run_qa.py's rule would start it at the token before the space."""
    context = "The game was won by the Denver Broncos in 2016."
    start = context.index(" Denver")
    example = QAExample("q", "Who won?", context, (QAAnswer(" Denver Broncos ", start),))
    features, _ = convert_examples_to_features([example], load_tokenizer(uncased_vocab_path), CONFIG,
                                               for_training=True)
    s, e = int(features.start_positions[0]), int(features.end_positions[0])
    offsets = features.token_offsets[0]
    assert context[offsets[s, 0]:offsets[e, 1]] == "Denver Broncos"
    encoding = hf_tokenizer("Who won?", context, truncation="only_second", max_length=CONFIG.max_seq_length,
                            return_overflowing_tokens=True, return_offsets_mapping=True)
    assert run_qa_labels(encoding, 0, start, start + len(" Denver Broncos ")) == (s - 1, e + 1)


def test_questions_cut_and_report(uncased_vocab_path):
    tokenizer = load_tokenizer(uncased_vocab_path)
    context = " ".join(stdlib_docstring_lines(400)[:30])
    long_question = " ".join(["why"] * 100)
    examples = [QAExample("long", long_question, context, ()),
                QAExample("short", "Why?", context, (QAAnswer(context[:9], 0),)),
                QAExample("empty context", "Why?", "", ())]
    config = QAFeatureConfig(max_seq_length=64, doc_stride=16, max_query_length=10)
    features, report = convert_examples_to_features(examples, tokenizer, config)
    first = np.flatnonzero(features.example_index == 0)
    # [CLS], 10 of the 100 question tokens, [SEP], 64 - 13 = 51 context tokens, [SEP].
    assert features.input_ids[first[0], :12].tolist() == [tokenizer.cls_id] + [tokenizer.vocab["why"]] * 10 + [tokenizer.sep_id]
    assert features.input_mask[first[0]].sum() == 64 and features.segment_ids[first[0], 12:].tolist() == [1] * 52
    context_length = len(tokenize_with_offsets(tokenizer, context).ids)
    # Windows of 51 tokens every 16: the last one ends at the context's end.
    assert len(first) == -(-(context_length - 51) // 16) + 1
    assert (report.questions_truncated, report.longest_question, report.longest_context) == (1, 100, context_length)
    assert report.unanswerable == 2 and report.windows == len(features) and report.examples == 3
    assert sum(n * count for n, count in report.windows_per_example.items()) == len(features)
    # An empty context still gets one window, with no context token.
    [empty] = np.flatnonzero(features.example_index == 2)
    assert features.input_ids[empty, :4].tolist() == [tokenizer.cls_id, tokenizer.vocab["why"], tokenizer.vocab["?"], tokenizer.sep_id]
    assert features.input_mask[empty].sum() == 5 and (features.token_offsets[empty] == -1).all()
    assert "3 questions -> " in report.format()
    assert set(features.model_inputs()) == {"input_ids", "input_mask", "segment_ids", "start_positions", "end_positions"}
    assert all(a.dtype == np.int32 and a.shape[0] == len(features) for a in features.model_inputs().values())


def test_max_context_flags():
    """The example of `_check_is_max_context`'s comment in run_squad.py: windows "the man went to
    the", "to the store and bought", "and bought a gallon of": "bought" has its max context in the
    third (1 left, 3 right) rather than the second (4 left, 0 right)."""
    from input_pipeline.tasks.squad_features import _max_context_flags

    flags = _max_context_flags([(0, 5), (3, 5), (6, 5)], 12)
    bought = 7
    assert flags[:, bought].tolist() == [False, False, True]
    # Every token has exactly one max-context window, and it holds the token.
    assert (flags.sum(axis=0)[:11] == 1).all() and flags[0, :3].all() and flags[2, 9:11].all()


def test_training_question_without_answer(uncased_vocab_path, tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": "Some text.", "qas": [
        {"id": "x1", "question": "Why?", "answers": []}]}]}]}))
    examples = read_squad_json(path)
    tokenizer = load_tokenizer(uncased_vocab_path)
    with pytest.raises(QADataError, match=rf"{path}: article 0, paragraph 0, question 0 \(id 'x1'\): "
                                          r"a training question needs an answer.*is_impossible"):
        convert_examples_to_features(examples, tokenizer, CONFIG, for_training=True)
    features, report = convert_examples_to_features(examples, tokenizer, CONFIG)  # For prediction: fine.
    assert report.unanswerable == 1 and features.start_positions.tolist() == [0]


def test_config_is_checked():
    with pytest.raises(ValueError, match="leaves no room for the context.*at least 68"):
        QAFeatureConfig(max_seq_length=64, max_query_length=64)
    with pytest.raises(ValueError, match="doc_stride"):
        QAFeatureConfig(doc_stride=0)


def test_sentencepiece_answers_map_to_tokens_and_back(tmp_path):
    """A lower-casing SentencePiece model (NFKC, case folding): ids equal the tokenizer's, and an
    answer of whole words, labelled, gives back its exact original characters (case, accents and
    odd whitespace kept) through the token offsets."""
    from input_pipeline.vocabulary.sentencepiece import train_sentencepiece

    tokenizer = train_sentencepiece(stdlib_docstring_lines(3000), tmp_path / "sp.model", 800, lowercase=True)
    rng = random.Random(1)
    lines = stdlib_docstring_lines(4000)[3000:]
    examples = []
    for p in range(60):
        words = [w for line in lines[p * 10:p * 10 + 10] for w in line.split()]
        words[rng.randrange(len(words))] = "Café\u00a0MÜLLER"
        context = "".join(w + rng.choice([" ", "  ", "\t", "\n "]) for w in words)
        spans = [(m.start(), m.end()) for m in __import__("re").finditer(r"\S+", context)]
        for q in range(3):
            i = rng.randrange(len(spans))
            j = min(len(spans) - 1, i + rng.randrange(4))
            start, end = spans[i][0], spans[j][1]
            examples.append(QAExample(f"{p}-{q}", "What?", context, (QAAnswer(context[start:end], start),)))
    offset_tokenizer = OffsetTokenizer(tokenizer)
    assert offset_tokenizer(examples[0].context).ids.tolist() == tokenizer.encode(examples[0].context, split_special_tokens=True)
    config = QAFeatureConfig(max_seq_length=96, doc_stride=24, max_query_length=16)
    features, report = convert_examples_to_features(examples, tokenizer, config, for_training=True)
    assert report.windows > 2 * report.examples and report.answers_widened == 0
    labelled = 0
    for row in np.flatnonzero(features.start_positions):
        example = examples[features.example_index[row]]
        offsets = features.token_offsets[row]
        s, e = features.start_positions[row], features.end_positions[row]
        assert example.context[offsets[s, 0]:offsets[e, 1]] == example.answers[0].text
        labelled += 1
    assert labelled >= report.examples
    accented = tokenize_with_offsets(tokenizer, "x Café\u00a0MÜLLER y")
    assert ["x Café\u00a0MÜLLER y"[a:b] for a, b in accented.offsets if b > a][-1] == "y"
