"""The standard-library corpus files shared by the corpus tests."""

from __future__ import annotations

import pytest

from input_pipeline.text.stdlib_corpus import write_stdlib_corpus

HELD_OUT_PERCENT = 5.0


@pytest.fixture(scope="module")
def stdlib_corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("corpus")
    stats = write_stdlib_corpus(directory / "train.txt", directory / "held_out.txt",
                                held_out_percent=HELD_OUT_PERCENT)
    return directory, stats
