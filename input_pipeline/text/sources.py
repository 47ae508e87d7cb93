"""Where training text comes from: files, globs, directories and TFDS datasets, read as documents.

An input is a plain path, a glob, a directory, or a TFDS spec `tfds:NAME[:SPLIT]`.
`expand_inputs` turns inputs into sources (one file or one TFDS split each) and `iter_documents`
streams a source's documents, one list of lines at a time, so a file of any size is read in
memory bounded by its longest document; `iter_document_pieces` cuts longer documents between
lines, so that memory is bounded whatever their length.

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

Bad input is counted per file in an `input_report.InputReport`, when one is passed (create-data
and vocab pass one): missing paths, files and subdirectories of an input directory that are not
read, unreadable and binary files, empty files, lines that are not UTF-8, JSON Lines records that
are not objects or hold no string text, lines longer than `max_line_chars`, lines with control or
zero-width characters, and (counted after tokenizing, by create-data) empty and one-sentence
documents. By default a bad file, line or record is skipped (control characters are kept: the
tokenizer removes them) and counted, and reading goes on; a strict report raises on the first,
naming file and line. Without a report, reading behaves as it always has: text that is not UTF-8
(or a binary file) and a bad JSON Lines record are errors, nothing else is checked.
"""

from __future__ import annotations

import functools
import glob
import gzip
import io
import json
import os
import re
import unicodedata
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from input_pipeline import remote_files
from input_pipeline.text.report import FileReport, InputReport
from input_pipeline.text.sentences import split_sentences
from input_pipeline.text.tfds_spec import PARAGRAPH_DATASETS, TfdsSpec, is_tfds_source, load_prepared, parse_tfds_spec

TEXT_FORMATS = ("lines", "paragraphs")
# What a directory contributes: its files with these endings (not those of its subdirectories).
DIRECTORY_SUFFIXES = (".txt", ".txt.gz", ".jsonl", ".jsonl.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")

_INPUT_HELP = ("pass an existing file, a directory holding *.txt, *.txt.gz, *.jsonl or *.jsonl.gz "
               "files, a glob such as 'corpus/*.txt.gz', or a TFDS split such as "
               "'tfds:wikipedia/20230601.en:train'")


_WIKI40B_ARTICLE = "_START_ARTICLE_"
_WIKI40B_SECTION = "_START_SECTION_"
_WIKI40B_PARAGRAPH = "_START_PARAGRAPH_"
_WIKI40B_NEWLINE = "_NEWLINE_"


def check_text_format(text_format: str) -> str:
    """Returns `text_format` if it is one of `TEXT_FORMATS`; raises a ValueError saying what each
    means otherwise."""
    if text_format not in TEXT_FORMATS:
        raise ValueError(f"text_format={text_format!r} is not supported; use 'lines' (one sentence "
                         "per line, Google's original format) or 'paragraphs' (one paragraph per "
                         "line, split into sentences here).")
    return text_format


# A file is binary (or text in another encoding) if the first bytes of its text hold a NUL, or if
# at least this share of them is not UTF-8 (judged on samples of at least _BINARY_MIN_SAMPLE bytes:
# in a few bytes, one accented Latin-1 letter would be a large share).
_BINARY_SAMPLE_BYTES = 8192
_BINARY_MIN_SAMPLE = 256
_BINARY_INVALID_SHARE = 0.3
# The rest of an overlong line is read and dropped this many bytes at a time.
_SKIP_CHUNK_BYTES = 1 << 20


@functools.cache
def _control_characters() -> re.Pattern[str]:
    """Control characters (category Cc) but tab, LF and CR, and the invisible format characters
    (Cf: zero-width space and joiners, direction marks, soft hyphen, a BOM inside the text). Built
    on first use: one pass over the code points that hold Cf characters (planes 0, 1 and 14)."""
    ranges: list[list[int]] = []
    for cp in (*range(0x20000), *range(0xE0000, 0xE1000)):
        if unicodedata.category(chr(cp)) == "Cf":
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1][1] = cp
            else:
                ranges.append([cp, cp])
    # As ranges: a class of single characters is several times slower to match.
    format_chars = "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{format_chars}]")


