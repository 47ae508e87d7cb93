"""Where training text comes from: files, globs, directories and TFDS datasets, read as documents.

An input is a plain path, a glob, a directory, or a TFDS spec `tfds:NAME[:SPLIT]`.
`expand_inputs` turns inputs into sources (one file or one TFDS split each) and `iter_documents`
streams a source's documents, one list of lines at a time, so a file of any size is read in
memory bounded by its longest document.

Files:

* text (`.txt`, or any name not ending in `.jsonl`; `.gz` is decompressed on the fly): a blank
  (or whitespace-only) line separates documents, as in Google's `create_pretraining_data.py`,
  and the end of a file ends one too (Google's loop carries a file's last document on into the
  next file when the file does not end with a blank line). Other lines are stripped and kept, and
  are split at "\n" only. With text_format "lines" a line is one sentence (the original format);
  with "paragraphs" it is a paragraph, split into sentences later by `document_sentences`.
* JSON Lines (`.jsonl`, `.jsonl.gz`): one document per line, a JSON object whose field
  `text_field` holds the text; the text's own lines are the document's lines.

TFDS: each example of the split is one document, its `text_field` split on newlines.
`wikipedia/*` text is one paragraph per line (section headings, where the dump's cleaning kept
them, are short lines of their own). `wiki40b/*` text carries structure markers, handled as its
catalog page describes: the title after `_START_ARTICLE_` and the heading after
`_START_SECTION_` are dropped, the line after `_START_PARAGRAPH_` is a paragraph, and `_NEWLINE_`
inside it is a line break. Both are prose paragraphs, so they must be read with text_format
"paragraphs". The dataset must already be prepared in the TFDS data directory (nothing is
downloaded here).
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import json
import os
import re
from collections.abc import Iterator, Sequence

from input_pipeline.sentences import split_sentences

TEXT_FORMATS = ("lines", "paragraphs")
TFDS_PREFIX = "tfds:"
# What a directory contributes: its files with these endings (not those of its subdirectories).
DIRECTORY_SUFFIXES = (".txt", ".txt.gz", ".jsonl", ".jsonl.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")

_INPUT_HELP = ("pass an existing file, a directory holding *.txt, *.txt.gz, *.jsonl or *.jsonl.gz "
               "files, a glob such as 'corpus/*.txt.gz', or a TFDS split such as "
               "'tfds:wikipedia/20230601.en:train'")

# TFDS datasets whose text is paragraphs, not sentences: reading them as "lines" would make
# every paragraph one "sentence" of the next-sentence task.
_PARAGRAPH_DATASETS = ("wikipedia", "wiki40b")

# `tfds:NAME[:VERSION][:SPLIT]`. NAME ("wiki40b/ko", "wikipedia/20230601.en") has no colon; a
# VERSION ("1.3.0") is told from a split by its shape; the split may hold colons of its own
# ("train[:10%]").
_TFDS_SPEC = re.compile(r"^tfds:(?P<name>[^:\[\]\s]+?)(?::(?P<version>\d+\.\d+\.\d+))?"
                        r"(?::(?P<split>\S+))?$")

_WIKI40B_ARTICLE = "_START_ARTICLE_"
_WIKI40B_SECTION = "_START_SECTION_"
_WIKI40B_PARAGRAPH = "_START_PARAGRAPH_"
_WIKI40B_NEWLINE = "_NEWLINE_"


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
    """A parsed `tfds:NAME[:VERSION][:SPLIT]` input."""
    name: str  # "wiki40b/ko", with ":VERSION" appended when one was given: what tfds.load takes.
    split: str  # "train" when the spec names none.

    @property
    def dataset(self) -> str:
        """The dataset's name without config or version: "wiki40b" for "wiki40b/ko"."""
        return self.name.split("/", 1)[0].split(":", 1)[0]


def is_tfds_source(source: str) -> bool:
    """Whether `source` is a TFDS spec (`tfds:...`) rather than a path."""
    return isinstance(source, str) and source.startswith(TFDS_PREFIX)


def parse_tfds_spec(spec: str) -> TfdsSpec:
    """Parses `tfds:NAME[:VERSION][:SPLIT]` (e.g. `tfds:wiki40b/ko`,
    `tfds:wikipedia/20230601.en:train[:10%]`).

    Raises:
      ValueError: if `spec` is not of that form.
    """
    match = _TFDS_SPEC.match(spec)
    if not match:
        raise ValueError(f"{spec!r} is not a TFDS input; write it as tfds:NAME[:SPLIT], e.g. "
                         "'tfds:wikipedia/20230601.en:train' or 'tfds:wiki40b/ko:validation'.")
    name = match["name"] + (f":{match['version']}" if match["version"] else "")
    return TfdsSpec(name=name, split=match["split"] or "train")


