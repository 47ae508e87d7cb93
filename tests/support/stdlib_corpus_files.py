"""The standard-library corpus files shared by the corpus tests."""

from __future__ import annotations

import pytest

from input_pipeline.text import stdlib_corpus as corpus_module

HELD_OUT_PERCENT = 5.0


@pytest.fixture(scope="session")
def stdlib_module_sentences() -> dict:
    """`module_sentences` of every standard-library file, filled as they are asked for: parsing
    the whole library takes seconds, and the corpus tests read it twice (once writing the corpus,
    once checking it against the modules)."""
    return {}


@pytest.fixture(scope="module")
def stdlib_corpus(tmp_path_factory, stdlib_module_sentences):
    """(directory, stats) of the whole standard library's corpus, written by `write_stdlib_corpus`
    with each module's sentences from `module_sentences` (kept in `stdlib_module_sentences`)."""
    parse = corpus_module.module_sentences

    def remembered(path):
        if path not in stdlib_module_sentences:
            stdlib_module_sentences[path] = parse(path)
        return list(stdlib_module_sentences[path])  # A copy: the writer cannot change what is checked.

    directory = tmp_path_factory.mktemp("corpus")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(corpus_module, "module_sentences", remembered)
        stats = corpus_module.write_stdlib_corpus(directory / "train.txt", directory / "held_out.txt",
                                                  held_out_percent=HELD_OUT_PERCENT)
    return directory, stats
