"""One entry point for task data: `read_examples(source, format)` picks the reader for the
format's layout (or for a `tfds:` source) and returns the examples in order.
"""

from __future__ import annotations

import os

from input_pipeline.tasks.conll import read_conll, read_klue_ner
from input_pipeline.tasks.delimited import read_delimited
from input_pipeline.tasks.fields import Fields
from input_pipeline.tasks.formats import TaskFormat, task_format
from input_pipeline.tasks.json_records import read_json_records
from input_pipeline.tasks.records import TaggedSentence, TextExample
from input_pipeline.tasks.tfds_records import read_tfds
from input_pipeline.text.tfds_spec import is_tfds_source


def read_examples(source: str | os.PathLike, format: str | TaskFormat | None = None,
                  fields: Fields | None = None, *, task_type: str | None = None,
                  label_names: tuple[str, ...] | None = None, tfds_data_dir: str | None = None,
                  word_column: int = 0, tag_column: int | None = -1,
                  ) -> list[TextExample] | list[TaggedSentence]:
    """The examples of one file or TFDS split.

    Args:
      source: a file path, or "tfds:NAME[:SPLIT]" (the format then comes from NAME and
        `format` is not used).
      format: a known dataset ("glue/mnli", "klue/ner", "conll2003", ...: `formats.FORMATS`), a
        generic layout ("tsv", "csv", "jsonl", "json", "conll") or a `TaskFormat`.
      fields: which fields hold the texts and the label; default: the format's, or inferred from
        the columns for generic layouts (`fields.infer_fields`).
      task_type: "classification", "regression" or "tagging", for generic layouts.
      label_names: the label order, for generic data whose labels are indices.
      tfds_data_dir: where TFDS datasets are prepared.
      word_column, tag_column: the CoNLL columns of the word and the tag (None: no tags).

    Raises:
      TaskDataError: bad data, naming the file, line (or example) and field.
      ValueError: an unknown format.
    """
    if isinstance(source, str) and is_tfds_source(source):
        return read_tfds(source, fields, tfds_data_dir)
    if format is None:
        raise ValueError(f"{source}: say which format the file is in (e.g. 'glue/mnli', 'jsonl').")
    task = format if isinstance(format, TaskFormat) else task_format(format, task_type, label_names)
    path = os.fspath(source)
    if task.layout in ("glue-tsv", "tsv", "csv"):
        if task.task_type == "tagging":
            raise ValueError(f"{path}: tagging data in a {task.layout} file is read as 'conll'.")
        return read_delimited(path, task, fields)
    if task.layout in ("jsonl", "json"):
        return read_json_records(path, task, fields)
    if task.layout == "conll":
        return read_conll(path, task, word_column, tag_column)
    if task.layout == "klue-ner":
        return read_klue_ner(path, task)
    raise ValueError(f"{path}: format {task.name!r} is read from TFDS; pass 'tfds:{task.name}:SPLIT'.")