def _check_line(report: InputReport, source: str, number: int, line: str) -> bool:
    """Whether to keep a stripped, non-empty line: False for one over the length limit; a line
    with control characters is kept (the tokenizer removes them) but counted."""
    if report.max_line_chars is not None and len(line) > report.max_line_chars:
        report.found(source, "overlong_lines", number,
                     f"a line of {len(line):,} characters (max_line_chars={report.max_line_chars:,})")
        return False
    # Most lines are printable (no Cc, Cf, other spaces than " ", ...), which str.isprintable
    # tells several times faster than the regex.
    match = None if line.isprintable() else _control_characters().search(line)
    if match:
        report.found(source, "control_character_lines", number,
                     f"control or zero-width character U+{ord(match.group()):04X} at column "
                     f"{match.start() + 1}")
    return True


def _binary_evidence(sample: bytes) -> tuple[int, str] | None:
    """(line, what) if the start of a file's text looks binary, else None."""
    nul = sample.find(b"\0")
    if nul >= 0:
        return sample.count(b"\n", 0, nul) + 1, f"not text: a NUL byte at byte {nul}"
    if len(sample) >= _BINARY_MIN_SAMPLE:
        invalid = len(sample) - len(sample.decode("utf-8", "ignore").encode("utf-8"))
        if invalid >= _BINARY_INVALID_SHARE * len(sample):
            return 1, (f"not text: {invalid} of its first {len(sample)} bytes are not UTF-8 "
                       "(binary, or another encoding)")
    return None


