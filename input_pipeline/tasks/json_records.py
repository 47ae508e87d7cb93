"""JSON task files: JSON Lines (one object per line, as Hugging Face `datasets` exports with
`to_json`) and JSON arrays of objects (KLUE's files).

Each object is one example; the fields say which keys hold the texts and the label, and may reach
into nested objects ("labels.real-label"). A label may be a name ("entailment") or an integer
index into the format's label names (Hugging Face exports `ClassLabel`s as integers; -1 is "no
label"). For tagging, the words and tags are lists of equal length, tags as names or indices.
Every example knows its line: the array's elements are decoded one by one to find where each
starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping

from input_pipeline import remote_files
from input_pipeline.tasks.fields import Fields, field_value, has_field, infer_fields, text_value
from input_pipeline.tasks.formats import TaskFormat
from input_pipeline.tasks.records import Location, TaggedSentence, TaskDataError, TextExample


def read_json_records(path: str | os.PathLike, task: TaskFormat,
                      fields: Fields | None = None) -> list[TextExample] | list[TaggedSentence]:
    """The examples of a JSON Lines ("jsonl") or JSON array ("json") file, in file order.

    Raises `TaskDataError` naming the file, line and field for invalid JSON, a record that is not
    an object, a missing field, an empty text or label, a bad score, or words and tags of
    different lengths.
    """
    examples = []
    for location, record in read_objects(path, task.layout):
        if fields is None:
            fields = task.fields or infer_fields(list(record), location, task.task_type == "tagging")
        if task.task_type == "tagging":
            examples.append(tagged_sentence(record, fields, task, location))
        else:
            examples.append(text_example(record, fields, task, location))
    return examples


def read_objects(path: str | os.PathLike, layout: str) -> Iterator[tuple[Location, Mapping]]:
    """(location, object) of each record of a JSON Lines ("jsonl") or JSON array ("json") file.

    Raises `TaskDataError` naming the file and line for text that is not UTF-8, invalid JSON or
    a record that is not an object.
    """
    path = os.fspath(path)
    with remote_files.open_file(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TaskDataError(Location(path, line), None, f"not UTF-8 ({e.reason}); convert the "
                                                        f"file to UTF-8.") from None
    records = _json_lines(path, text) if layout == "jsonl" else _json_array(path, text)
    for location, record in records:
        if not isinstance(record, Mapping):
            raise TaskDataError(location, None, f"expected a JSON object, found "
                                                f"{type(record).__name__}.")
        yield location, record


def text_example(record: Mapping, fields: Fields, task: TaskFormat, location: Location) -> TextExample:
    """One classification or regression example from a record (a JSON object, a TFDS example);
    a record without the label field is unlabelled."""
    text_a = text_value(field_value(record, fields.text_a, location), location, fields.text_a)
    text_b = (text_value(field_value(record, fields.text_b, location), location, fields.text_b)
              if fields.text_b else None)
    label = None
    if fields.label and has_field(record, fields.label):
        raw = field_value(record, fields.label, location)
        label = task.decode_label(raw, location, fields.label)
    return TextExample(text_a, text_b, label, location)


def tagged_sentence(record: Mapping, fields: Fields, task: TaskFormat, location: Location) -> TaggedSentence:
    """One tagged sentence from a record: the words under `fields.text_a`, the tags under
    `fields.label` (absent: unlabelled)."""
    words = field_value(record, fields.text_a, location)
    if not isinstance(words, (list, tuple)) or not words:
        raise TaskDataError(location, fields.text_a, f"expected a non-empty list of words, found "
                                                     f"{words!r:.80}.")
    for word in words:
        if not isinstance(word, str) or not word:
            raise TaskDataError(location, fields.text_a, f"every word must be a non-empty text; "
                                                         f"found {word!r}.")
    tags = None
    if fields.label and has_field(record, fields.label):
        raw_tags = field_value(record, fields.label, location)
        if not isinstance(raw_tags, (list, tuple)) or len(raw_tags) != len(words):
            length = len(raw_tags) if isinstance(raw_tags, (list, tuple)) else "not a list"
            raise TaskDataError(location, fields.label, f"{len(words)} words but {length} tags; "
                                                        f"every word needs exactly one tag.")
        tags = tuple(task.decode_tag(tag, location, fields.label) for tag in raw_tags)
    return TaggedSentence(tuple(words), tags, location)


def _json_lines(path: str, text: str) -> Iterator[tuple[Location, object]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        location = Location(path, number)
        try:
            yield location, json.loads(line)
        except json.JSONDecodeError as e:
            raise TaskDataError(location, None, f"not JSON ({e.msg} at column {e.colno}); each "
                                                f"line must be one JSON object.") from None


def _json_array(path: str, text: str) -> Iterator[tuple[Location, object]]:
    """The elements of a JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()
    line, counted = 1, 0  # The line of text[counted], counted forward as the array is read.

    def location_of(position: int) -> Location:
        nonlocal line, counted
        line += text.count("\n", counted, position)
        counted = position
        return Location(path, line)

    position = _skip_space(text, 0)
    if not text.startswith("[", position):
        raise TaskDataError(location_of(position), None, "expected a JSON array of objects (as "
                                                         "KLUE's files); for one object per "
                                                         "line use the jsonl format.")
    position = _skip_space(text, position + 1)
    if text.startswith("]", position):
        return
    while True:
        location = location_of(position)
        try:
            element, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as e:
            raise TaskDataError(Location(path, e.lineno), None, f"not JSON ({e.msg} at column "
                                                                f"{e.colno}).") from None
        yield location, element
        position = _skip_space(text, position)
        if text.startswith("]", position):
            return
        if not text.startswith(",", position):
            raise TaskDataError(location_of(position), None,
                                "expected ',' or ']' after an element of the array.")
        position = _skip_space(text, position + 1)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position
