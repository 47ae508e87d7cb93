"""The demo corpus (`input_pipeline.text.stdlib_corpus`: the standard library's docstrings in BERT's
input format) and the sentence splitter it uses (`input_pipeline.text.sentences`)."""

from __future__ import annotations

import zlib

import pytest

from input_pipeline.text.sentences import split_sentences
from input_pipeline.text.stdlib_corpus import module_files, module_sentences, stdlib_dir, write_stdlib_corpus
from tests.support.stdlib_corpus_files import HELD_OUT_PERCENT


@pytest.fixture(scope="module")
def modules(stdlib_module_sentences) -> list[tuple[str, list[str]]]:
    """(name relative to the standard library, sentences) of every module with prose. Each
    module's `module_sentences` is parsed once a session (`stdlib_module_sentences`, which the
    `stdlib_corpus` fixture fills while writing the corpus)."""
    root = stdlib_dir()
    for path in module_files():
        if path not in stdlib_module_sentences:
            stdlib_module_sentences[path] = module_sentences(path)
    return [(path.relative_to(root).as_posix(), s) for path in module_files()
            if (s := stdlib_module_sentences[path])]


def documents(path) -> list[list[str]]:
    text = open(path, encoding="utf-8").read()
    assert text.endswith("\n\n") and not text.startswith("\n")
    return [doc.split("\n") for doc in text[:-2].split("\n\n")]


@pytest.mark.parametrize("name", ["train.txt", "held_out.txt"])
def test_bert_format(stdlib_corpus, name):
    directory, stats = stdlib_corpus
    text = (directory / name).read_text(encoding="utf-8")
    # Documents are separated by exactly one blank line, and there is no other empty line.
    assert "\n\n\n" not in text
    docs = documents(directory / name)
    lines = [line for doc in docs for line in doc]
    assert all(line.strip() for line in lines), "an empty line inside a document"
    # One sentence per line: no stray whitespace, and no character that other readers
    # (str.splitlines, universal newlines) would take as a line break.
    assert all(line == line.strip() and " ".join(line.split()) == line for line in lines)
    assert text.splitlines() == text[:-1].split("\n")
    assert all(any(c.isalpha() for c in line) for line in lines)
    assert not [line for line in lines if line.startswith(">>>")], "doctest lines in the corpus"
    split = name.removesuffix(".txt")
    assert stats[f"{split}_documents"] == len(docs)
    assert stats[f"{split}_sentences"] == len(lines)
    assert stats[f"{split}_bytes"] == len(text.encode("utf-8"))


def test_corpus_is_the_modules_docstrings(stdlib_corpus, modules):
    """Each document is one module's sentences, modules in sorted order; held-out modules are
    chosen by a hash of their name, the rest are training text."""
    directory, stats = stdlib_corpus
    held_out_names = {name for name, _ in modules
                      if zlib.crc32(name.encode()) % 10_000 < HELD_OUT_PERCENT * 100}
    train_names = {name for name, _ in modules} - held_out_names
    assert held_out_names and not held_out_names & train_names
    assert 0.02 < len(held_out_names) / len(modules) < 0.1
    assert documents(directory / "train.txt") == [s for name, s in modules if name in train_names]
    assert documents(directory / "held_out.txt") == [s for name, s in modules if name in held_out_names]
    assert stats["train_documents"] > 300 and stats["train_sentences"] > 10_000


def test_held_out_text_is_not_in_training_text(stdlib_corpus):
    directory, _ = stdlib_corpus
    train_text = (directory / "train.txt").read_text(encoding="utf-8")
    train_lines = set(train_text.split("\n"))
    held_out = documents(directory / "held_out.txt")
    # A few generic sentences ("Put an item into the queue.") occur in several modules, but no
    # held-out document is training text: not as a whole, not mostly.
    for doc in held_out:
        if len(doc) >= 3:
            assert "\n".join(doc) not in train_text
        if len(doc) >= 5:
            assert sum(line in train_lines for line in doc) < 0.5 * len(doc), doc[:3]
    sentences = [line for doc in held_out for line in doc]
    assert sum(line in train_lines for line in sentences) < 0.1 * len(sentences)


