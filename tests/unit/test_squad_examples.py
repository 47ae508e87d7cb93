"""Reading SQuAD v1.1/v2.0, KorQuAD 1.0 and KLUE-MRC JSON and TFDS's `squad` (served offline by
`tfds.testing.mock_data`), and the errors bad input gets: file, question, id and field named."""

from __future__ import annotations

import copy
import json

import pytest

from input_pipeline.tasks.squad_examples import QAAnswer, QADataError, read_qa_examples, read_squad_json

CONTEXT = "Super Bowl 50 was played at Levi's Stadium in Santa Clara, California."

SQUAD_V2 = {"version": "v2.0", "data": [{"title": "Super_Bowl_50", "paragraphs": [{
    "context": CONTEXT,
    "qas": [
        {"id": "q0", "question": "Where was Super Bowl 50 played?", "is_impossible": False,
         "answers": [{"text": "Levi's Stadium", "answer_start": 28},
                     {"text": "Santa Clara, California", "answer_start": 46}]},
        {"id": "q1", "question": "Where was Super Bowl 51 played?", "is_impossible": True,
         "answers": [], "plausible_answers": [{"text": "Levi's Stadium", "answer_start": 28}]},
    ]}]}]}


def write(tmp_path, document, name="data.json"):
    path = tmp_path / name
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def test_squad_v2(tmp_path):
    path = write(tmp_path, SQUAD_V2)
    answerable, impossible = read_squad_json(path)
    assert answerable.id == "q0" and answerable.context == CONTEXT and answerable.title == "Super_Bowl_50"
    assert answerable.answers == (QAAnswer("Levi's Stadium", 28), QAAnswer("Santa Clara, California", 46))
    assert CONTEXT[answerable.answers[1].start:answerable.answers[1].end] == "Santa Clara, California"
    assert not answerable.is_impossible
    assert answerable.source == f"{path}: article 0, paragraph 0, question 0 (id 'q0')"
    assert impossible.is_impossible and impossible.answers == ()
    assert impossible.plausible_answers == (QAAnswer("Levi's Stadium", 28),)
    assert read_qa_examples(str(path)) == [answerable, impossible]


def test_squad_v1_and_korquad(tmp_path):
    v1 = copy.deepcopy(SQUAD_V2)
    qas = v1["data"][0]["paragraphs"][0]["qas"]
    del qas[1]
    del qas[0]["is_impossible"]
    [example] = read_squad_json(write(tmp_path, v1))
    assert not example.is_impossible and len(example.answers) == 2
    # KorQuAD 1.0: SQuAD v1.1's layout, Korean text.
    context = "대한민국의 수도는 서울이다. 서울의 인구는 약 천만 명이다."
    korquad = {"version": "KorQuAD_v1.0_dev", "data": [{"title": "서울", "paragraphs": [{
        "context": context, "qas": [{"id": "6566495-0-0", "question": "대한민국의 수도는?",
                                     "answers": [{"text": "서울", "answer_start": 10}]}]}]}]}
    [example] = read_squad_json(write(tmp_path, korquad, "korquad.json"))
    assert example.answers == (QAAnswer("서울", 10),) and example.title == "서울"


def test_klue_mrc(tmp_path):
    # KLUE-MRC's layout (klue-mrc-v1.1_dev.json): "guid" for the id, question_type 1-3, the
    # unanswerable ones (type 3) with "plausible_answers"; news_category and source per article.
    context = "한국전력은 사우디아라비아와 MOU 5개를 체결했다."
    five = context.index("5개")
    klue = {"version": "v1.1", "data": [{
        "title": "한전 사우디 진출", "news_category": "경제", "source": "hankyung",
        "paragraphs": [{"context": context, "qas": [
            {"guid": "klue-mrc-v1_dev_01", "question": "체결한 MOU는 몇 개인가?", "question_type": 1,
             "is_impossible": False, "answers": [{"text": "5개", "answer_start": five},
                                                  {"text": "5", "answer_start": five}]},
            {"guid": "klue-mrc-v1_dev_02", "question": "MOU를 체결한 날짜는?", "question_type": 3,
             "is_impossible": True, "answers": [],
             "plausible_answers": [{"text": "5개", "answer_start": five}]}]}]}]}
    first, second = read_squad_json(write(tmp_path, klue))
    assert first.id == "klue-mrc-v1_dev_01" and first.question_type == 1
    assert first.answers == (QAAnswer("5개", five), QAAnswer("5", five))
    assert second.is_impossible and second.question_type == 3 and second.answers == ()


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0].pop("question"),
     r"article 0, paragraph 0, question 0 \(id 'q0'\): missing field 'question'"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0].pop("id"),
     r"article 0, paragraph 0, question 0: missing field 'id'"),
    (lambda d: d["data"][0]["paragraphs"][0].pop("context"),
     r"article 0, paragraph 0: missing field 'context'"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][1].pop("answer_start"),
     r"\(id 'q0'\): missing field 'answers\[1\].answer_start'"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start="28"),
     r"\(id 'q0'\): field 'answers\[0\].answer_start' must be an integer, not a string"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][1].update(is_impossible="yes"),
     r"\(id 'q1'\): field 'is_impossible' must be true or false, not a string"),
    # The answer's text is not where answer_start says: both strings, and where it is.
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=29),
     (r"\(id 'q0'\): answers\[0\]: the text \"Levi's Stadium\" is not at answer_start 29 "
      r"\(the context holds \"evi's Stadium \" there\); the text occurs at 28: fix answer_start")),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(text="Candlestick Park"),
     (r"answers\[0\]: the text 'Candlestick Park' is not at answer_start 28 .*does not occur in the "
      r"context at all")),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=1000),
     r"answers\[0\]: .* \(the context has 70 characters\)"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][1]["answers"].append(
        {"text": "Levi's Stadium", "answer_start": 28}),
     r"\(id 'q1'\): is_impossible is true but the question has 1 answers"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][1].update(id="q0"),
     r"question 1 \(id 'q0'\): the id 'q0' was used before, by .*question 0 \(id 'q0'\)"),
    (lambda d: d.update(data={"title": "x"}), r"the top level must be an object with a \"data\" list"),
])
def test_errors_name_file_question_and_field(tmp_path, edit, message):
    document = copy.deepcopy(SQUAD_V2)
    edit(document)
    path = write(tmp_path, document)
    with pytest.raises(QADataError, match=message) as error:
        read_squad_json(path)
    assert str(error.value).startswith(str(path))


