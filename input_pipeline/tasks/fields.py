"""Which field of a record holds the text, the second text and the label: a small mapping with
defaults per known layout (`formats`), given explicitly for any other file.

For token tagging, `text_a` names the list of words and `label` the list of tags (Hugging Face's
`tokens` and `ner_tags`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from input_pipeline.tasks.records import Location, TaskDataError


@dataclasses.dataclass(frozen=True)
class Fields:
    """Field (column, key) names: `text_a` always; `text_b` for sentence pairs; `label` None for
    data without labels. A name with dots ("labels.real-label") reaches into nested JSON objects
    when no key has the whole name."""
    text_a: str
    text_b: str | None = None
    label: str | None = "label"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name in (self.text_a, self.text_b, self.label) if name)


_MISSING = object()


def lookup(record: Mapping, name: str):
    """The value of field `name` in `record` (dotted names reach into nested objects), or
    `_MISSING`."""
    if name in record:
        return record[name]
    value = record
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def has_field(record: Mapping, name: str) -> bool:
    return lookup(record, name) is not _MISSING


def field_value(record: Mapping, name: str, location: Location):
    """`lookup`, raising a `TaskDataError` that lists the fields there are when `name` is not."""
    value = lookup(record, name)
    if value is _MISSING:
        raise TaskDataError(location, name, f"missing (the record has {sorted(record)}); name "
                                            f"the right field in Fields(...) (--text-a-field, "
                                            f"--text-b-field, --label-field).")
    return value


# The single-text column names `infer_fields` recognizes, in the order it tries them.
_SINGLE_TEXT_NAMES = ("sentence", "text")


def infer_fields(columns: Sequence[str], location: Location, tagging: bool = False) -> Fields:
    """The fields of a file given without a mapping, from its columns (a header, the keys of the
    first JSON record).

    Classification, as `run_glue.py` for files: "sentence1" and "sentence2" if both are there;
    otherwise one text column, "sentence" or "text". Unlike `run_glue.py`, which then takes the
    first two columns other than "label", anything else is an error asking for the fields: that
    rule pairs a sentence with an "idx" column in Hugging Face's own GLUE exports. Tagging, as
    `run_ner.py`: "tokens" and "ner_tags".
    """
    found = list(columns)
    if tagging:
        if "tokens" in found and "ner_tags" in found:
            return Fields("tokens", label="ner_tags")
        raise TaskDataError(location, None, f"cannot tell the words and tags apart among the "
                                            f"fields {found}; name them: Fields(text_a=WORDS, "
                                            f"label=TAGS).")
    label = "label" if "label" in found else None
    if "sentence1" in found and "sentence2" in found:
        return Fields("sentence1", "sentence2", label)
    for name in _SINGLE_TEXT_NAMES:
        if name in found:
            return Fields(name, None, label)
    raise TaskDataError(location, None, f"cannot tell which of the fields {found} hold the text; "
                                        f"name them: Fields(text_a=..., text_b=..., label=...).")


def text_value(raw, location: Location, field: str) -> str:
    """A field's value as a text: a non-empty string (surrounding white space is kept, as the
    tokenizer ignores it)."""
    if not isinstance(raw, str):
        raise TaskDataError(location, field, f"expected a text, found {type(raw).__name__} "
                                             f"{raw!r}.")
    if not raw.strip():
        raise TaskDataError(location, field, "empty text; fill it in or remove the example.")
    return raw
