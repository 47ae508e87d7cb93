"""The layouts task data comes in, and what each known dataset's fields and labels are.

A format names a layout (how the file is read) and, for a known dataset, its fields, its task
type and its label order. The label orders are those of the `ClassLabel` features of Hugging
Face's `glue` and `klue` datasets and of TFDS's builders (the same lists), so that label ids mean
what they mean to a model fine-tuned with `run_glue.py` or `run_ner.py`: MNLI is entailment,
neutral, contradiction; CoLA unacceptable, acceptable; and so on. GLUE's TSV files write some of
them as indices ("0", "1": CoLA, SST-2, MRPC, QQP, WNLI), which are read as indices into that
order, as TFDS's GLUE builder does.
"""

from __future__ import annotations

import dataclasses
import math

from input_pipeline.tasks.fields import Fields
from input_pipeline.tasks.records import Label, Location, TaskDataError

TASK_TYPES = ("classification", "regression", "tagging")
# glue-tsv: GLUE's TSV files as distributed (header, CoLA's header-less train and dev files);
# tsv / csv: a header line then one example per line; jsonl: one JSON object per line; json: a
# JSON array of objects (KLUE's files); conll: word and tag columns, sentences separated by blank
# lines; klue-ner: KLUE-NER's character-per-line TSV; tfds: a TFDS dataset ("tfds:NAME:SPLIT").
LAYOUTS = ("glue-tsv", "tsv", "csv", "jsonl", "json", "conll", "klue-ner", "tfds")


@dataclasses.dataclass(frozen=True)
class TaskFormat:
    """How to read one kind of task data.

    `fields` None means: inferred from the file's columns (`fields.infer_fields`).
    `label_names`: the known label order (None: read from the training set, `labels`).
    `header_less_columns`: names for the columns of files without a header (CoLA's train and dev).
    `unlabeled_values`: label values that mean "no label" (SNLI's "-" for no gold label).
    `tfds_fields`: the fields of the same data in TFDS, where they are named differently.
    """
    name: str
    layout: str
    task_type: str
    fields: Fields | None = None
    label_names: tuple[str, ...] | None = None
    header_less_columns: tuple[str, ...] | None = None
    unlabeled_values: tuple[str, ...] = ()
    tfds_fields: Fields | None = None

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"format {self.name!r}: layout {self.layout!r} is not one of {LAYOUTS}.")
        if self.task_type not in TASK_TYPES:
            raise ValueError(f"format {self.name!r}: task type {self.task_type!r} is not one of "
                             f"{TASK_TYPES}.")

    def decode_label(self, raw, location: Location, field: str) -> Label:
        """A label as read (a string, a JSON number) to a class name, a score, or None (no
        label). Raises `TaskDataError` naming `location` and `field` for an empty, non-numeric
        (regression) or out-of-range (index) label."""
        if self.task_type == "regression":
            return _score(raw, location, field)
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise TaskDataError(location, field, f"a class label is a name or an integer index, "
                                                 f"not {type(raw).__name__} {raw!r}.")
        if isinstance(raw, int):
            return self._indexed(raw, location, field)
        value = raw.strip()
        if not value:
            raise TaskDataError(location, field, "empty label; every example needs one (leave "
                                                 "the label column out for unlabelled data).")
        if value in self.unlabeled_values:
            return None
        if self.label_names and value not in self.label_names and _is_integer(value):
            return self._indexed(int(value), location, field)
        return value

    def decode_tag(self, raw, location: Location, field: str) -> str:
        """One tag of a tagged sentence: a name, or an index into `label_names`."""
        if isinstance(raw, int) and not isinstance(raw, bool) and self.label_names:
            if 0 <= raw < len(self.label_names):
                return self.label_names[raw]
        elif isinstance(raw, str) and raw.strip():
            return raw.strip()
        elif isinstance(raw, int) and not isinstance(raw, bool):
            return str(raw)
        known = f" (known: {list(self.label_names)})" if self.label_names else ""
        raise TaskDataError(location, field, f"bad tag {raw!r}{known}; a tag is a name or an "
                                             f"index into the tag list.")

    def _indexed(self, index: int, location: Location, field: str) -> str | None:
        # -1 is Hugging Face's and TFDS's "no label" (test splits, SNLI without a gold label).
        if index == -1:
            return None
        if self.label_names is None:
            # Without names, the index is the name; `labels` orders such names numerically.
            return str(index)
        if not 0 <= index < len(self.label_names):
            raise TaskDataError(location, field, f"label index {index} is outside the "
                                                 f"{len(self.label_names)} labels of "
                                                 f"{self.name}: {list(self.label_names)}.")
        return self.label_names[index]


