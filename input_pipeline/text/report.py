"""The input report of every command that reads text (create-data, vocab): per input file, how
much was read and each problem found (missing paths, files an input directory holds but does not
read, unreadable and binary files, empty files, lines that are not UTF-8 or too long, JSON Lines
records that are not objects or hold no text, control and zero-width characters, empty and
one-sentence documents). One policy for all of them: by default a problem is counted and what it
concerns skipped; in strict mode (--strict) the first is an error naming the file and line.
`input_pipeline.text.sources` finds the problems while reading; create-data logs the report and
writes it as input_report.json, vocab logs it."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from input_pipeline.text.tfds_spec import is_tfds_source

# A line this long is never a sentence or a paragraph (a whole book, a minified page, a base64
# blob), and tokenizing it would hold gigabytes; it is skipped and counted.
DEFAULT_MAX_LINE_CHARS = 1_000_000


@dataclasses.dataclass(frozen=True)
class _Problem:
    description: str  # What was found.
    unit: str  # What is skipped: "line", "file", "document".
    lenient: str  # What happens to it without strict mode.
    advice: str  # How to fix the input.


# Each kind of problem is a field of `FileReport` (and a key of input_report.json), in the order
# the table of `InputReport.format_table` shows them.
PROBLEMS: dict[str, _Problem] = {
    "missing": _Problem("no such file, or a glob or directory that matches no file", "path",
                        "skipped", "fix the path or drop it from the inputs"),
    "unreadable": _Problem("cannot be read", "file", "skipped from here on",
                           "fix or remove the file"),
    "other_files": _Problem(
        "in an input directory, but its name does not end in .txt, .txt.gz, .jsonl or .jsonl.gz "
        "(or it is a subdirectory, which is not searched)", "file", "not read",
        "pass it by name, or with a glob such as 'DIR/*', to read it"),
    "binary": _Problem("not text (binary, or text in another encoding than UTF-8)", "file",
                       "skipped", "drop it from the inputs, or convert it to UTF-8 (e.g. with iconv)"),
    "empty_file": _Problem("empty file (no non-blank line)", "file", "skipped",
                           "drop it from the inputs"),
    "invalid_utf8_lines": _Problem("invalid UTF-8", "line", "skipped",
                                   "convert the file to UTF-8 (e.g. with iconv)"),
    "invalid_records": _Problem("not a JSON object", "line", "skipped",
                                "make each line of a .jsonl file one JSON object (or remove it)"),
    "records_without_text": _Problem(
        "a record without a string text field", "record", "skipped",
        "pass --text-field naming the field that holds the text (or fix the record)"),
    "overlong_lines": _Problem("line longer than max_line_chars", "line", "skipped",
                               "split it into sentences or paragraphs, or raise max_line_chars "
                               "(--max-line-chars)"),
    "control_character_lines": _Problem(
        "control or zero-width characters", "line",
        "kept (the tokenizer removes these characters)", "remove the characters from the text"),
    "empty_documents": _Problem("document without any token", "document", "dropped",
                                "remove it (or check that the vocab suits the text)"),
    "one_sentence_documents": _Problem(
        "document of a single sentence", "document",
        "kept (its next-sentence pairs always take a random next segment)",
        "check the input format: one sentence per line with a blank line only between "
        "documents (--format lines), or one paragraph per line (--format paragraphs)"),
}


@dataclasses.dataclass
class FileReport:
    """What reading one input found: its size, and how many of each kind of problem (`PROBLEMS`).

    `documents` counts every document of the file, empty ones included; `first_line` holds the
    number of the first line of each kind of line problem (the example number for TFDS).
    """
    source: str
    lines: int = 0
    documents: int = 0
    missing: int = 0
    unreadable: int = 0
    other_files: int = 0
    binary: int = 0
    empty_file: int = 0
    invalid_utf8_lines: int = 0
    invalid_records: int = 0
    records_without_text: int = 0
    overlong_lines: int = 0
    control_character_lines: int = 0
    empty_documents: int = 0
    one_sentence_documents: int = 0
    first_line: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def problems(self) -> dict[str, int]:
        """The non-zero problem counts, by kind."""
        return {kind: getattr(self, kind) for kind in PROBLEMS if getattr(self, kind)}


# The count fields of a FileReport.
_COUNTS = ("lines", "documents", *PROBLEMS)


def _location(source: str, line: int | None) -> str:
    if line is None:
        return source
    return f"{source} example {line}" if is_tfds_source(source) else f"{source}:{line}"


def problem_message(source: str, kind: str, line: int | None = None, detail: str = "", *,
                    strict: bool = True) -> str:
    """The error for a problem of `kind` (a key of `PROBLEMS`) at `source`:`line`: what was
    found and how to fix it, and, for strict mode, what happens without it."""
    problem = PROBLEMS[kind]
    message = f"{_location(source, line)}: {detail or problem.description}; {problem.advice}."
    if strict:
        message += (f" Without strict mode (--strict) such a {problem.unit} is {problem.lenient} "
                    "and counted in the input report.")
    return message


class InputReport:
    """Per input file, how much was read and each problem found, for the whole of a creation run.

    Readers call `found` for each problem: it is counted (reading skips the line or file and goes
    on), or, with `strict`, raised as a ValueError (FileNotFoundError for a missing path) naming
    the file and line. Lines longer than `max_line_chars` characters are skipped (None: no limit).
    Counts from worker processes are added with `add_block_counts`; all counts are sums, so the
    report does not depend on the order they arrive in.
    """

    def __init__(self, *, strict: bool = False,
                 max_line_chars: int | None = DEFAULT_MAX_LINE_CHARS):
        if max_line_chars is not None and max_line_chars < 1:
            raise ValueError(f"max_line_chars={max_line_chars} must be positive (or None).")
        self.strict = strict
        self.max_line_chars = max_line_chars
        self.files: dict[str, FileReport] = {}
        # The kinds that raise rather than count.
        self._errors: frozenset[str] = frozenset(PROBLEMS) if strict else frozenset()

    @classmethod
    def unreported(cls) -> InputReport:
        """The rules of reading without a report, as before reports existed: no line limit, and
        only text that is not UTF-8 (a line, or a binary file) or cannot be read is an error."""
        report = cls(max_line_chars=None)
        report._errors = frozenset({"invalid_utf8_lines", "binary", "unreadable", "invalid_records",
                                    "records_without_text"})
        return report

    def file(self, source: str) -> FileReport:
        """The entry of `source`, made on first use (entries keep the order of first use)."""
        entry = self.files.get(source)
        if entry is None:
            entry = self.files[source] = FileReport(source)
        return entry

    def found(self, source: str, kind: str, line: int | None = None, detail: str = "") -> None:
        """Counts a problem of `kind` at `source`:`line`, or raises it in strict mode."""
        if kind in self._errors:
            message = problem_message(source, kind, line, detail, strict=self.strict)
            raise (FileNotFoundError if kind == "missing" else ValueError)(message)
        entry = self.file(source)
        setattr(entry, kind, getattr(entry, kind) + 1)
        if line is not None:
            entry.first_line.setdefault(kind, line)

    def add_block_counts(self, counts: Mapping) -> None:
        """Adds the per-file counts of processed blocks: the `(kind, source)` keys of `counts`
        (the other keys, block totals, are ignored)."""
        for key, count in counts.items():
            if isinstance(key, tuple):
                kind, source = key
                entry = self.file(source)
                setattr(entry, kind, getattr(entry, kind) + count)

    def merge(self, other: InputReport) -> None:
        """Adds the counts of `other` (e.g. a report filled by reading in another process)."""
        for source, theirs in other.files.items():
            ours = self.file(source)
            for name in _COUNTS:
                setattr(ours, name, getattr(ours, name) + getattr(theirs, name))
            for kind, line in theirs.first_line.items():
                ours.first_line[kind] = min(line, ours.first_line.get(kind, line))

    def totals(self) -> dict[str, int]:
        """Every count summed over the files, with the number of files read."""
        # The files read: not the paths that matched nothing, nor those left unread.
        totals = {"files": sum(not (entry.missing or entry.other_files)
                               for entry in self.files.values())}
        for name in _COUNTS:
            totals[name] = sum(getattr(entry, name) for entry in self.files.values())
        return totals

    def problem_files(self) -> list[FileReport]:
        """The entries with at least one problem, in input order."""
        return [entry for entry in self.files.values() if entry.problems]

    def summary(self) -> str:
        """One line: the files read and the total of each kind of problem found."""
        totals = self.totals()
        found = [f"{totals[kind]:,} {kind.replace('_', ' ')}" for kind in PROBLEMS if totals[kind]]
        return (f"input report: {totals['files']} file(s), {totals['lines']:,} lines, "
                f"{totals['documents']:,} documents; "
                + ("problems: " + ", ".join(found) if found else "no problems") + ".")

    def format_table(self, max_rows: int = 50) -> str:
        """The files with problems, one row each (at most `max_rows`), then the totals."""
        totals = self.totals()
        kinds = [kind for kind in PROBLEMS if totals[kind]]
        headers = ["file", "lines", "documents", *kinds]
        rows = [[entry.source, entry.lines, entry.documents, *(getattr(entry, k) for k in kinds)]
                for entry in self.problem_files()]
        shown = rows[:max_rows]
        shown.append([f"total ({totals['files']} files)", totals["lines"], totals["documents"],
                      *(totals[k] for k in kinds)])
        cells = [headers] + [[str(cell) for cell in row] for row in shown]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        lines = ["  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                           for i, cell in enumerate(row)) for row in cells]
        if len(rows) > max_rows:
            lines.insert(1 + max_rows, f"... and {len(rows) - max_rows} more file(s) with problems")
        return "\n".join(lines)

    def to_json(self) -> dict:
        """The report as written to input_report.json: the rules, the totals, every file."""
        return {
            "strict": self.strict,
            "max_line_chars": self.max_line_chars,
            "problems": {kind: {"description": p.description, "without_strict": p.lenient}
                         for kind, p in PROBLEMS.items()},
            "totals": self.totals(),
            "files": [dataclasses.asdict(entry) for entry in self.files.values()],
        }

    def log(self, logger: logging.Logger, where: str = "") -> None:
        """Logs the summary (a warning with the table when there are problems, else info)."""
        summary = self.summary() + (f" Details in {where}." if where else "")
        if self.problem_files():
            logger.warning("%s\n%s", summary, self.format_table())
        else:
            logger.info("%s", summary)
