"""A real English corpus available offline on every machine: the Python standard library's docstrings.

Every Python installation ships the source of its standard library, and its docstrings are prose
written by many authors over decades. Each module becomes one document (its module, class and
function docstrings in source order), split into sentences, written in the original BERT input
format: one sentence per line, a blank line between documents. The modules are read with `ast`,
never imported, so building the corpus runs none of their code.
"""

from __future__ import annotations

import ast
import os
import sysconfig
import zlib
from collections.abc import Iterator
from pathlib import Path

from input_pipeline.text.sentences import split_sentences

# Test suites and demos are code, not documentation.
_SKIPPED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "__pycache__", "turtledemo"})


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def module_files(root: Path | None = None) -> list[Path]:
    """The standard library's source files, in a fixed order."""
    root = root or stdlib_dir()
    files = []
    for path in sorted(root.rglob("*.py")):
        if _SKIPPED_DIRS.intersection(path.relative_to(root).parts[:-1]):
            continue
        files.append(path)
    return files


def parse_source(path: Path) -> ast.Module | None:
    """One standard-library source file's syntax tree; None for the few that are deliberately
    invalid (e.g. bad encodings)."""
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return None


def docstrings(path: Path) -> list[str]:
    """The module, class and function docstrings of one source file, in source order."""
    tree = parse_source(path)
    if tree is None:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                found.append((getattr(node, "lineno", 0), doc))
    return [doc for _, doc in sorted(found, key=lambda item: item[0])]


def prose_paragraphs(doc: str) -> Iterator[str]:
    """The paragraphs of a docstring that are prose: doctests, indented code, tables and
    reStructuredText underlines are left out."""
    for paragraph in doc.split("\n\n"):
        lines = paragraph.split("\n")
        if not lines or lines[0][:1].isspace():
            continue  # Indented blocks are code samples or argument tables.
        kept = []
        for line in lines:
            stripped = line.strip()
            if stripped.startswith((">>>", "...", "$ ", "%")) or line[:1].isspace():
                break  # A code sample starts here; the rest of the paragraph is not prose.
            if stripped and not any(c.isalnum() for c in stripped):
                continue  # "=====" underlines and the like.
            kept.append(stripped)
        text = " ".join(kept).strip()
        if sum(c.isalpha() for c in text) >= 10:
            yield text


def module_sentences(path: Path) -> list[str]:
    """One document: the sentences of a module's docstrings."""
    sentences = []
    for doc in docstrings(path):
        for paragraph in prose_paragraphs(doc):
            sentences.extend(s for s in split_sentences(paragraph) if any(c.isalpha() for c in s))
    return sentences


def is_held_out(name: str, held_out_percent: float) -> bool:
    """A stable, platform-independent choice of held-out modules."""
    return zlib.crc32(name.encode()) % 10_000 < held_out_percent * 100


def write_stdlib_corpus(train_path: str | os.PathLike, held_out_path: str | os.PathLike, *,
                        held_out_percent: float = 5.0, max_bytes: int | None = None,
                        root: Path | None = None) -> dict[str, int]:
    """Writes the training and held-out corpora in BERT's format; returns their sizes.

    Modules are assigned to held-out text by a hash of their path, so no held-out sentence is seen
    in training. `max_bytes` caps the training text (held-out text is not counted).
    """
    root = root or stdlib_dir()
    stats = {"train_documents": 0, "train_sentences": 0, "train_bytes": 0,
             "held_out_documents": 0, "held_out_sentences": 0, "held_out_bytes": 0}
    paths = {"train": Path(train_path), "held_out": Path(held_out_path)}
    tmp = {k: p.with_name(p.name + f".tmp-{os.getpid()}") for k, p in paths.items()}
    with open(tmp["train"], "w", encoding="utf-8") as train, \
            open(tmp["held_out"], "w", encoding="utf-8") as held_out:
        for path in module_files(root):
            name = path.relative_to(root).as_posix()
            split = "held_out" if is_held_out(name, held_out_percent) else "train"
            if split == "train" and max_bytes is not None and stats["train_bytes"] >= max_bytes:
                continue  # Decided before parsing: a capped corpus reads few modules past the cap.
            sentences = module_sentences(path)
            if not sentences:
                continue
            text = "\n".join(sentences) + "\n\n"
            (held_out if split == "held_out" else train).write(text)
            stats[f"{split}_documents"] += 1
            stats[f"{split}_sentences"] += len(sentences)
            stats[f"{split}_bytes"] += len(text.encode("utf-8"))
    for key, path in paths.items():
        os.replace(tmp[key], path)
    return stats
