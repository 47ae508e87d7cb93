"""Extractive question answering data: SQuAD v1.1 and v2.0 JSON, the same layout as KorQuAD 1.0
and KLUE-MRC, and TFDS's `squad` (`tfds:squad/v1.1:train`, `tfds:squad/v2.0:validation`).

The JSON layout (SQuAD's, https://rajpurkar.github.io/SQuAD-explorer/):

    {"version": "v2.0", "data": [{"title": "...", "paragraphs": [{"context": "...", "qas": [
        {"id": "...", "question": "...", "answers": [{"text": "...", "answer_start": 12}],
         "is_impossible": false, "plausible_answers": [...]}]}]}]}

What is read, per question:

* `id` (KLUE-MRC names it `guid`), `question`, `answers` (a list, empty for a question without a
  known answer), each answer's `text` and `answer_start` (the index of its first character in the
  paragraph's `context`): required. The answer's text must be at `answer_start`, exactly.
* `is_impossible` (SQuAD 2.0, KLUE-MRC): optional, false when absent; an impossible question has
  no `answers`. `plausible_answers` (SQuAD 2.0 and KLUE-MRC's unanswerable questions) are kept as
  they are, unchecked: nothing trains on them.
* `question_type` (KLUE-MRC: 1 paraphrase, 2 multi-sentence reasoning, 3 unanswerable): kept.
* The article's `title` (optional); KLUE-MRC's `news_category` and `source` are ignored.

KorQuAD 1.0 is SQuAD v1.1's layout with Korean text. Everything wrong stops the reading with an
error naming the file, the article, paragraph and question (and the question's id) and the field.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from input_pipeline import remote_files
from input_pipeline.text.tfds_spec import is_tfds_source, load_prepared, parse_tfds_spec


class QADataError(ValueError):
    """Bad question answering data; the message names the file, the question and the field."""


@dataclasses.dataclass(frozen=True)
class QAAnswer:
    text: str
    start: int  # Index in the context of the answer's first character.

    @property
    def end(self) -> int:
        """Index in the context just past the answer's last character."""
        return self.start + len(self.text)


@dataclasses.dataclass(frozen=True)
class QAExample:
    """One question about one paragraph."""
    id: str
    question: str
    context: str
    answers: tuple[QAAnswer, ...]  # The gold answers; empty for an unanswerable question.
    is_impossible: bool = False
    title: str = ""
    # Where it was read: "dev-v2.0.json: article 3, paragraph 1, question 0 (id '5733be...')".
    source: str = ""
    plausible_answers: tuple[QAAnswer, ...] = ()
    question_type: int | None = None  # KLUE-MRC's.


def read_qa_examples(source: str | os.PathLike, *, tfds_data_dir: str | None = None) -> list[QAExample]:
    """The questions of a SQuAD-layout JSON file (SQuAD v1.1/v2.0, KorQuAD 1.0, KLUE-MRC; local or
    `gs://`) or of TFDS's `squad` (`tfds:squad/v1.1:train`, `tfds:squad/v2.0:validation`).

    Raises:
      QADataError: naming the file, question and field, for anything missing or inconsistent.
      FileNotFoundError: for a missing file, or a TFDS dataset not prepared in `tfds_data_dir`.
    """
    source = os.fspath(source)
    if is_tfds_source(source):
        return read_tfds_squad(source, data_dir=tfds_data_dir)
    return read_squad_json(source)


def read_squad_json(path: str | os.PathLike) -> list[QAExample]:
    """The questions of one SQuAD-layout JSON file, in file order (see the module docstring)."""
    path = os.fspath(path)
    if not remote_files.isfile(path):
        raise FileNotFoundError(f"question answering data not found: {path}")
    with remote_files.open_file(path) as f:
        text = f.read()
    try:
        document = json.loads(text.removeprefix("\ufeff"))  # A byte order mark is not an error.
    except json.JSONDecodeError as e:
        raise QADataError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}); a SQuAD file "
                          f"is one JSON object with a \"data\" list.") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise QADataError(f"{path}: the top level must be an object with a \"data\" list of "
                          f"articles (SQuAD's layout); found {_describe(document)}.")
    return _checked(_json_examples(path, document["data"]))


def _json_examples(path: str, articles: list) -> Iterator[QAExample]:
    for a, article in enumerate(articles):
        where = f"{path}: article {a}"
        article = _require(article, dict, where, "the article")
        title = _optional(article, "title", str, where, "")
        for p, paragraph in enumerate(_field(article, "paragraphs", list, where)):
            where = f"{path}: article {a}, paragraph {p}"
            paragraph = _require(paragraph, dict, where, "the paragraph")
            context = _field(paragraph, "context", str, where)
            for q, qa in enumerate(_field(paragraph, "qas", list, where)):
                where = f"{path}: article {a}, paragraph {p}, question {q}"
                qa = _require(qa, dict, where, "the question")
                id_key = "id" if "id" in qa or "guid" not in qa else "guid"
                qas_id = _field(qa, id_key, str, where)
                where = f"{where} (id {qas_id!r})"
                yield _example(
                    where, qas_id=qas_id, question=_field(qa, "question", str, where),
                    context=context, title=title,
                    answers=_json_answers(_field(qa, "answers", list, where), "answers", where),
                    is_impossible=_optional(qa, "is_impossible", bool, where, False),
                    plausible=_json_answers(_optional(qa, "plausible_answers", list, where, []),
                                            "plausible_answers", where),
                    question_type=_optional(qa, "question_type", int, where, None))


