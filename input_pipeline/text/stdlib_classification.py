"""A labeled classification task that needs no download: which standard-library package a
docstring belongs to.

Every class and function docstring of at least `MIN_WORDS` words in one of `PACKAGES` is one
example: the text is the docstring (whitespace collapsed), the label the package. The packages are
ones every supported Python ships, each with many modules, so that whole modules can be held out:
per package, modules are taken in the order of a hash of their path (`stdlib_corpus.is_held_out`'s
hash) into the test set until it holds `TEST_FRACTION` of the package's examples, never a module
holding more than half of them. A test docstring therefore comes from a module the model never saw
labeled, and every label is in both splits. Texts repeated in the library (inherited boilerplate)
are kept once, in the first split that has them, so no test text is a training text.

The task is the same on every run of one Python version (sources read with `ast`, never imported,
in sorted order); it changes with the standard library between versions, as the retrieval task does.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import json
import os
import zlib
from pathlib import Path

from input_pipeline.text.stdlib_corpus import module_files, parse_source, stdlib_dir

# Packages with at least ten modules in Python 3.10-3.13 and at least 150 docstrings; none of them
# was removed in those versions (unlike distutils and lib2to3).
PACKAGES = ("asyncio", "email", "importlib", "multiprocessing", "tkinter", "unittest", "xml")
MIN_WORDS = 5
TEST_FRACTION = 0.2
# The largest package (tkinter) would otherwise be a third of the data; capping it keeps the
# majority baseline honest and a CPU fine-tuning run short.
MAX_TRAIN_PER_LABEL = 300


@dataclasses.dataclass(frozen=True)
class LabeledDocstring:
    """One example and where it comes from."""
    module: str  # The source file's path under the standard library, e.g. "email/parser.py".
    line: int    # The line of the `def` or `class`.
    text: str    # The docstring, whitespace collapsed to single spaces.
    label: str   # The package, e.g. "email".


@dataclasses.dataclass(frozen=True)
class ClassificationTask:
    """Training and held-out examples; `labels` in a fixed order (`PACKAGES`)."""
    train: tuple[LabeledDocstring, ...]
    test: tuple[LabeledDocstring, ...]
    labels: tuple[str, ...]


def labeled_docstrings(path: Path, module: str, label: str, min_words: int = MIN_WORDS) -> list[LabeledDocstring]:
    """The examples of one source file, in source order."""
    tree = parse_source(path)
    if tree is None:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            text = " ".join((ast.get_docstring(node) or "").split())
            if len(text.split()) >= min_words:
                found.append(LabeledDocstring(module, node.lineno, text, label))
    return sorted(found, key=lambda example: (example.line, example.text))


def _test_modules(counts: dict[str, int], fraction: float) -> set[str]:
    """The modules of one package held out: in hash order until `fraction` of its examples."""
    total, taken, held_out = sum(counts.values()), 0, set()
    for module in sorted(counts, key=lambda m: (zlib.crc32(m.encode()), m)):
        if taken >= fraction * total:
            break
        if counts[module] <= total / 2:
            held_out.add(module)
            taken += counts[module]
    return held_out


def stdlib_classification_task(packages: tuple[str, ...] = PACKAGES, *, test_fraction: float = TEST_FRACTION,
                               max_train_per_label: int | None = MAX_TRAIN_PER_LABEL,
                               min_words: int = MIN_WORDS, root: Path | None = None) -> ClassificationTask:
    """The task from the standard library under `root` (default: this Python's).

    Raises ValueError if a package has no module or cannot be split into both sets.
    """
    root = root or stdlib_dir()
    by_module: dict[str, dict[str, list[LabeledDocstring]]] = {p: {} for p in packages}
    for path in module_files(root):
        module = path.relative_to(root).as_posix()
        package = module.split("/")[0]
        if "/" in module and package in by_module:
            if examples := labeled_docstrings(path, module, package, min_words):
                by_module[package][module] = examples
    train: list[LabeledDocstring] = []
    test: list[LabeledDocstring] = []
    seen: set[str] = set()
    for package, modules in by_module.items():
        held_out = _test_modules({m: len(e) for m, e in modules.items()}, test_fraction)
        if not held_out or held_out == set(modules):
            raise ValueError(f"package {package!r} under {root} cannot be split by module into training and "
                             f"test examples ({len(modules)} modules with docstrings); choose other packages")
        kept = collections.Counter()
        # Test modules first, so a text shared with a training module stays in the test set
        # only and the training set never holds a test text.
        for module in sorted(held_out) + sorted(set(modules) - held_out):
            split = test if module in held_out else train
            for example in modules[module]:
                if example.text in seen:
                    continue
                seen.add(example.text)
                if split is train:
                    if max_train_per_label is not None and kept[package] >= max_train_per_label:
                        continue
                    kept[package] += 1
                split.append(example)
    return ClassificationTask(tuple(train), tuple(test), tuple(packages))


def write_stdlib_classification(directory: str | os.PathLike, task: ClassificationTask | None = None) -> dict[str, Path]:
    """Writes `train.jsonl`, `test.jsonl` (fields `text`, `label`, `module`: the layout Hugging Face
    `datasets` exports) and `labels.txt` into `directory`; returns their paths by name. Each file is
    written under a temporary name and renamed, so none is ever half-written."""
    task = task or stdlib_classification_task()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    contents = {
        "train": "".join(json.dumps({"text": e.text, "label": e.label, "module": e.module}) + "\n"
                         for e in task.train),
        "test": "".join(json.dumps({"text": e.text, "label": e.label, "module": e.module}) + "\n"
                        for e in task.test),
        "labels": "".join(label + "\n" for label in task.labels),
    }
    paths = {"train": directory / "train.jsonl", "test": directory / "test.jsonl", "labels": directory / "labels.txt"}
    for name, path in paths.items():
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(contents[name], encoding="utf-8")
        os.replace(tmp, path)
    return paths
