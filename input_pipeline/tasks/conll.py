"""Token tagging files: CoNLL column files (CoNLL-2003 and the many NER sets laid out like it) and
KLUE-NER's character-per-line TSV.

CoNLL: one word per line with its columns separated by white space (CoNLL-2003: word, POS tag,
chunk tag, NER tag), a blank line between sentences, and `-DOCSTART-` lines between documents
(they are dropped, as by TFDS's `conll2003` and Hugging Face's loaders). The word is column 0 and
the tag the last column by default; both are configurable (`tag_column=None`: no tags, for
unlabelled data). Every word line of a file must have as many columns as the first.

KLUE-NER (`klue-ner-v1.1_{train,dev}.tsv` of the KLUE benchmark): five header lines starting with
"##", then per sentence a line "## <id>\\t<sentence with <entity:TAG> marks>", one line per
character "<char>\\t<tag>" (IOB2 tags B-/I- of DT, LC, OG, PS, QT, TI, and O), and a blank line.
Spaces are characters too (" \\tO"), so the words are characters, spaces included: joined they
give the sentence back. This is how Hugging Face's `klue`/`ner` dataset reads the file (its
`tokens` and `ner_tags`). A space yields no sub-token, so it has no prediction and is left out of
the evaluation (as with `run_ner.py` on that dataset, and as KLUE's baseline, which drops spaces
before scoring).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from input_pipeline import remote_files
from input_pipeline.tasks.formats import TaskFormat
from input_pipeline.tasks.records import Location, TaggedSentence, TaskDataError

DOCSTART = "-DOCSTART-"


def read_conll(path: str | os.PathLike, task: TaskFormat, word_column: int = 0,
               tag_column: int | None = -1) -> list[TaggedSentence]:
    """The sentences of a CoNLL column file, in file order; each located at its first word's line.

    Raises `TaskDataError` naming the file and line for a line with another number of columns
    than the first word line (a "ragged" line), or without the word or tag column.
    """
    path = os.fspath(path)
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    start = 0
    num_columns = None

    def end_sentence():
        if words:
            sentences.append(TaggedSentence(tuple(words), tuple(tags) if tag_column is not None
                                            else None, Location(path, start)))
            words.clear()
            tags.clear()

    for number, line in _lines(path):
        columns = line.split()
        if not columns or columns[0] == DOCSTART:
            end_sentence()
            continue
        location = Location(path, number)
        if num_columns is None:
            num_columns = len(columns)
            for name, column in (("word", word_column), ("tag", tag_column)):
                if column is not None and not -num_columns <= column < num_columns:
                    raise TaskDataError(location, f"{name} column {column}",
                                        f"the line has only {num_columns} columns: {line!r}.")
        elif len(columns) != num_columns:
            raise TaskDataError(location, None, f"{len(columns)} columns where the file's first "
                                                f"word line has {num_columns}: {line!r}. Every "
                                                f"word line needs the same columns.")
        if not words:
            start = number
        words.append(columns[word_column])
        if tag_column is not None:
            tags.append(task.decode_tag(columns[tag_column], location, f"tag column {tag_column}"))
    end_sentence()
    return sentences


def read_klue_ner(path: str | os.PathLike, task: TaskFormat) -> list[TaggedSentence]:
    """The sentences of a KLUE-NER TSV file, characters as words; each located at its "## <id>"
    line.

    Raises `TaskDataError` naming the file and line for a character line that is not
    "<one character>\\t<tag>", or characters before any "## <id>" line.
    """
    path = os.fspath(path)
    sentences: list[TaggedSentence] = []
    chars: list[str] = []
    tags: list[str] = []
    start = None  # The line of the current sentence's "##" line.

    def end_sentence():
        if chars:
            sentences.append(TaggedSentence(tuple(chars), tuple(tags), Location(path, start)))
            chars.clear()
            tags.clear()

    for number, line in _lines(path):
        if not line.strip():
            end_sentence()
            continue
        if line.startswith("##"):
            # A sentence's id line, or (when no character follows it) a header comment.
            end_sentence()
            start = number
            continue
        location = Location(path, number)
        parts = line.split("\t")
        if len(parts) != 2 or len(parts[0]) != 1 or not parts[1].strip():
            raise TaskDataError(location, None, f"expected one character, a tab and its tag, "
                                                f"found {line!r}.")
        if start is None:
            raise TaskDataError(location, None, "a character before any '## <id>' line; is "
                                                "this a KLUE-NER file?")
        chars.append(parts[0])
        tags.append(task.decode_tag(parts[1], location, "tag"))
    end_sentence()
    return sentences


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, line without its line break), decoding each line on its own so that a line
    that is not UTF-8 is named exactly."""
    with remote_files.open_file(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise TaskDataError(Location(path, number), None, f"not UTF-8 ({e.reason}); "
                                                                  f"convert the file to UTF-8.") from None
            yield number, line.rstrip("\r\n")
