"""Task data from TensorFlow Datasets: `tfds:glue/mnli:validation_matched`, `tfds:conll2003:train`,
`tfds:snli:train`, `tfds:multi_nli:validation_mismatched`, read from a prepared data directory
(nothing is downloaded).

The label names come from the dataset's own `ClassLabel` feature (its `info`), so label ids mean
what the builder says; -1 (test splits, SNLI pairs without a gold label) is "no label". Examples
are located by their index in the split.
"""

from __future__ import annotations

import dataclasses

from input_pipeline.tasks.fields import Fields
from input_pipeline.tasks.formats import FORMATS, TaskFormat
from input_pipeline.tasks.json_records import tagged_sentence, text_example
from input_pipeline.tasks.records import Location, TaggedSentence, TextExample
from input_pipeline.text.tfds_spec import TfdsSpec, parse_tfds_spec


def tfds_format(spec: TfdsSpec) -> TaskFormat:
    """The known format of a TFDS dataset ("glue/cola", "conll2003", ...), by its name without
    version."""
    name = spec.name.split(":", 1)[0]
    known = FORMATS.get(name)
    if known is None or known.tfds_fields is None:
        readable = sorted(n for n, f in FORMATS.items() if f.tfds_fields is not None)
        raise ValueError(f"tfds:{spec.name}: not a TFDS task dataset this reader knows; use one "
                         f"of {readable}, or export the data as JSON Lines with your fields.")
    return known


def read_tfds(source: str, fields: Fields | None = None,
              data_dir: str | None = None) -> list[TextExample] | list[TaggedSentence]:
    """The examples of a TFDS split, `source` being "tfds:NAME[:VERSION][:SPLIT]", in the split's
    order.

    Raises FileNotFoundError if the dataset is not prepared in `data_dir` (default: TFDS's own),
    and `TaskDataError` naming the example and field for a missing field or an empty text.
    """
    # Imported here: it takes seconds, and only TFDS sources need it.
    import tensorflow_datasets as tfds

    spec = parse_tfds_spec(source)
    task = tfds_format(spec)
    fields = fields or task.tfds_fields
    builder = tfds.builder(spec.name, data_dir=data_dir)
    try:
        dataset = builder.as_dataset(split=spec.split, shuffle_files=False)
    except AssertionError as e:
        # TFDS's way of saying the dataset was never prepared in this data directory.
        raise FileNotFoundError(
            f"{source}: TFDS dataset {spec.name!r} is not prepared in "
            f"{data_dir or 'the TFDS data directory (TFDS_DATA_DIR or ~/tensorflow_datasets)'}; "
            f"prepare it first (`tfds build {spec.name}`) or pass its data directory. TFDS said: "
            f"{e}") from e
    label_feature = builder.info.features[fields.label] if fields.label else None
    if task.task_type == "tagging" and label_feature is not None:
        label_feature = label_feature.feature  # The ClassLabel inside the Sequence.
    names = getattr(label_feature, "names", None)
    if names:
        task = TaskFormat(task.name, "tfds", task.task_type, fields, tuple(names))
    examples = []
    for index, example in enumerate(tfds.as_numpy(dataset)):
        record = {key: _decoded(value) for key, value in example.items()}
        location = Location(source, index=index)
        if task.task_type == "tagging":
            examples.append(tagged_sentence(record, fields, task, location))
        else:
            example = text_example(record, fields, task, location)
            if task.task_type == "regression" and example.label == -1:
                # TFDS's GLUE marks STS-B's unlabelled test scores -1 (a score is 0 to 5).
                example = dataclasses.replace(example, label=None)
            examples.append(example)
    return examples


def _decoded(value):
    """TFDS gives texts as bytes and labels as numpy scalars; JSON-like Python values here."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in value]
    return value