def _is_integer(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _score(raw, location: Location, field: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise TaskDataError(location, field, f"a regression score is a number, not "
                                             f"{type(raw).__name__} {raw!r}.")
    try:
        value = float(raw)
    except ValueError:
        raise TaskDataError(location, field, f"{raw!r} is not a number; a regression score "
                                             f"must be one (e.g. 3.8).") from None
    if not math.isfinite(value):
        raise TaskDataError(location, field, f"{raw!r} is not a finite number.")
    return value


_NLI = ("entailment", "neutral", "contradiction")
_BINARY_ENTAILMENT = ("entailment", "not_entailment")
_PAIR = Fields("sentence1", "sentence2")
_PREMISE = Fields("premise", "hypothesis")


def _glue(name, fields, labels, tfds_fields, task_type="classification", **kwargs) -> TaskFormat:
    return TaskFormat(f"glue/{name}", "glue-tsv", task_type, fields, labels,
                      tfds_fields=tfds_fields, **kwargs)


# Columns as in the files GLUE distributes (and TFDS's and Hugging Face's GLUE loaders read).
FORMATS: dict[str, TaskFormat] = {f.name: f for f in (
    # CoLA's train.tsv and dev.tsv have no header: source, label, the author's original mark
    # (blank or "*"), sentence. Its test.tsv has one: index, sentence.
    _glue("cola", Fields("sentence"), ("unacceptable", "acceptable"), Fields("sentence"),
          header_less_columns=("source", "label", "original_label", "sentence")),
    _glue("sst2", Fields("sentence"), ("negative", "positive"), Fields("sentence")),
    _glue("mrpc", Fields("#1 String", "#2 String", "Quality"), ("not_equivalent", "equivalent"),
          _PAIR),
    _glue("qqp", Fields("question1", "question2", "is_duplicate"), ("not_duplicate", "duplicate"),
          Fields("question1", "question2")),
    _glue("stsb", Fields("sentence1", "sentence2", "score"), None, _PAIR, "regression"),
    # train.tsv holds label1 and gold_label; the dev files label1 to label5 and gold_label.
    _glue("mnli", Fields("sentence1", "sentence2", "gold_label"), _NLI, _PREMISE),
    _glue("mnli_matched", Fields("sentence1", "sentence2", "gold_label"), _NLI, _PREMISE),
    _glue("mnli_mismatched", Fields("sentence1", "sentence2", "gold_label"), _NLI, _PREMISE),
    _glue("qnli", Fields("question", "sentence"), _BINARY_ENTAILMENT,
          Fields("question", "sentence")),
    _glue("rte", _PAIR, _BINARY_ENTAILMENT, _PAIR),
    _glue("wnli", _PAIR, ("not_entailment", "entailment"), _PAIR),
    # The diagnostic set: MNLI's labels, a test file only.
    _glue("ax", Fields("sentence1", "sentence2", None), _NLI, _PREMISE),
    # The Stanford and Multi-Genre NLI corpora's own files (snli_1.0_*.txt,
    # multinli_1.0_*.txt): tab-separated with a header; "-" marks a pair without a gold label.
    TaskFormat("snli", "tsv", "classification", Fields("sentence1", "sentence2", "gold_label"),
               _NLI, unlabeled_values=("-",), tfds_fields=_PREMISE),
    TaskFormat("multi_nli", "tsv", "classification",
               Fields("sentence1", "sentence2", "gold_label"), _NLI, unlabeled_values=("-",),
               tfds_fields=_PREMISE),
    # KorNLI (kakaobrain/KorNLUDatasets: snli_1.0_train.ko.tsv, multinli.train.ko.tsv,
    # xnli.{dev,test}.ko.tsv), SNLI, MultiNLI and XNLI in Korean: sentence1, sentence2, gold_label.
    TaskFormat("kornli", "tsv", "classification", Fields("sentence1", "sentence2", "gold_label"),
               _NLI, unlabeled_values=("-",)),
    # KorSTS (sts-{train,dev,test}.tsv): genre, filename, year, id, score (0-5), sentence1, sentence2.
    TaskFormat("korsts", "tsv", "regression", Fields("sentence1", "sentence2", "score")),
    # KLUE's JSON files (arrays of objects): ynat-v1.1_*.json, klue-nli-v1.1_*.json,
    # klue-sts-v1.1_*.json. Label orders as Hugging Face's `klue` dataset.
    TaskFormat("klue/ynat", "json", "classification", Fields("title"),
               ("IT과학", "경제", "사회", "생활문화", "세계", "스포츠", "정치")),
    TaskFormat("klue/nli", "json", "classification", Fields("premise", "hypothesis", "gold_label"),
               _NLI),
    # "labels" holds "label" (rounded to one decimal), "real-label" (the annotators' mean) and
    # "binary-label" (>= 3.0).
    TaskFormat("klue/sts", "json", "regression", Fields("sentence1", "sentence2", "labels.real-label")),
    # KLUE-NER's klue-ner-v1.1_*.tsv: one character per line; see `conll.read_klue_ner`.
    TaskFormat("klue/ner", "klue-ner", "tagging", Fields("tokens", label="ner_tags"),
               ("B-DT", "I-DT", "B-LC", "I-LC", "B-OG", "I-OG", "B-PS", "I-PS", "B-QT", "I-QT",
                "B-TI", "I-TI", "O")),
    TaskFormat("conll2003", "conll", "tagging", Fields("tokens", label="ner_tags"),
               ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"),
               tfds_fields=Fields("tokens", label="ner")),
)}

# Generic layouts, for any other data: the fields are given or inferred, the labels read from the
# training set.
GENERIC_FORMATS = ("tsv", "csv", "jsonl", "json", "conll")


def task_format(name: str, task_type: str | None = None,
                label_names: tuple[str, ...] | None = None) -> TaskFormat:
    """The format called `name`: a known dataset (`FORMATS`: "glue/mnli", "klue/ner", ...) or a
    generic layout (`GENERIC_FORMATS`), the latter with `task_type` (default: classification, or
    tagging for "conll") and optional `label_names` (for data whose labels are indices)."""
    if name in FORMATS:
        known = FORMATS[name]
        if task_type not in (None, known.task_type):
            raise ValueError(f"format {name!r} is a {known.task_type} task, not {task_type}.")
        if label_names is not None:
            known = dataclasses.replace(known, label_names=tuple(label_names))
        return known
    if name in GENERIC_FORMATS:
        default = "tagging" if name == "conll" else "classification"
        return TaskFormat(name, name, task_type or default,
                          label_names=tuple(label_names) if label_names is not None else None)
    raise ValueError(f"unknown task data format {name!r}; use one of {sorted(FORMATS)} for a "
                     f"known dataset, or a layout {list(GENERIC_FORMATS)} with your fields.")
