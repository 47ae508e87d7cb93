"""Sentence-BERT's data, read from the files and datasets it comes in, one example per pair or tuple:

  nli    (premise, hypothesis, label), the label one of entailment, neutral, contradiction, ids
         0, 1, 2 in that order (MNLI's `ClassLabel` order): SNLI, MultiNLI, KorNLI, KLUE-NLI,
         GLUE's MNLI, or any file with those fields. Pairs without a gold label (SNLI's "-",
         TFDS's -1) are left out and counted (`SentenceData.unlabeled`), as SBERT's training
         script leaves them out.
  sts    (sentence1, sentence2, score from 0 to 5), the score divided by 5 into [0, 1], the target
         of `CosineSimilarityLoss` (as sentence-transformers' STS-B example scales it): STS-B
         (GLUE's TSV, TFDS's `glue/stsb`), KorSTS, KLUE-STS, or any file with those fields.
  pairs  (anchor, positive[, negative ...]) for `MultipleNegativesRankingLoss`: any TSV, CSV, JSON
         Lines or JSON array file with those fields.

Fields are mappable by role (`parse_fields("premise=sentence1,label=gold_label")`; for pairs,
`negative=` may repeat for several hard negatives). Every example keeps its file and line, and a
bad row stops the reading with a `TaskDataError` naming them and the field: an NLI label outside
the three, a score outside 0-5 or missing, an empty text, a missing field. Nothing is dropped
silently.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from input_pipeline.tasks.delimited import read_table
from input_pipeline.tasks.fields import Fields, field_value, has_field, text_value
from input_pipeline.tasks.formats import FORMATS, GENERIC_FORMATS, TaskFormat, task_format
from input_pipeline.tasks.json_records import read_objects
from input_pipeline.tasks.reading import read_examples
from input_pipeline.tasks.records import Location, TaskDataError
from input_pipeline.text.tfds_spec import is_tfds_source

OBJECTIVES = ("nli", "sts", "pairs")
NLI_LABELS = ("entailment", "neutral", "contradiction")
MAX_STS_SCORE = 5.0

# Each objective's field roles, with the field names a generic file is read with by default.
ROLES = {
    "nli": {"premise": "premise", "hypothesis": "hypothesis", "label": "label"},
    "sts": {"sentence1": "sentence1", "sentence2": "sentence2", "score": "score"},
    "pairs": {"anchor": "anchor", "positive": "positive", "negative": "negative"},
}
_EXTENSIONS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "json"}


@dataclasses.dataclass(frozen=True)
class SentenceExample:
    """One training or evaluation example: its texts in side order ((premise, hypothesis),
    (sentence1, sentence2) or (anchor, positive, *negatives)) and its label: an NLI label id, an
    STS score in [0, 1], or None for pairs."""
    texts: tuple[str, ...]
    label: int | float | None
    location: Location


@dataclasses.dataclass(frozen=True)
class SentenceData:
    """The examples of one file or split, every one with `num_sides` texts, and how many were
    left out for want of a gold label (NLI only)."""
    objective: str
    examples: list[SentenceExample]
    num_sides: int
    unlabeled: int = 0


def parse_fields(spec: str | Mapping[str, str] | None, objective: str) -> dict[str, str | list[str]]:
    """Role -> field name(s) from "role=field,role=field" (or a mapping), checked against the
    objective's roles (`ROLES`); for pairs "negative" collects every `negative=` given."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r} must be one of {OBJECTIVES}.")
    items = (list(spec.items()) if isinstance(spec, Mapping)
             else [item.partition("=")[::2] for item in (spec or "").split(",") if item.strip()])
    fields: dict[str, str | list[str]] = {}
    for role, name in items:
        role, name = role.strip(), name.strip()
        if role not in ROLES[objective] or not name:
            raise ValueError(f"fields {spec!r}: {role!r}={name!r} is not ROLE=FIELD with a role of "
                             f"{objective} ({', '.join(ROLES[objective])}).")
        if role == "negative":
            fields.setdefault(role, []).append(name)
        else:
            fields[role] = name
    return fields


def source_format(source: str | os.PathLike, format: str | None) -> str | None:
    """The format to read `source` in: `format` if given; for a file without one, the generic
    layout its extension names (.tsv, .csv, .jsonl, .json); None for a TFDS source."""
    source = os.fspath(source)
    if format or is_tfds_source(source):
        return format or None
    extension = os.path.splitext(source.removesuffix(".gz"))[1].lower()
    if extension not in _EXTENSIONS:
        raise ValueError(f"{source}: say which format the file is in (--format: one of "
                         f"{sorted(GENERIC_FORMATS[:4])} with your --fields, or a known dataset such "
                         f"as snli, multi_nli, kornli, glue/stsb, korsts, klue/sts).")
    return _EXTENSIONS[extension]