def _json_answers(answers: list, name: str, where: str) -> list[tuple[str, int]]:
    result = []
    for n, answer in enumerate(answers):
        answer = _require(answer, dict, where, f"{name}[{n}]")
        result.append((_field(answer, "text", str, where, f"{name}[{n}]."),
                       _field(answer, "answer_start", int, where, f"{name}[{n}].")))
    return result


def read_tfds_squad(spec: str, *, data_dir: str | None = None) -> list[QAExample]:
    """The questions of a TFDS `squad` split: `tfds:squad/v1.1:train`, `tfds:squad/v2.0:validation`
    (`squad/v2.0` adds `is_impossible` and `plausible_answers`), or any TFDS dataset with the same
    features. The dataset must be prepared already (`tfds build squad/v2.0`); nothing is downloaded.
    """
    return _checked(_tfds_examples(spec, load_prepared(parse_tfds_spec(spec), spec, data_dir)))


def _tfds_examples(spec: str, records) -> Iterator[QAExample]:
    for index, record in enumerate(records):
        where = f"{spec}: record {index}"
        missing = [k for k in ("id", "question", "context", "answers") if k not in record]
        if missing:
            raise QADataError(f"{where}: no field {missing[0]!r} (found {sorted(record)}); a "
                              f"question answering dataset needs id, question, context and answers.")
        qas_id = _text(record["id"])
        where = f"{where} (id {qas_id!r})"
        yield _example(
            where, qas_id=qas_id, question=_text(record["question"]),
            context=_text(record["context"]), title=_text(record.get("title", b"")),
            answers=_tfds_answers(record["answers"]),
            is_impossible=bool(record.get("is_impossible", False)),
            plausible=_tfds_answers(record.get("plausible_answers", {"text": [], "answer_start": []})),
            question_type=int(record["question_type"]) if "question_type" in record else None)


def _tfds_answers(answers: Mapping[str, Any]) -> list[tuple[str, int]]:
    return [(_text(text), int(start)) for text, start in zip(answers["text"], answers["answer_start"])]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _example(where: str, *, qas_id: str, question: str, context: str, title: str,
             answers: Sequence[tuple[str, int]], is_impossible: bool,
             plausible: Sequence[tuple[str, int]], question_type: int | None) -> QAExample:
    """A checked `QAExample`: each answer's text is at its `answer_start`, and an impossible
    question has none."""
    if is_impossible and answers:
        raise QADataError(f"{where}: is_impossible is true but the question has {len(answers)} "
                          f"answers; an unanswerable question has \"answers\": [] (put the "
                          f"spans under \"plausible_answers\"), or set is_impossible to false.")
    for n, (text, start) in enumerate(answers):
        if not text.strip():
            raise QADataError(f"{where}: answers[{n}].text is empty; an answer is a span of the "
                              f"context. Remove it, or mark the question is_impossible.")
        found = context[start:start + len(text)] if 0 <= start <= len(context) else None
        if found != text:
            at = (f"the context holds {found!r} there" if found is not None else
                  f"the context has {len(context)} characters")
            elsewhere = context.find(text)
            hint = (f"; the text occurs at {elsewhere}: fix answer_start" if elsewhere >= 0
                    else "; the text does not occur in the context at all")
            raise QADataError(f"{where}: answers[{n}]: the text {text!r} is not at answer_start "
                              f"{start} ({at}){hint}.")
    return QAExample(id=qas_id, question=question, context=context,
                     answers=tuple(QAAnswer(t, s) for t, s in answers), is_impossible=is_impossible,
                     title=title, source=where,
                     plausible_answers=tuple(QAAnswer(t, s) for t, s in plausible),
                     question_type=question_type)


def _checked(examples: Iterator[QAExample]) -> list[QAExample]:
    """All of `examples`, refusing two questions with one id (predictions are keyed by id)."""
    result: list[QAExample] = []
    seen: dict[str, str] = {}
    for example in examples:
        if example.id in seen:
            raise QADataError(f"{example.source}: the id {example.id!r} was used before, by "
                              f"{seen[example.id]}; every question needs its own id.")
        seen[example.id] = example.source
        result.append(example)
    return result


# --- JSON fields, checked. ------------------------------------------------------------------------

_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "true or false"}


def _describe(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _is(value: Any, kind: type) -> bool:
    # JSON's true is a Python int too; an integer field must not take it.
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _require(value: Any, kind: type, where: str, what: str) -> Any:
    if not _is(value, kind):
        raise QADataError(f"{where}: {what} must be {_TYPE_NAMES[kind]}, not {_describe(value)}.")
    return value


def _field(record: dict, key: str, kind: type, where: str, prefix: str = "") -> Any:
    """`record[key]`, of type `kind`; `prefix` names the record in messages ("answers[0].")."""
    name = f"{prefix}{key}"
    if key not in record:
        raise QADataError(f"{where}: missing field {name!r} (found {sorted(record)}); see SQuAD's "
                          f"layout in input_pipeline/tasks/squad_examples.py.")
    return _require(record[key], kind, where, f"field {name!r}")


def _optional(record: dict, key: str, kind: type, where: str, default: Any) -> Any:
    if key not in record or record[key] is None:
        return default
    return _require(record[key], kind, where, f"field {key!r}")