def check_text_format(text_format: str) -> str:
    """Returns `text_format` if it is one of `TEXT_FORMATS`; raises a ValueError saying what each
    means otherwise."""
    if text_format not in TEXT_FORMATS:
        raise ValueError(f"text_format={text_format!r} is not supported; use 'lines' (one sentence "
                         "per line, Google's original format) or 'paragraphs' (one paragraph per "
                         "line, split into sentences here).")
    return text_format


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """Turns inputs into the list of sources to read, in order.

    Each pattern is a file (kept as given), a directory (its *.txt, *.txt.gz, *.jsonl and
    *.jsonl.gz files, sorted; subdirectories are not searched), a glob (its matches, sorted; `**`
    matches across directories; a matched directory contributes its files as above), or a TFDS
    spec `tfds:NAME[:SPLIT]` (checked for form, passed through unchanged). A file reached twice is
    kept only the first time, since reading it twice would duplicate its text.

    Raises:
      FileNotFoundError: for a pattern that matches no file, naming it and what to pass instead.
      ValueError: for a malformed TFDS spec, or no patterns at all.
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    if not patterns:
        raise ValueError(f"no inputs given; {_INPUT_HELP}.")
    sources: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            sources.append(path)

    for pattern in patterns:
        pattern = os.fspath(pattern)
        if is_tfds_source(pattern):
            parse_tfds_spec(pattern)
            if pattern not in seen:
                seen.add(pattern)
                sources.append(pattern)
            continue
        if os.path.isfile(pattern):
            add(pattern)
            continue
        if os.path.isdir(pattern):
            found = _directory_files(pattern)
            if not found:
                raise FileNotFoundError(f"input directory {pattern!r} holds no file ending in "
                                        f"{', '.join(DIRECTORY_SUFFIXES)}; {_INPUT_HELP}.")
            for path in found:
                add(path)
            continue
        matches = sorted(glob.glob(pattern, recursive=True)) if _is_glob(pattern) else []
        files: list[str] = []
        for match in matches:
            files.extend(_directory_files(match) if os.path.isdir(match) else [match])
        if not files:
            what = "glob matches no file" if _is_glob(pattern) else "no such file or directory"
            raise FileNotFoundError(f"input {pattern!r}: {what}; {_INPUT_HELP}.")
        for path in files:
            add(path)
    return sources


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def _directory_files(directory: str) -> list[str]:
    return sorted(os.path.join(directory, name) for name in os.listdir(directory)
                  if name.endswith(DIRECTORY_SUFFIXES)
                  and os.path.isfile(os.path.join(directory, name)))


def iter_documents(source: str, *, text_format: str = "lines", text_field: str = "text",
                   tfds_data_dir: str | None = None) -> Iterator[list[str]]:
    """Yields the documents of one source (a file or a TFDS spec from `expand_inputs`).

    A document is a non-empty list of stripped, non-empty lines: sentences for text_format
    "lines", paragraphs for "paragraphs" (see `document_sentences`). Only one document is held in
    memory at a time. `text_field` names the text of a JSONL record or TFDS example;
    `tfds_data_dir` is where TFDS datasets are prepared (default: TFDS's own, `TFDS_DATA_DIR` or
    ~/tensorflow_datasets).

    Raises:
      ValueError: on an unknown text_format, text that is not UTF-8, a JSONL line that is not an
        object with a string `text_field` (all naming file:line), or a paragraph-only TFDS dataset
        read as "lines".
      FileNotFoundError: if a TFDS dataset is not prepared in the data directory.
    """
    check_text_format(text_format)
    if is_tfds_source(source):
        spec = parse_tfds_spec(source)
        if text_format == "lines" and spec.dataset in _PARAGRAPH_DATASETS:
            raise ValueError(f"{source}: {spec.dataset} text is one paragraph per line, not one "
                             "sentence per line; read it with text_format='paragraphs' "
                             "(--text-format paragraphs) so it is split into sentences.")
    # Checked above, before the first document is asked for; the reading itself is lazy.
    return _group_documents(_lines_and_breaks(source, text_field, tfds_data_dir))


def _group_documents(lines: Iterator[str | None]) -> Iterator[list[str]]:
    document: list[str] = []
    for line in lines:
        if line is None:
            if document:
                yield document
                document = []
        else:
            document.append(line)
    if document:
        yield document


def iter_lines(source: str, *, text_field: str = "text",
               tfds_data_dir: str | None = None) -> Iterator[str]:
    """Yields the stripped, non-empty lines of one source, one at a time, without grouping them
    into documents: memory stays bounded even by a file with no blank line (vocab training
    counts words this way). Errors as for `iter_documents`."""
    for line in _lines_and_breaks(source, text_field, tfds_data_dir):
        if line is not None:
            yield line


def document_sentences(lines: Sequence[str], text_format: str, language: str = "auto") -> list[str]:
    """The sentences of a document read by `iter_documents`: its lines as they are for "lines",
    each line split by `sentences.split_sentences(line, language)` for "paragraphs"."""
    if check_text_format(text_format) == "lines":
        return list(lines)
    return [sentence for line in lines for sentence in split_sentences(line, language)]


# --- Readers. Each yields stripped non-empty lines, and None where a document ends. -------------

def _lines_and_breaks(source: str, text_field: str, tfds_data_dir: str | None
                      ) -> Iterator[str | None]:
    if is_tfds_source(source):
        return _tfds_lines(parse_tfds_spec(source), source, text_field, tfds_data_dir)
    if source.endswith(JSONL_SUFFIXES):
        return _jsonl_lines(source, text_field)
    return _text_file_lines(source)


def _open_binary(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _decoded_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of a UTF-8 (optionally gzipped) file, read one at a time;
    lines are split at "\\n" only, as TensorFlow's and Google's readers do."""
    try:
        with _open_binary(path) as f:
            for number, raw in enumerate(f, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    # Replacing bad bytes would put U+FFFD pieces into the vocab and the data.
                    raise ValueError(f"{path}:{number}: invalid UTF-8 ({e.reason} at byte "
                                     f"{e.start} of the line); convert the file to UTF-8 (e.g. "
                                     "with iconv).") from e
                if number == 1 and text.startswith("\ufeff"):
                    text = text[1:]  # A byte-order mark is not text.
                yield number, text
    except (gzip.BadGzipFile, EOFError) as e:
        raise ValueError(f"{path}: not a complete gzip file ({e}); names ending in .gz must be "
                         "gzip-compressed.") from e


def _text_file_lines(path: str) -> Iterator[str | None]:
    for _, text in _decoded_lines(path):
        yield text.strip() or None
    yield None  # The end of a file ends its last document.


def _jsonl_lines(path: str, text_field: str) -> Iterator[str | None]:
    for number, raw in _decoded_lines(path):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: not valid JSON ({e.msg} at column {e.colno}); each "
                             f"line of a .jsonl file must be one JSON object with a "
                             f"{text_field!r} field.") from e
        if not isinstance(record, dict) or text_field not in record:
            fields = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise ValueError(f"{path}:{number}: no field {text_field!r} (found {fields}); pass "
                             "text_field (--text-field) naming the field that holds the text.")
        text = record[text_field]
        if not isinstance(text, str):
            raise ValueError(f"{path}:{number}: field {text_field!r} is a "
                             f"{type(text).__name__}, not a string of text.")
        yield from _split_text(text)
        yield None