def test_invalid_json_names_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"data": [\n  {"title": "x",, }]}')
    with pytest.raises(QADataError, match=rf"{path}:2:17: not valid JSON"):
        read_squad_json(path)
    with pytest.raises(FileNotFoundError, match="question answering data not found"):
        read_squad_json(tmp_path / "absent.json")


# --- TFDS ----------------------------------------------------------------------------------------

def _mock_tfds(tfds, records):
    """`tfds.testing.mock_data` serving `records` for any split (random data would not have its
    answers in its contexts); records the builders and splits asked for."""
    import tensorflow as tf

    calls = []

    def as_dataset(self, split, **kwargs):
        calls.append((self.name, self.builder_config.name, str(split)))
        columns = {key: [record[key] for record in records] for key in records[0]}
        for key in ("answers", "plausible_answers"):
            if key in columns:  # Sequence features: ragged per record.
                columns[key] = {field: tf.ragged.constant([r[key][field] for r in records],
                                                          dtype=tf.int32 if field == "answer_start" else tf.string)
                                for field in ("text", "answer_start")}
        return tf.data.Dataset.from_tensor_slices(columns)

    return tfds.testing.mock_data(as_dataset_fn=as_dataset), calls


def test_tfds_squad_v2():
    tfds = pytest.importorskip("tensorflow_datasets")
    records = [
        {"id": "q0", "title": "Super_Bowl_50", "context": CONTEXT, "question": "Where?",
         "answers": {"text": ["Levi's Stadium"], "answer_start": [28]}, "is_impossible": False,
         "plausible_answers": {"text": [], "answer_start": []}},
        {"id": "q1", "title": "Super_Bowl_50", "context": CONTEXT, "question": "Where not?",
         "answers": {"text": [], "answer_start": []}, "is_impossible": True,
         "plausible_answers": {"text": ["Santa Clara"], "answer_start": [46]}}]
    mock, calls = _mock_tfds(tfds, records)
    with mock:
        first, second = read_qa_examples("tfds:squad/v2.0:validation")
    assert calls == [("squad", "v2.0", "validation")]
    assert first.answers == (QAAnswer("Levi's Stadium", 28),) and first.title == "Super_Bowl_50"
    assert first.source == "tfds:squad/v2.0:validation: record 0 (id 'q0')"
    assert second.is_impossible and second.plausible_answers == (QAAnswer("Santa Clara", 46),)

    records[0]["answers"]["answer_start"] = [27]
    mock, _ = _mock_tfds(tfds, records)
    with mock, pytest.raises(QADataError, match=r"tfds:squad/v2.0:train: record 0 \(id 'q0'\): "
                                                 r"answers\[0\]: the text \"Levi's Stadium\" is not at"):
        read_qa_examples("tfds:squad/v2.0:train")


def test_tfds_squad_v1_real_features():
    """Without our records, the mock draws random ones from the builder's real features: the
    fields read are the ones `squad/v1.1` defines (its random answers are not in its contexts)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=2), pytest.raises(QADataError, match=(
            r"tfds:squad/v1.1:train: record 0 \(id '.*'\): answers\[0\]: the text .* is not at "
            r"answer_start")):
        read_qa_examples("tfds:squad/v1.1:train")
