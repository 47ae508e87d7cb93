"""A retrieval task that needs no download: find a Python standard library function's (or
class's) documentation from its one-line summary.

Every function and class docstring that follows PEP 257's multi-line form, a summary line, a blank
line, then the rest, gives one pair: the summary is the query, the rest (whitespace collapsed) the
document. Pairs with a summary under `min_query_words` words or a document under
`min_document_words` are left out, and so is every pair whose query (ignoring case) or document
repeats one seen before, so each query has exactly one relevant document. Modules are held out by
a hash of their path (`stdlib_corpus.is_held_out`, as for the pretraining corpus): the test
queries and documents come from modules that contribute no training pair. The sources are read
with `ast`, never imported, in sorted order, so the task is the same on every run of one Python
version (the standard library, and so the task, changes between versions).
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from input_pipeline.text.stdlib_corpus import is_held_out, module_files, parse_source, stdlib_dir

# About 10% of the pairs (350 on Python 3.11) from 31 modules; 5% would leave 160 test queries.
HELD_OUT_PERCENT = 10.0
MIN_QUERY_WORDS = 3
MIN_DOCUMENT_WORDS = 10


@dataclasses.dataclass(frozen=True)
class DocstringPair:
    """A (summary, rest of the docstring) pair and where it comes from."""
    module: str    # The source file's path under the standard library, e.g. "json/decoder.py".
    line: int      # The line of the `def` or `class`.
    name: str      # The function's or class's name.
    query: str     # The one-line summary.
    document: str  # The rest of the docstring, whitespace collapsed to single spaces.

    @property
    def id(self) -> str:
        """Unique in the task: "json/decoder.py:12:JSONDecoder"."""
        return f"{self.module}:{self.line}:{self.name}"


@dataclasses.dataclass(frozen=True)
class RetrievalTask:
    """Training pairs (anchor = query, positive = document) and a held-out test set."""
    train: tuple[DocstringPair, ...]
    test: tuple[DocstringPair, ...]

    @property
    def queries(self) -> dict[str, str]:
        """The test queries by id, for an `InformationRetrievalEvaluator`-style evaluation."""
        return {p.id: p.query for p in self.test}

    @property
    def corpus(self) -> dict[str, str]:
        """The test documents by id: the held-out documents only."""
        return {p.id: p.document for p in self.test}

    @property
    def relevant_docs(self) -> dict[str, set[str]]:
        """Each test query's one relevant document (its own docstring's rest)."""
        return {p.id: {p.id} for p in self.test}


def _words(text: str) -> list[str]:
    return text.split()


def docstring_pairs(path: Path, module: str, min_query_words: int = MIN_QUERY_WORDS,
                    min_document_words: int = MIN_DOCUMENT_WORDS) -> list[DocstringPair]:
    """The pairs of one source file, in source order (no deduplication)."""
    tree = parse_source(path)
    if tree is None:
        return []
    pairs = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        doc = ast.get_docstring(node)
        summary, blank, rest = (doc or "").partition("\n\n")
        if not blank or "\n" in summary.strip():
            continue  # No summary line: a one-line docstring, or a first paragraph of several lines.
        query, document = " ".join(_words(summary)), " ".join(_words(rest))
        if len(_words(query)) >= min_query_words and len(_words(document)) >= min_document_words:
            pairs.append(DocstringPair(module, node.lineno, node.name, query, document))
    return sorted(pairs, key=lambda p: (p.line, p.name))


def stdlib_retrieval_task(held_out_percent: float = HELD_OUT_PERCENT, *, min_query_words: int = MIN_QUERY_WORDS,
                          min_document_words: int = MIN_DOCUMENT_WORDS, root: Path | None = None) -> RetrievalTask:
    """The task from the standard library under `root` (default: this Python's)."""
    root = root or stdlib_dir()
    seen_queries: set[str] = set()
    seen_documents: set[str] = set()
    splits: dict[bool, list[DocstringPair]] = {False: [], True: []}
    for path in module_files(root):
        module = path.relative_to(root).as_posix()
        held_out = is_held_out(module, held_out_percent)
        for pair in docstring_pairs(path, module, min_query_words, min_document_words):
            query_key = pair.query.casefold()
            if query_key in seen_queries or pair.document in seen_documents:
                continue
            seen_queries.add(query_key)
            seen_documents.add(pair.document)
            splits[held_out].append(pair)
    return RetrievalTask(train=tuple(splits[False]), test=tuple(splits[True]))
