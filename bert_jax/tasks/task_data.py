"""A fine-tuning task's data, from the files as users have them to the arrays the loop trains on:
the examples read (`input_pipeline.tasks`), the label list (from the training set, the format,
or a file) and the features, with the truncation report of each set.

One `TaskSet` per file: its examples (to score predictions against), its features (to map
predictions back to words or answer spans) and `arrays`, the model inputs and labels by name,
one row per example (a window, for QA).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from bert_jax.config.finetuning import TaskConfig
from input_pipeline import remote_files
from input_pipeline.tasks.features import text_features
from input_pipeline.tasks.fields import Fields
from input_pipeline.tasks.formats import FORMATS, task_format
from input_pipeline.tasks.labels import LabelList, labels_from_examples, load_labels
from input_pipeline.tasks.reading import read_examples
from input_pipeline.tasks.records import TaggedSentence, TextExample
from input_pipeline.tasks.squad_examples import QAExample, read_qa_examples
from input_pipeline.tasks.squad_features import QAFeatureConfig, convert_examples_to_features
from input_pipeline.tasks.tagging_features import tagging_features
from input_pipeline.tasks.truncation import TruncationReport
from input_pipeline.text.tfds_spec import is_tfds_source

Tokenizer = Any  # wordpiece.BertTokenizer or sentencepiece_tokenizer.SentencePieceTokenizer

# A file's extension -> its layout, when no --format is given.
_LAYOUT_OF_EXTENSION = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "json",
                        ".conll": "conll", ".txt": "conll"}


@dataclasses.dataclass(frozen=True)
class TaskSet:
    """One file of a task, read and turned into features."""
    source: str
    examples: list            # TextExample, TaggedSentence or QAExample
    features: Any             # TextFeatures, TaggingFeatures or QAFeatures
    arrays: dict[str, np.ndarray]
    report: str               # what truncation (or cutting into windows) did, for the log

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))


def data_format(task: TaskConfig, source: str) -> str | None:
    """The format `source` is read in: `task.format`, else by the task and the extension (None
    for QA, whose reader knows SQuAD's layout, and for TFDS sources)."""
    if task.type == "qa" or is_tfds_source(source):
        return None
    if task.format:
        return task.format
    if task.type == "tagging":
        return "conll"
    extension = os.path.splitext(source.removesuffix(".gz"))[1].lower()
    if extension not in _LAYOUT_OF_EXTENSION or _LAYOUT_OF_EXTENSION[extension] == "conll":
        raise ValueError(f"{source}: cannot tell the layout from the extension {extension!r}; "
                         f"name it with --format (tsv, csv, jsonl, json, or a known dataset such "
                         f"as glue/mrpc).")
    return _LAYOUT_OF_EXTENSION[extension]


def metric_task(task: TaskConfig) -> str:
    """The name under which `tasks.metrics` knows what `task` reports: a known dataset's
    ("glue/cola") or the task type's generic one."""
    if task.type == "qa":
        return "squad_v2" if task.version_2_with_negative else "squad"
    name = task.format if task.format in FORMATS else ""
    return name or task.type


def read_task_examples(task: TaskConfig, source: str) -> list:
    """The examples of `source` for `task` (all labelled: unlabelled ones are an error at
    feature time, naming their line)."""
    if task.type == "qa":
        return read_qa_examples(source, tfds_data_dir=task.tfds_data_dir or None)
    fields = None
    if task.text_fields:
        fields = Fields(*task.text_fields, label=task.label_field) if len(task.text_fields) == 2 \
            else Fields(task.text_fields[0], label=task.label_field)
    examples = read_examples(source, data_format(task, source), fields, task_type=task.type,
                             tfds_data_dir=task.tfds_data_dir or None)
    check_example_kind(examples, task, source)
    return examples


def task_labels(task: TaskConfig, train_examples: list) -> LabelList | None:
    """The label list of a classification or tagging task: `task.labels_file` (labels.json as
    `save_labels` writes it, or one label per line), else the format's known order (checked
    against the training set), else the training set's labels sorted. None for regression and
    QA."""
    if task.type in ("regression", "qa"):
        return None
    if task.labels_file:
        if task.labels_file.endswith(".json"):
            given = load_labels(task.labels_file)
        else:
            with remote_files.open_file(task.labels_file) as f:
                given = LabelList(tuple(line.strip() for line in f if line.strip()))
        return labels_from_examples(train_examples, given.names)
    known = None
    fmt = task.format or ""
    if fmt in FORMATS:
        known = task_format(fmt).label_names
    return labels_from_examples(train_examples, known)


def task_set(task: TaskConfig, source: str, examples: list, tokenizer: Tokenizer,
             labels: LabelList | None, *, training: bool) -> TaskSet:
    """The `examples` of `source` (`read_task_examples`) turned into features for training
    (`training`: QA labels every window with its answer) or evaluation."""
    if not examples:
        raise ValueError(f"{source}: no examples.")
    if task.type == "qa":
        features, qa_report = convert_examples_to_features(
            examples, tokenizer, QAFeatureConfig(task.max_seq_length, task.doc_stride, task.max_query_length),
            for_training=training)
        arrays = features.model_inputs(with_labels=training)
        return TaskSet(source, examples, features, arrays, qa_report.format())
    report = TruncationReport(task.max_seq_length)
    if task.type == "tagging":
        features = tagging_features(examples, tokenizer, task.max_seq_length, labels, report=report)
        arrays = {name: getattr(features, name) for name in
                  ("input_ids", "input_mask", "segment_ids", "label_ids", "label_weights")}
    else:
        features = text_features(examples, tokenizer, task.max_seq_length, labels, report=report,
                                 pair_truncation=task.pair_truncation)
        arrays = dataclasses.asdict(features)
    return TaskSet(source, examples, features, arrays, report.summary())


def check_example_kind(examples: list, task: TaskConfig, source: str) -> None:
    """Raises ValueError if `examples` are not what `task.type` trains on (a CoNLL file given to
    a classification task, say)."""
    expected = {"tagging": TaggedSentence, "qa": QAExample}.get(task.type, TextExample)
    if examples and not isinstance(examples[0], expected):
        raise ValueError(f"{source}: read as {type(examples[0]).__name__}s, but task.type="
                         f"{task.type!r} trains on {expected.__name__}s; check --task and --format.")