def test_max_bytes_caps_the_training_text(tmp_path):
    root = stdlib_dir() / "email"  # with held-out modules among the first ones
    full = write_stdlib_corpus(tmp_path / "full.txt", tmp_path / "full_ho.txt", root=root,
                               held_out_percent=20)
    capped = write_stdlib_corpus(tmp_path / "capped.txt", tmp_path / "capped_ho.txt", root=root,
                                 held_out_percent=20, max_bytes=20_000)
    assert full["train_bytes"] > 40_000
    last = documents(tmp_path / "capped.txt")[-1]
    last_bytes = len(("\n".join(last) + "\n\n").encode())
    # Whole documents, up to the first one that reaches the cap.
    assert capped["train_bytes"] >= 20_000 > capped["train_bytes"] - last_bytes
    full_text = (tmp_path / "full.txt").read_text()
    assert full_text.startswith((tmp_path / "capped.txt").read_text())
    # Held-out text is not capped.
    assert (tmp_path / "capped_ho.txt").read_bytes() == (tmp_path / "full_ho.txt").read_bytes()
    assert capped["held_out_documents"] == full["held_out_documents"] > 0


@pytest.mark.parametrize("text, expected", [
    ("This is one. This is two.", ["This is one.", "This is two."]),
    ("Use a mapping, e.g. Dict or OrderedDict. Then iterate.",
     ["Use a mapping, e.g. Dict or OrderedDict.", "Then iterate."]),
    ("The result, i.e. The value returned, is cached. Call again.",
     ["The result, i.e. The value returned, is cached.", "Call again."]),
    ("Pass a container (e.g. List or Tuple) here. Next.",
     ["Pass a container (e.g. List or Tuple) here.", "Next."]),
    ('A "cf. Section 2" note. Done.', ['A "cf. Section 2" note.', "Done."]),
    ("Dr. Smith met Mr. Jones at St. Mary. They talked.",
     ["Dr. Smith met Mr. Jones at St. Mary.", "They talked."]),
    ("J. R. R. Tolkien wrote it. He was English.", ["J. R. R. Tolkien wrote it.", "He was English."]),
    ("Python 3.5 was released. Version 2.7 is old. Use 3.12.", 
     ["Python 3.5 was released.", "Version 2.7 is old.", "Use 3.12."]),
    ("Pi is about 3.14159 and e is 2.71828 here. 10 people came.",
     ["Pi is about 3.14159 and e is 2.71828 here.", "10 people came."]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ("He said 'go.' Then he went.", ["He said 'go.'", "Then he went."]),
    ("(This is an aside.) The text goes on.", ["(This is an aside.)", "The text goes on."]),
    ("See the list [of items.] Then stop.", ["See the list [of items.]", "Then stop."]),
    ('Is it true? Yes! "Really?" Indeed.', ["Is it true?", "Yes!", '"Really?"', "Indeed."]),
    ("What?! No way. Why? Because.", ["What?!", "No way.", "Why?", "Because."]),
    ("Call foo. then bar. Finally baz.", ["Call foo. then bar.", "Finally baz."]),
    ("Apples, pears, etc. are fruit. Next.", ["Apples, pears, etc. are fruit.", "Next."]),
    ("Line one\n   continues here.\n\tLine two.", ["Line one continues here.", "Line two."]),
    ("No final punctuation", ["No final punctuation"]),
    ("", []),
    ("   \n ", []),
])
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_split_sentences_keeps_every_word():
    text = ("The module (i.e. This one) is small. Values such as 3.5 or 1e-3 work! "
            "Does it? \"Yes.\" (Mostly.) A. B. Smith agrees, e.g. Here. The end")
    sentences = split_sentences(text)
    assert " ".join(sentences).split() == text.split()
    assert sentences == ["The module (i.e. This one) is small.", "Values such as 3.5 or 1e-3 work!",
                         "Does it?", '"Yes."', "(Mostly.)", "A. B. Smith agrees, e.g. Here.", "The end"]
