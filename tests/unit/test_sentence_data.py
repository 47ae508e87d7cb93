"""Sentence-BERT's data (`input_pipeline/tasks/sentence_pairs.py`, `sentence_features.py`): NLI,
STS and (anchor, positive[, negative]) files in the layouts their datasets are distributed in
(SNLI's and KorNLI's TSVs, GLUE's STS-B TSV, KorSTS's TSV, KLUE-STS's JSON array), TFDS's `snli`
and `glue/stsb` (served offline by `tfds.testing.mock_data`), generic JSON Lines and CSV with
mapped fields; bad rows named by file, line and field; and the arrays each side becomes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from input_pipeline.tasks.records import Location, TaskDataError
from input_pipeline.tasks.sentence_features import sentence_features, side_names
from input_pipeline.tasks.sentence_pairs import NLI_LABELS, parse_fields, read_sentence_data
from input_pipeline.tasks.truncation import TruncationReport

tfds = pytest.importorskip("tensorflow_datasets")


def _tsv(path, *rows) -> str:
    path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def _jsonl(path, *records) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


# SNLI's own files (snli_1.0_train.txt): gold_label first, "-" where the annotators did not agree.
SNLI_COLUMNS = ("gold_label", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse",
                "sentence2_parse", "sentence1", "sentence2", "captionID", "pairID", "label1")


def test_nli_from_snli_and_kornli_files(tmp_path):
    snli = _tsv(tmp_path / "snli_1.0_train.txt", SNLI_COLUMNS,
                ("neutral", "(", "(", "(", "(", "A person on a horse jumps.", "A person is training.", "1", "1n", "neutral"),
                ("-", "(", "(", "(", "(", "Children smiling.", "Kids are happy.", "2", "2e", "neutral"),
                ("contradiction", "(", "(", "(", "(", "A man sleeps.", "A man runs.", "3", "3c", "contradiction"))
    data = read_sentence_data("nli", snli, "snli")
    assert [(e.texts, e.label) for e in data.examples] == [
        (("A person on a horse jumps.", "A person is training."), 1), (("A man sleeps.", "A man runs."), 2)]
    assert data.unlabeled == 1 and data.num_sides == 2
    assert data.examples[1].location == Location(snli, 4)
    kornli = _tsv(tmp_path / "multinli.train.ko.tsv", ("sentence1", "sentence2", "gold_label"),
                  ("개념적으로 크림 스키밍은 두 가지 기본 차원을 가지고 있다.", "제품과 지리학은 크림 스키밍을 작동시키는 것이다.", "neutral"),
                  ("시즌 중에 알고 있는 거 알아?", "시즌 중에 알고 있다.", "entailment"))
    assert [e.label for e in read_sentence_data("nli", kornli, "kornli").examples] == [1, 0]


def test_nli_jsonl_with_mapped_fields_and_indexed_labels(tmp_path):
    # Hugging Face's `datasets` exports ClassLabels as indices (-1: no gold label).
    path = _jsonl(tmp_path / "nli.jsonl", {"s1": "A dog runs.", "s2": "An animal moves.", "gold": 0},
                  {"s1": "A cat.", "s2": "No cat.", "gold": 2}, {"s1": "Rain.", "s2": "Sun.", "gold": -1})
    data = read_sentence_data("nli", path, fields="premise=s1,hypothesis=s2,label=gold")
    assert [(e.texts, e.label) for e in data.examples] == [
        (("A dog runs.", "An animal moves."), NLI_LABELS.index("entailment")), (("A cat.", "No cat."), 2)]
    assert data.unlabeled == 1
    bad = _jsonl(tmp_path / "bad.jsonl", {"premise": "A.", "hypothesis": "B.", "label": "entailment"},
                 {"premise": "C.", "hypothesis": "D.", "label": "maybe"})
    with pytest.raises(TaskDataError, match=r"bad\.jsonl:2: field 'label': NLI label 'maybe'"):
        read_sentence_data("nli", bad)
    with pytest.raises(ValueError, match="is not NLI data"):
        read_sentence_data("nli", bad, "glue/stsb")
    with pytest.raises(ValueError, match="'premis'='a' is not ROLE=FIELD"):
        parse_fields("premis=a", "nli")


STSB_COLUMNS = ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
                "sentence2", "score")


def test_sts_from_stsb_korsts_and_klue_sts(tmp_path):
    stsb = _tsv(tmp_path / "train.tsv", STSB_COLUMNS,
                ("0", "main-captions", "MSRvid", "2012test", "0001", "none", "none", "A plane is taking off.",
                 "An air plane is taking off.", "5.000"),
                ("1", "main-captions", "MSRvid", "2012test", "0004", "none", "none", "A man is playing a flute.",
                 "A man is playing a bamboo flute.", "3.800"))
    data = read_sentence_data("sts", stsb, "glue/stsb")
    assert [e.label for e in data.examples] == pytest.approx([1.0, 0.76])
    korsts = _tsv(tmp_path / "sts-train.tsv", ("genre", "filename", "year", "id", "score", "sentence1", "sentence2"),
                  ("main-captions", "MSRvid", "2012test", "0001", "5.000", "비행기가 이륙하고 있다.", "비행기가 이륙하고 있다."),
                  ("main-captions", "MSRvid", "2012test", "0004", "0.500", "한 남자가 큰 플루트를 연주하고 있다.", "남자가 먹는다."))
    assert [e.label for e in read_sentence_data("sts", korsts, "korsts").examples] == pytest.approx([1.0, 0.1])
    klue = tmp_path / "klue-sts-v1.1_train.json"
    klue.write_text(json.dumps([
        {"guid": "klue-sts-v1_train_00000", "sentence1": "숙소 위치는 찾기 쉽고 일반적인 한국의 반지하 숙소입니다.",
         "sentence2": "숙박시설의 위치는 쉽게 찾을 수 있고 한국의 대표적인 반지하 숙박시설입니다.",
         "labels": {"label": 3.7, "real-label": 3.714285714285714, "binary-label": 1}}], ensure_ascii=False, indent=4))
    [example] = read_sentence_data("sts", klue, "klue/sts").examples
    assert example.label == pytest.approx(3.714285714285714 / 5)
    out_of_scale = _tsv(tmp_path / "scores.tsv", ("sentence1", "sentence2", "score"), ("A.", "B.", "4"), ("C.", "D.", "5.5"))
    with pytest.raises(TaskDataError, match=r"scores\.tsv:3: field 'score': score 5\.5 is outside 0 to 5"):
        read_sentence_data("sts", out_of_scale)
    unscored = _jsonl(tmp_path / "unscored.jsonl", {"sentence1": "A.", "sentence2": "B."})
    with pytest.raises(TaskDataError, match=r"unscored\.jsonl:1: field 'score': no similarity score"):
        read_sentence_data("sts", unscored)


def test_tfds_snli_and_stsb():
    import tensorflow as tf

    splits = {"snli": {"premise": ["A man plays.", "Rain."], "hypothesis": ["A person plays.", "Sun."], "label": [0, -1]},
              "glue": {"sentence1": ["A plane.", "A flute."], "sentence2": ["A jet.", "A dog."], "label": [4.5, 0.0],
                       "idx": [0, 1]}}

    def as_dataset(self, split, **kwargs):
        return tf.data.Dataset.from_tensor_slices(splits[self.name])

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        nli = read_sentence_data("nli", "tfds:snli:train")
        sts = read_sentence_data("sts", "tfds:glue/stsb:validation")
    assert [(e.texts, e.label) for e in nli.examples] == [(("A man plays.", "A person plays."), 0)]
    assert nli.unlabeled == 1 and nli.examples[0].location == Location("tfds:snli:train", index=0)
    assert [(e.texts, e.label) for e in sts.examples] == [(("A plane.", "A jet."), pytest.approx(0.9)),
                                                         (("A flute.", "A dog."), 0.0)]


def test_pairs_and_triplets(tmp_path):
    csv = tmp_path / "pairs.csv"
    csv.write_text('anchor,positive,negative\nWhat is a dog?,"A dog is an animal, a pet.",A car.\n'
                   "Who wrote it?,Someone did.,Nobody.\n", encoding="utf-8")
    data = read_sentence_data("pairs", csv)
    assert data.num_sides == 3 and data.examples[0].texts == ("What is a dog?", "A dog is an animal, a pet.", "A car.")
    jsonl = _jsonl(tmp_path / "q.jsonl", {"query": "q1", "doc": "d1", "hard": "h1", "hard2": "h2"})
    [example] = read_sentence_data("pairs", jsonl, fields="anchor=query,positive=doc,negative=hard,negative=hard2").examples
    assert example.texts == ("q1", "d1", "h1", "h2")
    assert read_sentence_data("pairs", jsonl, fields="anchor=query,positive=doc").num_sides == 2
    ragged = _tsv(tmp_path / "ragged.tsv", ("anchor", "positive"), ("a", "b"), ("c", "d", "e"))
    with pytest.raises(TaskDataError, match=r"ragged\.tsv:3: 3 fields where the header has 2"):
        read_sentence_data("pairs", ragged)
    empty = _tsv(tmp_path / "empty.tsv", ("anchor", "positive"), ("a", "b"), ("c", " "))
    with pytest.raises(TaskDataError, match=r"empty\.tsv:3: field 'positive': empty text"):
        read_sentence_data("pairs", empty)
    with pytest.raises(TaskDataError, match=r"q\.jsonl:1: field 'anchor': missing"):
        read_sentence_data("pairs", jsonl)
    with pytest.raises(ValueError, match="say which format"):
        read_sentence_data("pairs", tmp_path / "pairs.txt")


class _Tokenizer:
    """Whitespace tokens, one id per distinct word (ids from 5), [CLS] 1 and [SEP] 2."""
    cls_id, sep_id = 1, 2

    def __init__(self):
        self.ids: dict[str, int] = {}

    def encode(self, text):
        return [self.ids.setdefault(w, 5 + len(self.ids)) for w in text.split()]


def test_features_each_side_alone_cut_and_lower_cased(tmp_path):
    path = _jsonl(tmp_path / "t.jsonl", {"anchor": "One Two three four five", "positive": "six", "negative": "Seven eight"})
    data = read_sentence_data("pairs", path)
    report = TruncationReport(5)
    tokenizer = _Tokenizer()
    features = sentence_features(data, tokenizer, 5, do_lower_case=True, report=report)
    assert side_names(3) == ("a", "b", "negative_1")
    one, two, three, six, seven, eight = (tokenizer.ids[w] for w in ("one", "two", "three", "six", "seven", "eight"))
    np.testing.assert_array_equal(features.arrays["a_input_ids"], [[1, one, two, three, 2]])
    np.testing.assert_array_equal(features.arrays["b_input_ids"], [[1, six, 2, 0, 0]])
    np.testing.assert_array_equal(features.arrays["negative_1_input_ids"], [[1, seven, eight, 2, 0]])
    np.testing.assert_array_equal(features.arrays["negative_1_input_mask"], [[1, 1, 1, 1, 0]])
    assert features.lengths.tolist() == [5] and report.truncated_examples == 1 and report.tokens_cut == 2
    assert "One" not in tokenizer.ids