def _split_text(text: str) -> Iterator[str]:
    for line in text.split("\n"):
        line = line.strip()
        if line:
            yield line


def _tfds_lines(spec: TfdsSpec, source: str, text_field: str, data_dir: str | None
                ) -> Iterator[str | None]:
    # Imported here: it takes seconds, and only TFDS inputs need it.
    import tensorflow_datasets as tfds

    try:
        dataset = tfds.load(spec.name, split=spec.split, data_dir=data_dir, download=False,
                            shuffle_files=False)
    except AssertionError as e:
        # TFDS's way of saying the dataset was never prepared in this data directory.
        raise FileNotFoundError(
            f"{source}: TFDS dataset {spec.name!r} is not prepared in "
            f"{data_dir or 'the TFDS data directory (TFDS_DATA_DIR or ~/tensorflow_datasets)'}; "
            f"prepare it first (`tfds build {spec.name}`, or "
            f"tfds.builder({spec.name!r}).download_and_prepare()) or pass its data directory. "
            f"TFDS said: {e}") from e
    is_wiki40b = spec.dataset == "wiki40b"
    for index, example in enumerate(tfds.as_numpy(dataset)):
        if text_field not in example:
            raise ValueError(f"{source}: example {index} has no field {text_field!r} (found "
                             f"{sorted(example)}); pass text_field (--text-field) naming the "
                             "field that holds the text.")
        value = example[text_field]
        try:
            text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError as e:
            raise ValueError(f"{source}: example {index}: field {text_field!r} is not valid "
                             f"UTF-8 ({e.reason}).") from e
        if is_wiki40b or text.lstrip().startswith(_WIKI40B_ARTICLE):
            yield from wiki40b_paragraphs(text)
        else:
            yield from _split_text(text)
        yield None


def wiki40b_paragraphs(text: str) -> Iterator[str]:
    """The paragraph lines of one Wiki-40B article: titles, section headings and markers dropped,
    each `_NEWLINE_`-separated piece of a paragraph a line of its own (stripped, non-empty).

    Lines outside any marked paragraph (text without markers) are kept as paragraphs.
    """
    skip_next = False
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        if line in (_WIKI40B_ARTICLE, _WIKI40B_SECTION):
            skip_next = True  # The next line is the article title or the section heading.
            continue
        if line == _WIKI40B_PARAGRAPH:
            skip_next = False
            continue
        if skip_next:
            skip_next = False
            continue
        for piece in line.split(_WIKI40B_NEWLINE):
            piece = piece.strip()
            if piece:
                yield piece
