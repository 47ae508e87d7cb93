"""TensorFlow Datasets as text sources: `tfds:NAME[:VERSION][:SPLIT]` specs, parsed.
"""

from __future__ import annotations

import dataclasses
import re

TFDS_PREFIX = "tfds:"


# TFDS datasets whose text is paragraphs, not sentences: reading them as "lines" would make
# every paragraph one "sentence" of the next-sentence task.
PARAGRAPH_DATASETS = ("wikipedia", "wiki40b")


# `tfds:NAME[:VERSION][:SPLIT]`. NAME ("wiki40b/ko", "wikipedia/20230601.en") has no colon; a
# VERSION ("1.3.0") is told from a split by its shape; the split may hold colons of its own
# ("train[:10%]").
_TFDS_SPEC = re.compile(r"^tfds:(?P<name>[^:\[\]\s]+?)(?::(?P<version>\d+\.\d+\.\d+))?"
                        r"(?::(?P<split>\S+))?$")


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
    """A parsed `tfds:NAME[:VERSION][:SPLIT]` input."""
    name: str  # "wiki40b/ko", with ":VERSION" appended when one was given: what tfds.load takes.
    split: str  # "train" when the spec names none.

    @property
    def dataset(self) -> str:
        """The dataset's name without config or version: "wiki40b" for "wiki40b/ko"."""
        return self.name.split("/", 1)[0].split(":", 1)[0]


def is_tfds_source(source: str) -> bool:
    """Whether `source` is a TFDS spec (`tfds:...`) rather than a path."""
    return isinstance(source, str) and source.startswith(TFDS_PREFIX)


def parse_tfds_spec(spec: str) -> TfdsSpec:
    """Parses `tfds:NAME[:VERSION][:SPLIT]` (e.g. `tfds:wiki40b/ko`,
    `tfds:wikipedia/20230601.en:train[:10%]`).

    Raises:
      ValueError: if `spec` is not of that form.
    """
    match = _TFDS_SPEC.match(spec)
    if not match:
        raise ValueError(f"{spec!r} is not a TFDS input; write it as tfds:NAME[:SPLIT], e.g. "
                         "'tfds:wikipedia/20230601.en:train' or 'tfds:wiki40b/ko:validation'.")
    name = match["name"] + (f":{match['version']}" if match["version"] else "")
    return TfdsSpec(name=name, split=match["split"] or "train")


def load_prepared(spec: TfdsSpec, source: str, data_dir: str | None = None):
    """`spec`'s split as numpy examples, from a dataset already prepared in `data_dir` (nothing
    is downloaded); one that is not prepared is a FileNotFoundError naming `source` and how to
    prepare it."""
    # Imported here: it takes seconds, and only TFDS inputs need it.
    import tensorflow_datasets as tfds

    try:
        dataset = tfds.load(spec.name, split=spec.split, data_dir=data_dir, download=False,
                            shuffle_files=False)
    except AssertionError as e:
        # TFDS's way of saying the dataset was never prepared in this data directory.
        raise FileNotFoundError(
            f"{source}: TFDS dataset {spec.name!r} is not prepared in "
            f"{data_dir or 'the TFDS data directory (TFDS_DATA_DIR or ~/tensorflow_datasets)'}; "
            f"prepare it first (`tfds build {spec.name}`, or "
            f"tfds.builder({spec.name!r}).download_and_prepare()) or pass its data directory. "
            f"TFDS said: {e}") from e
    return tfds.as_numpy(dataset)
