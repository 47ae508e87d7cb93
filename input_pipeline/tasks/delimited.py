"""Tab- and comma-separated task files: GLUE's TSVs as distributed, and any TSV or CSV with a
header line.

GLUE's files are read as TFDS's and Hugging Face's GLUE loaders read them: tab-separated, no
quoting (quotes are text: MNLI and QQP are full of them), a header line naming the columns, except
CoLA's train.tsv and dev.tsv, which have none (`TaskFormat.header_less_columns`). A test file has
no label column, and its examples have no label. A CSV is read with the `csv` module's quoting,
so a quoted field may span lines; an example's line is the one it starts on. A UTF-8 byte order
mark (MRPC's source files have one) is dropped.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator

from input_pipeline import remote_files
from input_pipeline.tasks.fields import Fields, infer_fields, text_value
from input_pipeline.tasks.formats import TaskFormat
from input_pipeline.tasks.records import Location, TaskDataError, TextExample


def read_delimited(path: str | os.PathLike, task: TaskFormat,
                   fields: Fields | None = None) -> list[TextExample]:
    """The examples of a TSV (GLUE's, "tsv") or CSV ("csv") file, in file order.

    Raises `TaskDataError` naming the file, line and field for a missing column, a line with more
    or fewer fields than the header, an empty text or label, or a bad score.
    """
    path = os.fspath(path)
    fields = fields or task.fields
    rows = _rows(path, delimiter="," if task.layout == "csv" else "\t",
                 quoting=task.layout == "csv")
    first = next(rows, None)
    if first is None:
        raise TaskDataError(Location(path, 1), None, "empty file; expected a header line and "
                                                     "one example per line.")
    line, header = first
    has_header = task.header_less_columns is None or (fields is not None and fields.text_a in header)
    if has_header:
        columns, body = header, rows
    else:
        columns, body = list(task.header_less_columns), _chain(first, rows)
    if fields is None:
        fields = infer_fields(columns, Location(path, line))
    for name in (fields.text_a, fields.text_b):
        if name is not None and name not in columns:
            raise TaskDataError(Location(path, line), name, f"no such column; the header has "
                                                            f"{columns}.")
    # A file without the label column (GLUE's test files) is unlabelled.
    label_column = fields.label if fields.label in columns else None
    index = {name: i for i, name in enumerate(columns)}
    examples = []
    for line, values in body:
        location = Location(path, line)
        if len(values) != len(columns):
            raise TaskDataError(location, None, f"{len(values)} fields where the header has "
                                                f"{len(columns)} ({columns}); check for a stray "
                                                f"tab or a line break inside a text.")
        text_b = (text_value(values[index[fields.text_b]], location, fields.text_b)
                  if fields.text_b else None)
        label = (task.decode_label(values[index[label_column]], location, label_column)
                 if label_column else None)
        examples.append(TextExample(text_value(values[index[fields.text_a]], location, fields.text_a),
                                    text_b, label, location))
    return examples


def read_table(path: str | os.PathLike, layout: str) -> Iterator[tuple[Location, dict[str, str]]]:
    """(location, {column: value}) of each line of a TSV ("tsv", GLUE's quoting-free reading)
    or CSV ("csv") file with a header line, for readers that name their own columns.

    Raises `TaskDataError` naming the file and line for an empty file or a line with more or
    fewer fields than the header.
    """
    path = os.fspath(path)
    rows = _rows(path, delimiter="," if layout == "csv" else "\t", quoting=layout == "csv")
    first = next(rows, None)
    if first is None:
        raise TaskDataError(Location(path, 1), None, "empty file; expected a header line and "
                                                     "one example per line.")
    _, columns = first
    for line, values in rows:
        if len(values) != len(columns):
            raise TaskDataError(Location(path, line), None, f"{len(values)} fields where the header "
                                                            f"has {len(columns)} ({columns}); check "
                                                            f"for a stray tab or a line break "
                                                            f"inside a text.")
        yield Location(path, line), dict(zip(columns, values))


def _rows(path: str, delimiter: str, quoting: bool) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of each non-blank row."""
    with remote_files.open_file(path, "rb") as f:
        reader = csv.reader(_decoded_lines(path, f), delimiter=delimiter,
                            quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
        end = 0
        try:
            for values in reader:
                start, end = end + 1, reader.line_num
                if any(v.strip() for v in values):
                    yield start, values
        except csv.Error as e:
            raise TaskDataError(Location(path, end + 1), None, f"not valid CSV: {e}.") from None


def _decoded_lines(path: str, f) -> Iterator[str]:
    """The lines of a binary file as text, each decoded on its own so that a line that is not
    UTF-8 is named exactly; a byte order mark at the start is dropped."""
    for number, raw in enumerate(f, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise TaskDataError(Location(path, number), None, f"not UTF-8 ({e.reason} at byte "
                                                              f"{e.start}); convert the file to "
                                                              f"UTF-8.") from None


def _chain(first, rest):
    yield first
    yield from rest
