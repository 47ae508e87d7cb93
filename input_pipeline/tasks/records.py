"""The examples every task reader yields, whatever the file or dataset: a text (or a pair) with
its label, or a sentence of words with their tags, each remembering where it came from so that
any later error (an unknown label, a text that tokenizes to nothing) can name the file and line.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Location:
    """Where an example came from: a file and line (1-based), or a dataset and example index
    (0-based, as TFDS and JSON arrays number them)."""
    source: str
    line: int | None = None
    index: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.source}:{self.line}"
        if self.index is not None:
            return f"{self.source} example {self.index}"
        return self.source


class TaskDataError(ValueError):
    """Bad task data: says where (file and line, or example), which field, what is wrong and what
    to do. Task data is small and must be right, so readers stop at the first problem."""

    def __init__(self, location: Location, field: str | None, message: str):
        self.location = location
        self.field = field
        where = f"{location}: field {field!r}" if field else str(location)
        super().__init__(f"{where}: {message}")


Label = str | float | None


@dataclasses.dataclass(frozen=True)
class TextExample:
    """One sentence (`text_b` None) or sentence pair for classification or regression.

    `label` is a class name (str), a score (float, regression), or None where the data has no
    label (a test file, or TFDS's -1).
    """
    text_a: str
    text_b: str | None
    label: Label
    location: Location


@dataclasses.dataclass(frozen=True)
class TaggedSentence:
    """One sentence for token tagging: its words and one tag per word (None: unlabelled)."""
    words: tuple[str, ...]
    tags: tuple[str, ...] | None
    location: Location


def drop_unlabeled(examples: list) -> tuple[list, int]:
    """The examples that have a label, and how many had none: SNLI's examples without a gold
    label (TFDS's -1, the files' "-"), which SNLI's authors and Sentence-BERT leave out of
    training and evaluation."""
    kept = [e for e in examples if _label_of(e) is not None]
    return kept, len(examples) - len(kept)


def _label_of(example: TextExample | TaggedSentence) -> Label | tuple[str, ...]:
    return example.tags if isinstance(example, TaggedSentence) else example.label
