"""Tests for reading training text (`input_pipeline/text_sources.py`).

References: Google's own reading loop (`create_training_instances` in the `bert-tensorflow`
package's `create_pretraining_data.py`), gzip and json from the standard library, and the TFDS
builders of `wikipedia` and `wiki40b` (their real feature specs, mocked offline by
`tfds.testing.mock_data`, so nothing is downloaded).
"""

from __future__ import annotations

import gzip
import json
import os
import re

import pytest

from input_pipeline.text.report import InputReport
from input_pipeline.text.sources import (
    TEXT_FORMATS,
    check_text_format,
    document_sentences,
    expand_inputs,
    iter_document_pieces,
    iter_documents,
    iter_lines,
    wiki40b_paragraphs,
)
from input_pipeline.text.tfds_spec import parse_tfds_spec


def _write(path, text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def _docs(source, **kwargs) -> list[list[str]]:
    return list(iter_documents(str(source), **kwargs))


# --- expand_inputs. --------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    """A directory with text of every kind, a file of another kind and a subdirectory."""
    for name in ("b.txt", "a.txt", "c.txt.gz", "d.jsonl", "e.jsonl.gz", "notes.md", "sub/f.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        _write(tmp_path / name, "x\n" if "jsonl" not in name else '{"text": "x"}\n')
    return tmp_path


def test_expand_directory_glob_file_and_tfds(tree):
    d = str(tree)
    in_dir = [os.path.join(d, n) for n in ("a.txt", "b.txt", "c.txt.gz", "d.jsonl", "e.jsonl.gz")]
    # A directory: its text files sorted, not notes.md, not the subdirectory's.
    assert expand_inputs([d]) == in_dir
    # A glob: every match sorted, whatever the ending; ** reaches subdirectories.
    assert expand_inputs([os.path.join(d, "*.txt")]) == in_dir[:2]
    assert expand_inputs([os.path.join(d, "**", "f.txt")]) == [os.path.join(d, "sub", "f.txt")]
    assert expand_inputs([os.path.join(d, "*.md")]) == [os.path.join(d, "notes.md")]
    # A glob matching a directory contributes the directory's files.
    assert expand_inputs([os.path.join(d, "su?")]) == [os.path.join(d, "sub", "f.txt")]
    # Plain files keep their order; tfds specs pass through unchanged; a file reached twice (here by
    # a glob after its plain path) is read once.
    specs = ["tfds:wikipedia/20230601.en:train", "tfds:wiki40b/ko"]
    assert expand_inputs([in_dir[1], specs[0], os.path.join(d, "*.txt"), specs[1]]) == [
        in_dir[1], specs[0], in_dir[0], specs[1]]
    # One string is one input, not a sequence of one-character inputs.
    assert expand_inputs(in_dir[0]) == [in_dir[0]]


@pytest.mark.parametrize("pattern", ["missing.txt", "*.nothing", "empty_dir"])
def test_expand_names_a_pattern_that_matches_nothing(tree, pattern):
    (tree / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        expand_inputs([str(tree / "a.txt"), str(tree / pattern)])
    message = str(error.value)
    assert pattern in message and "tfds:" in message and "glob" in message


@pytest.mark.parametrize("spec, name, split", [
    ("tfds:wiki40b/ko", "wiki40b/ko", "train"),
    ("tfds:wikipedia/20230601.en:train", "wikipedia/20230601.en", "train"),
    ("tfds:wiki40b/ko:validation", "wiki40b/ko", "validation"),
    ("tfds:wikipedia/20230601.en:train[:10%]", "wikipedia/20230601.en", "train[:10%]"),
    ("tfds:wiki40b/ko:1.3.0:test", "wiki40b/ko:1.3.0", "test"),
    ("tfds:wiki40b/ko:1.3.0", "wiki40b/ko:1.3.0", "train"),
])
def test_tfds_specs(spec, name, split):
    parsed = parse_tfds_spec(spec)
    assert (parsed.name, parsed.split) == (name, split)
    assert parsed.dataset == name.split("/")[0]


@pytest.mark.parametrize("spec", ["tfds:", "tfds::train", "tfds:wiki40b/ko:train extra"])
def test_malformed_tfds_spec(spec):
    with pytest.raises(ValueError, match="tfds:NAME"):
        expand_inputs([spec])


def test_text_format_is_checked():
    assert TEXT_FORMATS == ("lines", "paragraphs")
    for text_format in TEXT_FORMATS:
        assert check_text_format(text_format) == text_format
    with pytest.raises(ValueError, match="'sentences'.*'lines'.*'paragraphs'"):
        iter_documents("any.txt", text_format="sentences")  # Refused before the file is opened.
    with pytest.raises(ValueError, match="'lines'"):
        document_sentences(["a"], "Lines")


# --- Plain and gzipped text. ----------------------------------------------------------------------

def _google_documents(paths) -> list[list[str]]:
    """The documents Google's `create_training_instances` reads from `paths`, with each line as its
    own single token (so the "tokens" are the stripped lines)."""
    create_pretraining_data = pytest.importorskip("bert.create_pretraining_data")

    class LineTokenizer:
        vocab: dict = {}

        def tokenize(self, line):
            return [line] if line else []

    class Captured(Exception):
        pass

    class CapturingRng:
        def shuffle(self, documents):  # Called once all documents are read, before pairing.
            self.documents = [[tokens[0] for tokens in doc] for doc in documents]
            raise Captured

    rng = CapturingRng()
    with pytest.raises(Captured):
        create_pretraining_data.create_training_instances(
            [str(p) for p in paths], LineTokenizer(), 128, 1, 0.1, 0.15, 20, rng)
    return rng.documents


# Blank lines, whitespace-only lines, runs of blank lines, leading blank lines, CR LF endings,
# stray spaces and tabs, non-ASCII text. Each file ends with a blank line: see the next test for
# the one place we differ from Google's loop.
GOOGLE_FORMAT_FILES = [
    "\n\nFirst sentence.\n  Second one, indented.  \n\n\n\nNew document.\n \t \nThird doc.\r\n"
    "Still third.\r\n\r\n",
    "Ünïcödé line.\n대한민국은 민주공화국이다.\n\nlast\n\n",
]


def test_documents_match_googles_reader(tmp_path):
    paths = [_write(tmp_path / f"{i}.txt", text) for i, text in enumerate(GOOGLE_FORMAT_FILES)]
    expected = _google_documents(paths)
    assert expected == [["First sentence.", "Second one, indented."], ["New document."],
                        ["Third doc.", "Still third."],
                        ["Ünïcödé line.", "대한민국은 민주공화국이다."], ["last"]]
    ours = [doc for path in paths for doc in _docs(path)]
    assert ours == expected
    # The same text gzipped reads the same, and "paragraphs" groups lines the same way.
    gz = [_write(tmp_path / f"{i}.txt.gz", text) for i, text in enumerate(GOOGLE_FORMAT_FILES)]
    assert [doc for path in gz for doc in _docs(path)] == expected
    assert [doc for path in paths for doc in _docs(path, text_format="paragraphs")] == expected


def test_end_of_file_ends_a_document(tmp_path):
    # Google's loop carries the last document of a file without a final blank line on into the
    # next file; ours ends it at the end of the file, as docs/pretraining_data.md says.
    first = _write(tmp_path / "1.txt", "a\nb\n\nc")
    second = _write(tmp_path / "2.txt", "d\ne\n")
    assert _google_documents([first, second]) == [["a", "b"], ["c", "d", "e"]]
    assert _docs(first) + _docs(second) == [["a", "b"], ["c"], ["d", "e"]]


def test_byte_order_mark_and_empty_files(tmp_path):
    assert _docs(_write(tmp_path / "bom.txt", "\ufeffhello\n")) == [["hello"]]
    assert _docs(_write(tmp_path / "empty.txt", "")) == []
    assert _docs(_write(tmp_path / "blank.txt.gz", "\n \n\n")) == []


@pytest.mark.parametrize("name", ["bad.txt", "bad.txt.gz", "bad.jsonl"])
def test_invalid_utf8_names_file_and_line(tmp_path, name):
    if "jsonl" in name:
        lines = [b'{"text": "fine"}', b'{"text": "also fine"}', b'{"text": "caf\xe9"}']
    else:
        lines = [b"fine", b"", b"caf\xe9 latin-1"]
    path = _write(tmp_path / name, b"\n".join(lines) + b"\n")
    reader = iter_lines(path)
    assert next(reader) == "fine"  # Streamed: the bad line is not reached yet.
    with pytest.raises(ValueError, match=rf"{name}:3: invalid UTF-8.*convert the file to UTF-8"):
        list(reader)


def test_truncated_gzip_is_reported(tmp_path):
    path = tmp_path / "cut.txt.gz"
    compressed = gzip.compress(b"".join(b"line %d\n" % i for i in range(1000)))
    path.write_bytes(compressed[:len(compressed) // 2])
    with pytest.raises(ValueError, match="cut.txt.gz: not a complete gzip file"):
        list(iter_lines(str(path)))


def test_lines_are_streamed_without_grouping(tmp_path):
    # A file with no blank line is a single document, but iter_lines never builds it.
    path = _write(tmp_path / "one_doc.txt", "".join(f"sentence {i}\n" for i in range(50_000)))
    lines = iter_lines(path)
    assert [next(lines) for _ in range(3)] == ["sentence 0", "sentence 1", "sentence 2"]
    assert sum(1 for _ in lines) == 49_997


# --- JSON Lines. -----------------------------------------------------------------------------------

def test_jsonl_one_document_per_record(tmp_path):
    records = [{"text": "Para one. Sentence two.\n\nPara two.\r\n", "id": 1},
               {"text": "   \n"},  # Nothing but whitespace: no document.
               {"text": "단락 하나.\n단락 둘.", "title": "ignored"}]
    body = "\n".join(json.dumps(r, ensure_ascii=False) for r in records[:2]) + "\n\n" \
        + json.dumps(records[2], ensure_ascii=False) + "\n"
    expected = [["Para one. Sentence two.", "Para two."], ["단락 하나.", "단락 둘."]]
    for name in ("docs.jsonl", "docs.jsonl.gz"):
        path = _write(tmp_path / name, body)
        assert _docs(path) == expected
        assert _docs(path, text_format="paragraphs") == expected
        assert list(iter_lines(path)) == [line for doc in expected for line in doc]
    other = _write(tmp_path / "body.jsonl", json.dumps({"body": "x\ny"}) + "\n")
    assert _docs(other, text_field="body") == [["x", "y"]]


@pytest.mark.parametrize("line, kind, match", [
    ('{"txt": "typo"}', "records_without_text",
     r"bad.jsonl:2: no field 'text' \(found \['txt'\]\); pass --text-field"),
    ('{"text": null}', "records_without_text",
     r"bad.jsonl:2: field 'text' is null, not a string of text; pass --text-field"),
    ('{"text": 42}', "records_without_text", r"bad.jsonl:2: field 'text' is a number, not a string"),
    ('{"text": "unterminated', "invalid_records", r"bad.jsonl:2: not valid JSON.*JSON object"),
    ('["text"]', "invalid_records", r"bad.jsonl:2: an array of JSON, not an object"),
])
def test_bad_jsonl_records_are_skipped_and_counted_or_strict_errors(tmp_path, line, kind, match):
    path = _write(tmp_path / "bad.jsonl", '{"text": "good"}\n' + line + '\n{"text": "after"}\n')
    report = InputReport()
    assert _docs(path, report=report) == [["good"], ["after"]]
    assert report.files[path].problems == {kind: 1} and report.files[path].first_line == {kind: 2}
    for strict in (InputReport(strict=True), None):  # None: the API without a report.
        with pytest.raises(ValueError, match=match):
            _docs(path, report=strict)
    with pytest.raises(ValueError, match="Without strict mode"):
        list(iter_lines(path, report=InputReport(strict=True)))


def test_a_directory_names_the_files_it_does_not_read(tree):
    report = InputReport()
    expand_inputs([str(tree)], report)
    others = {entry.source: entry.first_line for entry in report.files.values() if entry.other_files}
    assert list(others) == [str(tree / "notes.md"), str(tree / "sub")]
    with pytest.raises(ValueError, match=r"notes.md: its name does not end in .txt.*Without strict"):
        expand_inputs([str(tree)], InputReport(strict=True))
    # A glob names exactly what to read: nothing is left out there.
    report = InputReport()
    expand_inputs([str(tree / "*.md")], report)
    assert not report.problem_files()


def test_a_directory_of_other_files_says_what_it_holds(tmp_path):
    for name in ("a", "b.md"):
        _write(tmp_path / name, "text\n")
    for report in (InputReport(), None):
        with pytest.raises(FileNotFoundError) as error:
            expand_inputs([str(tmp_path)], report)
        message = str(error.value)
        assert "none of the inputs exists" not in message
        assert re.search(r"a directory holding no file ending in .txt.* but 2 other entries "
                         r"\(a, b.md\): name the files, or use a glob such as '.*/\*'", message)


@pytest.mark.parametrize("max_chars", [1, 10, 25, 1000])
def test_long_documents_are_cut_between_lines(tmp_path, max_chars):
    lines = [f"line {i}" + "x" * (i % 7) for i in range(40)]
    path = _write(tmp_path / "a.txt", "\n".join(lines[:30]) + "\n\n" + "\n".join(lines[30:]) + "\n")
    report = InputReport()
    pieces = list(iter_document_pieces(path, max_chars=max_chars, report=report))
    # The pieces put back together are the documents, each piece at most max_chars (or one line).
    documents = []
    for piece in pieces:
        assert sum(map(len, piece.lines)) <= max_chars or len(piece.lines) == 1
        if piece.starts:
            documents.append([])
        documents[-1] += piece.lines
        assert piece.lines[0] == lines[piece.line - 1 - (piece.line > 31)]  # its first line
    assert documents == [lines[:30], lines[30:]] == _docs(path)
    assert [piece.ends for piece in pieces].count(True) == 2 and pieces[-1].ends
    assert report.files[path].documents == 2


# --- Sentences of a document. ----------------------------------------------------------------------

def test_document_sentences():
    lines = ["First sentence. Second sentence.", "대한민국은 민주공화국이다. 주권은 국민에게 있다."]
    assert document_sentences(lines, "lines") == lines
    assert document_sentences(lines, "paragraphs") == [
        "First sentence.", "Second sentence.", "대한민국은 민주공화국이다.", "주권은 국민에게 있다."]
    # Forcing English rules on Korean: no capital follows the period, so no split.
    assert document_sentences(lines[1:], "paragraphs", language="en") == lines[1:]


# --- TFDS, mocked offline. -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tfds():
    return pytest.importorskip("tensorflow_datasets")


def _mock_examples(tfds, examples):
    """`tfds.testing.mock_data` serving `examples` (dicts of str) for any split; records the
    builders and splits asked for."""
    import tensorflow as tf

    calls = []

    def as_dataset(self, split, **kwargs):
        calls.append((self.name, self.builder_config.name, str(split)))
        columns = {key: [example[key] for example in examples] for key in examples[0]}
        return tf.data.Dataset.from_tensor_slices(columns)

    return tfds.testing.mock_data(as_dataset_fn=as_dataset), calls


# The shape of wiki40b text, per its TFDS catalog page: markers on lines of their own, the title
# and headings on the line after their marker, a paragraph on one line with _NEWLINE_ breaks.
WIKI40B_KO = ("\n_START_ARTICLE_\n대한민국 헌법\n_START_SECTION_\n전문\n_START_PARAGRAPH_\n"
              "유구한 역사와 전통에 빛나는 우리 대한국민은 헌법을 개정한다._NEWLINE_1987년 10월 29일"
              "\n_START_SECTION_\n제1장 총강\n_START_PARAGRAPH_\n대한민국은 민주공화국이다. "
              "대한민국의 주권은 국민에게 있다._NEWLINE__NEWLINE_국가는 재외국민을 보호한다.\n")


def test_wiki40b_markers():
    assert list(wiki40b_paragraphs(WIKI40B_KO)) == [
        "유구한 역사와 전통에 빛나는 우리 대한국민은 헌법을 개정한다.", "1987년 10월 29일",
        "대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있다.", "국가는 재외국민을 보호한다."]
    # Text without markers is kept line by line.
    assert list(wiki40b_paragraphs("plain\n\ntext")) == ["plain", "text"]


def test_tfds_wiki40b_ko(tfds):
    mock, calls = _mock_examples(tfds, [
        {"wikidata_id": "Q1", "text": WIKI40B_KO, "version_id": "1"},
        {"wikidata_id": "Q2", "text": "\n_START_ARTICLE_\n제목뿐\n", "version_id": "1"},
        {"wikidata_id": "Q3", "text": "\n_START_ARTICLE_\n서울\n_START_PARAGRAPH_\n서울은 수도이다.",
         "version_id": "1"}])
    with mock:
        docs = list(iter_documents("tfds:wiki40b/ko:validation", text_format="paragraphs"))
    assert calls == [("wiki40b", "ko", "validation")]
    # One document per article; the article with only a title has no text and is dropped.
    assert docs == [list(wiki40b_paragraphs(WIKI40B_KO)), ["서울은 수도이다."]]
    assert document_sentences(docs[0], "paragraphs")[2:4] == [
        "대한민국은 민주공화국이다.", "대한민국의 주권은 국민에게 있다."]


def test_tfds_wikipedia(tfds):
    text = ("Anarchism is a political philosophy. It is sceptical of authority.\n"
            "History\nThe earliest anarchist themes appear in the 6th century BC.\n\n"
            "See also\nLibertarianism.")
    mock, calls = _mock_examples(tfds, [{"title": "Anarchism", "text": text},
                                        {"title": "Empty", "text": ""}])
    with mock:
        docs = list(iter_documents("tfds:wikipedia/20230601.en:train[:10%]",
                                   text_format="paragraphs"))
        lines = list(iter_lines("tfds:wikipedia/20230601.en"))
    assert calls == [("wikipedia", "20230601.en", "train[:10%]"),
                     ("wikipedia", "20230601.en", "train")]
    expected = ["Anarchism is a political philosophy. It is sceptical of authority.", "History",
                "The earliest anarchist themes appear in the 6th century BC.", "See also",
                "Libertarianism."]
    assert docs == [expected] and lines == expected
    assert document_sentences(docs[0], "paragraphs")[:2] == [
        "Anarchism is a political philosophy.", "It is sceptical of authority."]


@pytest.mark.parametrize("name", ["wikipedia/20230601.en", "wiki40b/ko"])
def test_tfds_real_features_random_examples(tfds, name):
    # Without our own examples, the mock draws random ones from the builder's real features: this
    # checks that "text" is the field these builders define.
    with tfds.testing.mock_data(num_examples=4):
        docs = list(iter_documents(f"tfds:{name}", text_format="paragraphs"))
        with pytest.raises(ValueError, match=r"example 0: no field 'body' \(found \[.*'text'"):
            list(iter_documents(f"tfds:{name}", text_format="paragraphs", text_field="body"))
    assert 1 <= len(docs) <= 4 and all(line and line == line.strip() for d in docs for line in d)


def test_tfds_paragraph_datasets_refuse_lines_format():
    # Checked on the spec alone, before TFDS is even imported.
    with pytest.raises(ValueError, match="tfds:wiki40b/ko: wiki40b text is one paragraph per line.*"
                                         "text_format='paragraphs'"):
        iter_documents("tfds:wiki40b/ko", text_format="lines")


def test_tfds_not_prepared(tfds, tmp_path):
    match = rf"tfds:wiki40b/ko: TFDS dataset 'wiki40b/ko' is not prepared in {tmp_path}.*tfds build"
    with pytest.raises(FileNotFoundError, match=match):
        list(iter_lines("tfds:wiki40b/ko", tfds_data_dir=str(tmp_path)))
