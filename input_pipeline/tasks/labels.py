"""Label lists: the order that turns class names (and tags) into the ids a model predicts.

A known dataset's order is its format's (`formats`: GLUE's and KLUE's as their `ClassLabel`s,
CoNLL-2003's as TFDS and Hugging Face). Otherwise it is read from the training set as
`run_glue.py` and `run_ner.py` do: the distinct labels sorted, numerically when every label is
an integer ("2" before "10", which text order puts first).
Saved beside a fine-tuned model as JSON, so that predictions map back to the same names.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence

from input_pipeline import remote_files
from input_pipeline.tasks.records import Location, TaggedSentence, TaskDataError, TextExample

LABELS_FILE = "labels.json"


@dataclasses.dataclass(frozen=True)
class LabelList:
    """Class names in id order."""
    names: tuple[str, ...]

    def __post_init__(self):
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"label names must be distinct: {list(self.names)}.")
        object.__setattr__(self, "_ids", {name: i for i, name in enumerate(self.names)})

    def __len__(self) -> int:
        return len(self.names)

    def id(self, name: str, location: Location, field: str | None = "label") -> int:
        """The id of `name`; a `TaskDataError` naming where it was found and the known labels
        if it is not one of them (a label the model was not trained on)."""
        try:
            return self._ids[name]
        except KeyError:
            raise TaskDataError(location, field, f"unknown label {name!r}; the model knows "
                                                 f"{list(self.names)} (from its training set "
                                                 f"or its {LABELS_FILE}).") from None

    def name(self, label_id: int) -> str:
        return self.names[int(label_id)]


def _sorted_labels(names: Iterable[str]) -> tuple[str, ...]:
    names = set(names)
    if names and all(name.lstrip("-").isdigit() for name in names):
        return tuple(sorted(names, key=int))
    return tuple(sorted(names))


def labels_from_examples(examples: Sequence[TextExample] | Sequence[TaggedSentence],
                         known: Sequence[str] | None = None) -> LabelList:
    """The label list of a training set: `known` (a format's `label_names`) if given, after
    checking that every label of the examples is in it; otherwise the distinct labels, sorted.

    Raises `TaskDataError` for a label outside `known`, and ValueError for a set without any
    label (a test file, or regression data).
    """
    found: dict[str, Location] = {}
    for example in examples:
        if isinstance(example, TaggedSentence):
            for tag in example.tags or ():
                found.setdefault(tag, example.location)
        elif isinstance(example.label, str):
            found.setdefault(example.label, example.location)
    if known is not None:
        labels = LabelList(tuple(known))
        for name, location in found.items():
            labels.id(name, location)
        return labels
    if not found:
        raise ValueError("the training examples have no class labels to make a label list "
                         "from (unlabelled, or regression scores).")
    return LabelList(_sorted_labels(found))


def save_labels(labels: LabelList, path: str | os.PathLike) -> None:
    """Writes `labels` as JSON ({"labels": [...]}) at `path` (a model directory's
    `labels.json`), atomically: a temporary file renamed into place."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    with remote_files.open_file(tmp, "w") as f:
        json.dump({"labels": list(labels.names)}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    remote_files.replace(tmp, path)


def load_labels(path: str | os.PathLike) -> LabelList:
    """The label list `save_labels` wrote; ValueError naming the file if it is not one."""
    path = os.fspath(path)
    with remote_files.open_file(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: not JSON ({e.msg}).") from None
    names = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path}: expected {{\"labels\": [names...]}}, as save_labels writes.")
    return LabelList(tuple(names))