def expand_inputs(patterns: Sequence[str], report: InputReport | None = None) -> list[str]:
    """Turns inputs into the list of sources to read, in order.

    Each pattern is a file (kept as given), a directory (its *.txt, *.txt.gz, *.jsonl and
    *.jsonl.gz files, sorted; subdirectories are not searched), a glob (its matches, sorted; `**`
    matches across directories; a matched directory contributes its files as above), or a TFDS
    spec `tfds:NAME[:SPLIT]` (checked for form, passed through unchanged). A file reached twice is
    kept only the first time, since reading it twice would duplicate its text.

    With a `report`, a pattern that matches no file is counted as "missing" (under the pattern),
    and each file or subdirectory of an input directory that is not read (other endings) as
    "other_files" (under its path); both are skipped unless the report is strict, and every
    source gets its entry, in order.

    Raises:
      FileNotFoundError: for a pattern that matches no file (with a lenient report: only when
        there is nothing at all to read), naming it, what it holds and what to pass instead.
      ValueError: for a malformed TFDS spec, or no patterns at all; with a strict report, for a
        file of an input directory that is not read.
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    if not patterns:
        raise ValueError(f"no inputs given; {_INPUT_HELP}.")
    expansion = _Expansion(report)
    for pattern in patterns:
        expansion.expand(os.fspath(pattern))
    return expansion.sources()


class _Expansion:
    """`expand_inputs`' state over its patterns: the sources so far (each file once), the
    entries of input directories that are not read, and the patterns that gave nothing."""

    def __init__(self, report: InputReport | None):
        self.report = report
        self.found: list[str] = []
        self.seen: set[str] = set()
        self.seen_others: set[str] = set()  # Entries of input directories that are not read.
        # (pattern, what it is) for each pattern that gives nothing to read, and whether it exists.
        self.nothing: list[tuple[str, str, bool]] = []

    def expand(self, pattern: str) -> None:
        if is_tfds_source(pattern):
            parse_tfds_spec(pattern)
            self._add(pattern, pattern)
            return
        if _isfile(pattern):
            self._add(pattern, _realpath(pattern))
            return
        others: list[str] = []
        if remote_files.isdir(pattern):
            files = self._directory_files(pattern, others)
            if not files:
                self._matches_nothing(pattern, _unread_directory(pattern, others), exists=True)
        else:
            matches = _glob(pattern) if _is_glob(pattern) else []
            files = []
            for match in matches:
                files.extend(self._directory_files(match, others) if remote_files.isdir(match) else [match])
            if not matches:
                what = "glob matches no file" if _is_glob(pattern) else "no such file or directory"
                self._matches_nothing(pattern, what, exists=False)
            elif not files:
                self._matches_nothing(pattern, "glob matches only directories, "
                                      + _unread_entries(pattern, others), exists=True)
        for path in files:
            self._add(path, _realpath(path))
        self._report_others(others)

    def sources(self) -> list[str]:
        if not self.found:  # Only with a lenient report does this point come with nothing to read.
            described = "; ".join(f"{pattern!r}: {what}" for pattern, what, _ in self.nothing)
            if not any(exists for _, _, exists in self.nothing):
                raise FileNotFoundError(f"none of the inputs exists ({described}); {_INPUT_HELP}.")
            raise FileNotFoundError(f"nothing to read in the inputs ({described}); {_INPUT_HELP}.")
        return self.found

    def _add(self, path: str, key: str) -> None:
        if key not in self.seen:
            self.seen.add(key)
            self.found.append(path)
            if self.report is not None:
                self.report.file(path)  # Every source has an entry, in input order.

    def _directory_files(self, directory: str, others: list[str]) -> list[str]:
        files, unread = _directory_files(directory)
        for path in unread:
            if _realpath(path) not in self.seen_others:
                self.seen_others.add(_realpath(path))
                others.append(path)
        return files

    def _report_others(self, others: list[str]) -> None:
        for path in others if self.report is not None else ():
            detail = ("a subdirectory: those of an input directory are not searched"
                      if remote_files.isdir(path) else
                      f"its name does not end in {', '.join(DIRECTORY_SUFFIXES)}")
            self.report.found(path, "other_files", detail=detail)  # Raises if strict.

    def _matches_nothing(self, pattern: str, what: str, exists: bool) -> None:
        if self.report is None:
            raise FileNotFoundError(f"input {pattern!r}: {what}; {_INPUT_HELP}.")
        self.report.found(pattern, "missing", detail=what)  # Raises if strict.
        self.nothing.append((pattern, what, exists))


def _unread_directory(directory: str, others: Sequence[str]) -> str:
    """What a directory that gives no file to read is."""
    return "a directory " + _unread_entries(directory, others) if others else "an empty directory"


def _unread_entries(pattern: str, others: Sequence[str]) -> str:
    names = ", ".join(os.path.basename(path.rstrip("/")) for path in others[:5])
    more = f" and {len(others) - 5} more" if len(others) > 5 else ""
    return (f"holding no file ending in {', '.join(DIRECTORY_SUFFIXES)} but {len(others)} other "
            f"entries ({names}{more}): name the files, or use a glob such as "
            f"{os.path.join(pattern, '*')!r}")


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


# Local paths keep the standard library's exact behavior (`os.path.isfile` is false for a device,
# `realpath` finds a file reached through a link twice); remote ones (gs://) go through
# `remote_files`, where there are no links and a path is its own identity.

def _isfile(path: str) -> bool:
    return remote_files.isfile(path) if remote_files.is_remote(path) else os.path.isfile(path)


def _realpath(path: str) -> str:
    return path if remote_files.is_remote(path) else os.path.realpath(path)


def _glob(pattern: str) -> list[str]:
    # tf.io.gfile's glob has no `**`: on a bucket, `*` stays within one directory.
    if remote_files.is_remote(pattern):
        return remote_files.glob(pattern)
    return sorted(glob.glob(pattern, recursive=True))


def _directory_files(directory: str) -> tuple[list[str], list[str]]:
    """The files of `directory` that are read (by their endings), and its other entries."""
    files, others = [], []
    for name in remote_files.listdir(directory):
        path = os.path.join(directory, name)
        (files if name.endswith(DIRECTORY_SUFFIXES) and _isfile(path) else others).append(path)
    return files, others


def iter_documents(source: str, *, text_format: str = "lines", text_field: str = "text",
                   tfds_data_dir: str | None = None,
                   report: InputReport | None = None) -> Iterator[list[str]]:
    """Yields the documents of one source (a file or a TFDS spec from `expand_inputs`).

    A document is a non-empty list of stripped, non-empty lines: sentences for text_format
    "lines", paragraphs for "paragraphs" (see `document_sentences`). Only one document is held in
    memory at a time. `text_field` names the text of a JSONL record or TFDS example;
    `tfds_data_dir` is where TFDS datasets are prepared (default: TFDS's own, `TFDS_DATA_DIR` or
    ~/tensorflow_datasets). With a `report`, bad lines and files are counted there and skipped
    (see `InputReport`); without one, text that is not UTF-8 is an error.

    Raises:
      ValueError: on an unknown text_format, text that is not UTF-8 or a JSONL line that is not
        an object with a string `text_field` (without a report, or with a strict one: then on any
        problem; all naming file:line), or a paragraph-only TFDS dataset read as "lines".
      FileNotFoundError: if a TFDS dataset is not prepared in the data directory.
    """
    return (lines for _, lines in iter_numbered_documents(
        source, text_format=text_format, text_field=text_field, tfds_data_dir=tfds_data_dir,
        report=report))


def iter_numbered_documents(source: str, *, text_format: str = "lines", text_field: str = "text",
                            tfds_data_dir: str | None = None, report: InputReport | None = None
                            ) -> Iterator[tuple[int, list[str]]]:
    """`iter_documents`, each document with the number of its first line (of its example, for
    TFDS), so that a problem found later, after tokenizing, can name where it is."""
    return ((piece.line, piece.lines) for piece in iter_document_pieces(
        source, text_format=text_format, text_field=text_field, tfds_data_dir=tfds_data_dir,
        report=report))


class DocumentPiece(NamedTuple):
    """A document, or a piece of one cut between lines (`iter_document_pieces`)."""
    line: int  # The number of its first line (of its example, for TFDS).
    lines: list[str]
    starts: bool  # It starts a document (False: it continues the piece before it).
    ends: bool  # It ends the document (False: the next piece continues it).


def iter_document_pieces(source: str, *, max_chars: int | None = None, text_format: str = "lines",
                         text_field: str = "text", tfds_data_dir: str | None = None,
                         report: InputReport | None = None) -> Iterator[DocumentPiece]:
    """The documents of `iter_documents`, a document longer than `max_chars` characters cut
    between lines into pieces of at most `max_chars` (a longer line is a piece of its own), so
    that memory holds at most `max_chars` characters of a document however long it is (a book, or
    a corpus without blank lines). None: documents whole."""
    check_text_format(text_format)
    if is_tfds_source(source):
        spec = parse_tfds_spec(source)
        if text_format == "lines" and spec.dataset in PARAGRAPH_DATASETS:
            raise ValueError(f"{source}: {spec.dataset} text is one paragraph per line, not one "
                             "sentence per line; read it with text_format='paragraphs' "
                             "(--text-format paragraphs) so it is split into sentences.")
    if max_chars is not None and max_chars < 1:
        raise ValueError(f"max_chars={max_chars} must be positive (or None).")
    # Checked above, before the first document is asked for; the reading itself is lazy.
    report = report or InputReport.unreported()
    return _group_documents(_lines_and_breaks(source, text_field, tfds_data_dir, report),
                            report.file(source), max_chars)


def _group_documents(lines: Iterator[tuple[int, str | None]], entry: FileReport,
                     max_chars: int | None) -> Iterator[DocumentPiece]:
    piece: list[str] = []
    first = size = 0
    starts = True
    for number, line in lines:
        if line is None:
            if piece:
                entry.documents += 1
                yield DocumentPiece(first, piece, starts, True)
                piece, size, starts = [], 0, True
            continue
        if piece and max_chars is not None and size + len(line) > max_chars:
            yield DocumentPiece(first, piece, starts, False)
            piece, size, starts = [], 0, False
        if not piece:
            first = number
        piece.append(line)
        size += len(line)
    if piece:
        entry.documents += 1
        yield DocumentPiece(first, piece, starts, True)


def iter_lines(source: str, *, text_field: str = "text", tfds_data_dir: str | None = None,
               report: InputReport | None = None) -> Iterator[str]:
    """Yields the stripped, non-empty lines of one source, one at a time, without grouping them
    into documents: memory stays bounded even by a file with no blank line (vocab training
    counts words this way). Problems and errors as for `iter_documents`."""
    report = report or InputReport.unreported()
    for _, line in _lines_and_breaks(source, text_field, tfds_data_dir, report):
        if line is not None:
            yield line


def plain_text_bytes(sources: Sequence[str]) -> int | None:
    """The bytes that reading `sources` goes through, for a progress bar's total: their sizes when
    all are local uncompressed text files; None otherwise (.gz, .jsonl, TFDS, remote)."""
    if any(is_tfds_source(s) or remote_files.is_remote(s) or s.endswith((".gz", *JSONL_SUFFIXES))
           for s in sources):
        return None
    return sum(os.path.getsize(s) for s in sources)


def document_sentences(lines: Sequence[str], text_format: str, language: str = "auto") -> list[str]:
    """The sentences of a document read by `iter_documents`: its lines as they are for "lines",
    each line split by `sentences.split_sentences(line, language)` for "paragraphs"."""
    if check_text_format(text_format) == "lines":
        return list(lines)
    return [sentence for line in lines for sentence in split_sentences(line, language)]


# --- Readers. Each yields (line number, stripped non-empty line), and (line number, None) where
# a document ends; problems go to the report. ------------------------------------------------------

def _lines_and_breaks(source: str, text_field: str, tfds_data_dir: str | None,
                      report: InputReport) -> Iterator[tuple[int, str | None]]:
    if is_tfds_source(source):
        return _tfds_lines(parse_tfds_spec(source), source, text_field, tfds_data_dir, report)
    if source.endswith(JSONL_SUFFIXES):
        return _jsonl_lines(source, text_field, report)
    return _text_file_lines(source, report)


def _open_binary(path: str) -> io.BufferedIOBase:
    """`path` (local or remote), decompressed if it ends in .gz, as a binary file whose
    `readline` takes a size limit (tf.io.gfile's does not)."""
    if not remote_files.is_remote(path):
        return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    raw = io.BufferedReader(_RemoteReader(path), buffer_size=1 << 20)
    # GzipFile leaves a file object it was given open: _ClosingGzipFile closes it too.
    return _ClosingGzipFile(raw) if path.endswith(".gz") else raw


class _RemoteReader(io.RawIOBase):
    """A remote file (tf.io.gfile) as a raw binary stream, so that io.BufferedReader and gzip
    can read it; its read errors (TensorFlow's, which are not OSErrors) become OSErrors, so that
    they are reported like a local file's."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path
        self._file = remote_files.open_file(path, "rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        # Only remote files, which remote_files opened with TensorFlow, get here: reading
        # local text never imports it.
        import tensorflow as tf
        try:
            data = self._file.read(len(buffer))
        except tf.errors.NotFoundError as e:
            raise FileNotFoundError(f"{self._path}: {e.message}") from e
        except tf.errors.OpError as e:
            raise OSError(f"{self._path}: {e.message}") from e
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


class _ClosingGzipFile(gzip.GzipFile):
    def __init__(self, raw: io.BufferedIOBase):
        super().__init__(fileobj=raw, mode="rb")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


# What reading a file (or decompressing it) raises when it cannot be read: a missing or
# unreadable file, a truncated or corrupt gzip stream.
_READ_ERRORS = (OSError, EOFError, zlib.error)


def _read_error(path: str, error: BaseException, lines_read: int) -> str:
    where = f"; {lines_read:,} lines were read" if lines_read else ""
    if path.endswith(".gz") and not isinstance(error, (FileNotFoundError, PermissionError,
                                                       IsADirectoryError)):
        return (f"not a complete gzip file ({error}{where}); names ending in .gz must be "
                "gzip-compressed")
    return f"cannot be read ({error}{where})"


def _decoded_lines(path: str, report: InputReport, *, bounded: bool) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of a UTF-8 (optionally gzipped) file, read one at a time;
    lines are split at "\\n" only, as TensorFlow's and Google's readers do.

    Problems go to `report`, and what they concern is skipped: a file that cannot be read (from
    where reading failed), a binary file (all of it), a line that is not UTF-8 (replacing its bad
    bytes would put U+FFFD pieces into the vocab and the data) and, if `bounded`, a line of more
    than 4 * max_line_chars bytes (read a chunk at a time, so it never sits in memory whole).
    An empty file is counted once it is read.
    """
    entry = report.file(path)
    number = 0
    try:
        with _open_binary(path) as f:
            evidence = _binary_evidence(f.read(_BINARY_SAMPLE_BYTES))
        if evidence:
            report.found(path, "binary", *evidence)
            return
        # No UTF-8 character takes more than 4 bytes: a line of more bytes than this has more
        # characters than the limit, whatever it holds (-1: no limit).
        limit = 4 * report.max_line_chars + 1 if bounded and report.max_line_chars else -1
        has_text = False
        with _open_binary(path) as f:
            while raw := f.readline(limit):
                number += 1
                entry.lines += 1
                if not has_text and not raw.isspace():
                    has_text = True
                if len(raw) == limit and not raw.endswith(b"\n"):
                    while raw and not raw.endswith(b"\n"):
                        raw = f.readline(_SKIP_CHUNK_BYTES)
                    report.found(path, "overlong_lines", number,
                                 f"a line of more than {limit - 1:,} bytes (max_line_chars="
                                 f"{report.max_line_chars:,})")
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    report.found(path, "invalid_utf8_lines", number,
                                 f"invalid UTF-8 ({e.reason} at byte {e.start} of the line)")
                    continue
                if number == 1 and text.startswith("\ufeff"):
                    text = text[1:]  # A byte-order mark is not text.
                yield number, text
    except _READ_ERRORS as e:
        report.found(path, "unreadable", detail=_read_error(path, e, number))
        return
    if not has_text:
        report.found(path, "empty_file")


def _text_file_lines(path: str, report: InputReport) -> Iterator[tuple[int, str | None]]:
    number = 0
    for number, text in _decoded_lines(path, report, bounded=True):
        line = text.strip()
        if not line:
            yield number, None
        elif _check_line(report, path, number, line):
            yield number, line
    yield number + 1, None  # The end of a file ends its last document.


def _jsonl_lines(path: str, text_field: str, report: InputReport
                 ) -> Iterator[tuple[int, str | None]]:
    # A record is a whole document, which may well be long: the length limit applies to the
    # lines of its text, not to the record.
    entry = report.file(path)
    for number, raw in _decoded_lines(path, report, bounded=False):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as e:
            report.found(path, "invalid_records", number,
                         f"not valid JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(record, dict):
            report.found(path, "invalid_records", number,
                         f"{_json_kind(record)} of JSON, not an object")
            continue
        text = record.get(text_field)
        if not isinstance(text, str):
            report.found(path, "records_without_text", number,
                         f"no field {text_field!r} (found {sorted(record)})"
                         if text_field not in record else
                         f"field {text_field!r} is {_json_kind(text)}, not a string of text")
            continue
        yield from _record_lines(report, entry, path, number, _split_text(text))


def _json_kind(value) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def _record_lines(report: InputReport, entry: FileReport, source: str, number: int,
                  lines: Iterable[str]) -> Iterator[tuple[int, str | None]]:
    """The checked lines of one record (a JSONL line or a TFDS example), then its end. A record
    without text is an empty document."""
    empty = True
    for line in lines:
        empty = False
        if _check_line(report, source, number, line):
            yield number, line
    if empty:
        entry.documents += 1
        report.found(source, "empty_documents", number)
    yield number, None


def _split_text(text: str) -> Iterator[str]:
    for line in text.split("\n"):
        line = line.strip()
        if line:
            yield line


def _tfds_lines(spec: TfdsSpec, source: str, text_field: str, data_dir: str | None,
                report: InputReport) -> Iterator[tuple[int, str | None]]:
    is_wiki40b = spec.dataset == "wiki40b"
    entry = report.file(source)
    for index, example in enumerate(load_prepared(spec, source, data_dir)):
        entry.lines += 1  # An example is the "line" of a TFDS source.
        if text_field not in example:
            report.found(source, "records_without_text", index,
                         f"no field {text_field!r} (found {sorted(example)})")
            continue
        value = example[text_field]
        try:
            text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError as e:
            report.found(source, "invalid_utf8_lines", index,
                         f"field {text_field!r} is not valid UTF-8 ({e.reason})")
            continue
        if is_wiki40b or text.lstrip().startswith(_WIKI40B_ARTICLE):
            lines = wiki40b_paragraphs(text)
        else:
            lines = _split_text(text)
        yield from _record_lines(report, entry, source, index, lines)
    if not entry.lines:
        report.found(source, "empty_file")


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
