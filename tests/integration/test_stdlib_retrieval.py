"""The standard library retrieval task: pairs of (one-line summary, rest of the docstring), held
out by module, each query and document once, the same on every build. Exact expectations on a
small fake library; the properties on this Python's own."""

from __future__ import annotations

import textwrap

import pytest

from input_pipeline.text.stdlib_corpus import is_held_out, module_files, stdlib_dir
from input_pipeline.text.stdlib_retrieval import DocstringPair, stdlib_retrieval_task

LONG = "one two three four five six seven eight nine ten"  # Ten words: the shortest document kept.

FAKE_LIBRARY = {
    # crc32("alpha.py") % 10_000 = 9682: kept for training at 50% held out.
    "alpha.py": f'''
        def first():
            """Return the first item of a sequence.

            {LONG}
            and more.
            """

        class Second:
            """A class with a summary line.

            {LONG}"""

            def method(self):
                """Only one line: no pair."""

        def wrapped():
            """A first paragraph that
            runs over two lines is no summary line.

            {LONG}"""

        def short():
            """Too short a document here.

            Only five words in it."""

        def tiny():
            """Two words.

            {LONG}"""
        ''',
    # crc32("pkg/zeta.py") % 10_000 = 798: held out at 50%.
    "pkg/zeta.py": f'''
        def held():
            """Compute the held out thing.

            {LONG} held."""

        def repeated_query():
            """RETURN THE FIRST ITEM OF A SEQUENCE.

            A different document of enough words to be kept otherwise."""

        def repeated_document():
            """A new summary line here.

            {LONG}"""
        ''',
    "test/test_alpha.py": f'''
        def test_thing():
            """Tests are not documentation.

            {LONG}"""
        ''',
}


@pytest.fixture
def fake_library(tmp_path):
    for name, source in FAKE_LIBRARY.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    return tmp_path


def test_pairs_of_a_fake_library(fake_library):
    task = stdlib_retrieval_task(50.0, root=fake_library)
    assert task.train == (
        DocstringPair("alpha.py", 1, "first", "Return the first item of a sequence.", f"{LONG} and more."),
        DocstringPair("alpha.py", 8, "Second", "A class with a summary line.", LONG),
    )
    assert task.test == (
        DocstringPair("pkg/zeta.py", 1, "held", "Compute the held out thing.", f"{LONG} held."),
    )
    assert task.queries == {"pkg/zeta.py:1:held": "Compute the held out thing."}
    assert task.corpus == {"pkg/zeta.py:1:held": f"{LONG} held."}
    assert task.relevant_docs == {"pkg/zeta.py:1:held": {"pkg/zeta.py:1:held"}}
    assert stdlib_retrieval_task(50.0, root=fake_library) == task


@pytest.fixture(scope="module")
def task():
    return stdlib_retrieval_task()


def test_the_standard_library_task_is_held_out_by_module(task):
    train_modules = {p.module for p in task.train}
    test_modules = {p.module for p in task.test}
    assert not train_modules & test_modules
    assert all(is_held_out(m, 10.0) for m in test_modules)
    assert not any(is_held_out(m, 10.0) for m in train_modules)
    assert len(task.train) > 1000 and len(task.test) > 200 and len(test_modules) > 10


def test_the_standard_library_task_has_each_query_and_document_once_in_a_fixed_order(task):
    pairs = task.train + task.test
    assert len({p.query.casefold() for p in pairs}) == len(pairs)
    assert len({p.document for p in pairs}) == len(pairs)
    assert len(task.queries) == len(task.corpus) == len(task.test)
    root = stdlib_dir()
    order = {path.relative_to(root).as_posix(): i for i, path in enumerate(module_files(root))}
    for split in (task.train, task.test):
        keys = [(order[p.module], p.line) for p in split]
        assert keys == sorted(keys)
    assert all(len(p.query.split()) >= 3 and len(p.document.split()) >= 10 for p in pairs)
