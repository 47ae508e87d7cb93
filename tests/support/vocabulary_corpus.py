"""The standard library's docstrings as a vocabulary corpus, and a trained vocab, shared by the
vocabulary tests."""

from __future__ import annotations

import ast
import sysconfig
import time
from pathlib import Path

import pytest

from input_pipeline.tokenizers.wordpiece import BasicTokenizer, BertTokenizer
from input_pipeline.vocabulary.wordpiece import (
    count_words,
    train_wordpiece,
)

# Modules (top-level module or package names) whose docstrings are kept out of training.
HELD_OUT_MODULES = frozenset({"argparse", "difflib", "fractions", "json", "http", "textwrap", "ftplib"})


SKIPPED_DIRS = frozenset({"test", "tests", "idle_test", "idlelib", "site-packages", "__pycache__"})


def train_and_held_out_docstring_lines() -> tuple[list[str], list[str]]:
    """(training lines, held-out lines): the non-blank lines of the stdlib's docstrings."""
    root = Path(sysconfig.get_paths()["stdlib"])
    train, held_out = [], []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if SKIPPED_DIRS.intersection(parts[:-1]):
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue  # A few files are deliberately invalid.
        out = held_out if parts[0].removesuffix(".py") in HELD_OUT_MODULES else train
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    out.extend(line for line in doc.splitlines() if line.strip())
    return train, held_out


@pytest.fixture(scope="module")
def docstring_corpus():
    train, held_out = train_and_held_out_docstring_lines()
    assert sum(map(len, train)) > 1_000_000 and sum(map(len, held_out)) > 50_000
    return train, held_out


@pytest.fixture(scope="module")
def train_counts(docstring_corpus):
    return count_words(docstring_corpus[0], BasicTokenizer(do_lower_case=True))


@pytest.fixture(scope="module")
def trained(train_counts):
    """8k and 2k uncased vocabs on the training docstrings, with the 8k training time."""
    start = time.perf_counter()
    vocab_8k = train_wordpiece(train_counts, 8000)
    seconds = time.perf_counter() - start
    return {"8k": vocab_8k, "2k": train_wordpiece(train_counts, 2000), "seconds_8k": seconds}


def tokenizer_of(tokens, **kwargs) -> BertTokenizer:
    return BertTokenizer({token: i for i, token in enumerate(tokens)}, **kwargs)