def read_sentence_data(objective: str, source: str | os.PathLike, format: str | None = None,
                       fields: str | Mapping[str, str] | None = None,
                       tfds_data_dir: str | None = None) -> SentenceData:
    """The examples of `source` (a file, or "tfds:NAME:SPLIT") for `objective` ("nli", "sts",
    "pairs"); `format` a known dataset ("snli", "multi_nli", "glue/mnli", "kornli", "klue/nli",
    "glue/stsb", "korsts", "klue/sts") or a layout ("tsv", "csv", "jsonl", "json"; default: by
    the file's extension), `fields` a role mapping (`parse_fields`).

    Raises:
      TaskDataError: bad data, naming the file and line (or TFDS example) and the field.
      ValueError: an unknown format, or one that does not hold this objective's data.
      FileNotFoundError: a TFDS dataset that is not prepared.
    """
    mapping = parse_fields(fields, objective)
    source = os.fspath(source)
    format = source_format(source, format)
    if objective == "pairs":
        return _read_pairs(source, format, mapping)
    task, text_fields = _pair_format(objective, source, format, mapping)
    examples, unlabeled = [], 0
    for example in read_examples(source, task, text_fields, tfds_data_dir=tfds_data_dir):
        if example.text_b is None:
            raise TaskDataError(example.location, text_fields.text_b if text_fields else None,
                                "a pair needs a second text.")
        label_field = text_fields.label if text_fields else "label"
        if objective == "nli":
            if example.label is None:
                unlabeled += 1
                continue
            if example.label not in NLI_LABELS:
                raise TaskDataError(example.location, label_field,
                                    f"NLI label {example.label!r} is not one of {list(NLI_LABELS)} "
                                    f"(or their indices 0, 1, 2).")
            label = NLI_LABELS.index(example.label)
        else:
            if example.label is None:
                raise TaskDataError(example.location, label_field,
                                    "no similarity score; STS training and evaluation need one for "
                                    "every pair (a test split without scores cannot be used).")
            if not 0.0 <= example.label <= MAX_STS_SCORE:
                raise TaskDataError(example.location, label_field,
                                    f"score {example.label} is outside 0 to {MAX_STS_SCORE:g}, the "
                                    f"STS scale (scores are divided by {MAX_STS_SCORE:g}).")
            label = example.label / MAX_STS_SCORE
        examples.append(SentenceExample((example.text_a, example.text_b), label, example.location))
    if not examples:
        raise TaskDataError(Location(source), None, f"no labelled {objective} example "
                                                    f"({unlabeled} without a gold label).")
    return SentenceData(objective, examples, 2, unlabeled)


def _pair_format(objective: str, source: str, format: str | None,
                 mapping: dict) -> tuple[TaskFormat | None, Fields | None]:
    """The task format and fields to read an NLI or STS source with: a known dataset's (checked
    to hold this objective's data), or a generic layout with the objective's role names; the
    roles given in `mapping` replace the defaults."""
    task_type = "classification" if objective == "nli" else "regression"
    roles = ROLES[objective]
    if format is None:  # TFDS: the format is the dataset's own.
        name = source.removeprefix("tfds:").split(":")[0]
        known = FORMATS.get(name)
        defaults = known.tfds_fields if known and known.tfds_fields else None
        task = None
    elif format in FORMATS:
        task = task_format(format)
        defaults = task.fields
    else:
        task = task_format(format, task_type, NLI_LABELS if objective == "nli" else None)
        defaults = Fields(*roles.values())
    if task is not None and task.task_type != task_type or (
            objective == "nli" and task is not None and task.label_names not in (None, NLI_LABELS)):
        raise ValueError(f"{source}: format {format!r} is not {objective.upper()} data "
                         f"({'three NLI labels' if objective == 'nli' else 'a similarity score'}).")
    if defaults is None:
        return task, None
    names = list(roles)
    text_a, text_b, label = (mapping.get(names[0], defaults.text_a),
                             mapping.get(names[1], defaults.text_b), mapping.get(names[2], defaults.label))
    return task, Fields(text_a, text_b, label)


def _read_pairs(source: str, format: str | None, mapping: dict) -> SentenceData:
    """(anchor, positive, *negatives) tuples of a TSV, CSV, JSON Lines or JSON file; without a
    `negative` mapping, a "negative" field is a hard negative where the first record has one."""
    if format not in ("tsv", "csv", "jsonl", "json"):
        raise ValueError(f"{source}: pairs are read from tsv, csv, jsonl or json files with "
                         f"anchor and positive fields (--fields to map them), not {format or 'TFDS'!r}.")
    records = read_table(source, format) if format in ("tsv", "csv") else read_objects(source, format)
    names: list[str] | None = None
    examples = []
    for location, record in records:
        if names is None:
            negatives = mapping.get("negative")
            if negatives is None:
                negatives = ["negative"] if has_field(record, "negative") else []
            names = [mapping.get("anchor", "anchor"), mapping.get("positive", "positive"), *negatives]
        texts = tuple(text_value(field_value(record, name, location), location, name) for name in names)
        examples.append(SentenceExample(texts, None, location))
    if not examples:
        raise TaskDataError(Location(source), None, "no example: expected a header line (TSV, CSV) "
                                                    "or records, then one pair per line.")
    return SentenceData("pairs", examples, len(names))
