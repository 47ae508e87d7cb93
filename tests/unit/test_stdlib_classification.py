"""The embedded labeled task (`input_pipeline.text.stdlib_classification`): which package a
docstring belongs to, held out by module; checked on a fake standard library whose split is known
by hand (the module hashes decide it), and read back through the task reader."""

from __future__ import annotations

import json
import textwrap

import pytest

from input_pipeline.tasks.reading import read_examples
from input_pipeline.text.stdlib_classification import (LabeledDocstring, stdlib_classification_task,
                                                      write_stdlib_classification)

WORDS = "enough words to count as an example"


def function(name: str, doc: str) -> str:
    return f'def {name}():\n    """{doc}"""\n'


# crc32 order: red/b.py < red/big.py < red/a.py < red/c.py and blue/x.py < blue/z.py < blue/y.py.
FAKE_LIBRARY = {
    "red/a.py": function("a", f"Red a {WORDS}."),
    "red/b.py": function("b", f"Red b {WORDS}."),
    "red/c.py": function("c", f"Red c {WORDS}.") + function("short", "Too short here."),
    # Over half of red's examples: never held out, however its hash falls.
    "red/big.py": "".join(function(f"f{i}", f"Red big {i} {WORDS}.") for i in range(4)),
    "blue/x.py": function("x", f"Blue x {WORDS}.") + function("shared", f"Shared {WORDS}."),
    "blue/y.py": function("y", f"Blue y {WORDS}."),
    "blue/z.py": function("z", f"Blue z {WORDS}.") + function("shared", f"Shared   {WORDS}."),
    "green/q.py": function("q", f"Green is not a chosen package {WORDS}."),
    "toplevel.py": function("t", f"Not in a package {WORDS}."),
    "red/test/test_a.py": function("test_a", f"Tests are not documentation {WORDS}."),
}


@pytest.fixture
def fake_library(tmp_path):
    root = tmp_path / "lib"
    for name, source in FAKE_LIBRARY.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root


def test_split_by_module_of_a_fake_library(fake_library):
    task = stdlib_classification_task(("red", "blue"), root=fake_library)
    assert task.labels == ("red", "blue")
    # red: 7 examples; b (1) and a (1) are held out, reaching 20%; big is over half and stays.
    # blue: x (2 of 4) reaches 20% alone. z's "Shared" text is x's, whitespace aside: test only.
    assert task.test == (
        LabeledDocstring("red/a.py", 1, f"Red a {WORDS}.", "red"),
        LabeledDocstring("red/b.py", 1, f"Red b {WORDS}.", "red"),
        LabeledDocstring("blue/x.py", 1, f"Blue x {WORDS}.", "blue"),
        LabeledDocstring("blue/x.py", 3, f"Shared {WORDS}.", "blue"),
    )
    assert [(e.module, e.line) for e in task.train] == (
        [("red/big.py", 2 * i + 1) for i in range(4)] + [("red/c.py", 1)]
        + [("blue/y.py", 1), ("blue/z.py", 1)])
    assert stdlib_classification_task(("red", "blue"), root=fake_library) == task


def test_training_examples_capped_per_label(fake_library):
    task = stdlib_classification_task(("red", "blue"), max_train_per_label=1, root=fake_library)
    assert [e.label for e in task.train] == ["red", "blue"]
    assert len(task.test) == 4  # the test set is never capped


def test_a_package_that_cannot_be_split_is_refused(fake_library):
    with pytest.raises(ValueError, match="'green' .* cannot be split by module"):
        stdlib_classification_task(("red", "green"), root=fake_library)


def test_written_files_read_back_through_the_task_reader(fake_library, tmp_path):
    task = stdlib_classification_task(("red", "blue"), root=fake_library)
    paths = write_stdlib_classification(tmp_path / "out", task)
    assert paths["labels"].read_text() == "red\nblue\n"
    examples = read_examples(paths["test"], "jsonl", task_type="classification")
    assert [(e.text_a, e.text_b, e.label) for e in examples] == [(e.text, None, e.label) for e in task.test]
    rows = [json.loads(line) for line in paths["train"].read_text().splitlines()]
    assert [row["module"] for row in rows] == [e.module for e in task.train]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["labels.txt", "test.jsonl", "train.jsonl"]
