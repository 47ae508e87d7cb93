"""Bad input to `create-data`: counted per file and skipped, or, in strict mode, an error naming
file and line; and a write that fails (a full disk) leaves nothing under a final name.

The reference for "skipped, and the good text all used" is a corpus of only the good text: it must
give byte-identical shards. The text is the standard library's docstrings, the vocab the real
uncased BERT one (`uncased_vocab_path`).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import stdlib_docstring_lines

from input_pipeline.creation.create_pretraining_data import INPUT_REPORT_NAME, CreationConfig, create_pretraining_data
from input_pipeline.text.report import PROBLEMS, FileReport

CONFIG = CreationConfig(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=2, num_shards=2,
                        seed=3)
REPO_ROOT = Path(__file__).resolve().parents[2]
ZERO_WIDTH_SPACE, BELL = "\u200b", "\x07"
# Accents alone: the uncased tokenizer strips them, so a document of these holds no token.
NO_TOKEN_LINE = "\u0301\u0301"


def good_documents(n: int = 40) -> list[list[str]]:
    """`n` documents of 3 to 7 distinct lines of real text (so none is a one-sentence document)."""
    lines = iter(stdlib_docstring_lines(2_000))
    return [[next(lines) for _ in range(3 + i % 5)] for i in range(n)]


def text_of(documents: list[list[str]]) -> str:
    return "".join("\n".join(document) + "\n\n" for document in documents)


def with_invisible_characters(line: str) -> str:
    """`line` with a zero-width space and a bell character before its first space: text the
    tokenizer reads as `line` itself."""
    at = line.find(" ") if " " in line else len(line)
    return line[:at] + ZERO_WIDTH_SPACE + BELL + line[at:]


def shard_bytes(directory) -> dict[str, bytes]:
    return {name: (Path(directory) / name).read_bytes()
            for name in sorted(os.listdir(directory)) if name.endswith(".tfrecord")}


def expected_entry(source, **counts) -> dict:
    first_line = counts.pop("first_line", {})
    return dataclasses.asdict(FileReport(str(source), **counts, first_line=first_line))


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory) -> dict:
    """A directory with good text and one file of each kind of problem, the inputs naming it and
    two paths that match nothing, the report expected for them, and a corpus of only the good
    text in the same order."""
    root = tmp_path_factory.mktemp("bad_corpus")
    corpus = root / "corpus"
    corpus.mkdir()
    docs = good_documents()
    clean: list[list[str]] = []  # What the tokenizer must see, in order.
    expected: list[dict] = []

    def write(name: str, data: str | bytes) -> Path:
        path = corpus / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    path = write("a_good.txt", text_of(docs[:20]))
    clean += docs[:20]
    expected.append(expected_entry(path, lines=text_of(docs[:20]).count("\n"), documents=20))

    expected.append(expected_entry(write("b_empty.txt", ""), empty_file=1))

    # A document without any token (line 3 + len(docs[20])) and two one-sentence documents.
    one, other = docs[30][0], docs[31][0]
    text = text_of([docs[20], [NO_TOKEN_LINE], [one], [other], docs[21]])
    path = write("c_documents.txt", text)
    clean += [docs[20], [one], [other], docs[21]]
    expected.append(expected_entry(path, lines=text.count("\n"), documents=5, empty_documents=1,
                                   one_sentence_documents=2))

    # Line 3 is Latin-1, not UTF-8: skipped, and its document goes on without it.
    raw = (text_of([docs[22][:2]]).rstrip("\n") + "\n").encode() + "Caf\xe9 cr\xe8me.\n".encode(
        "latin-1") + text_of([docs[22][2:], docs[23]]).encode()
    path = write("d_invalid_utf8.txt", raw)
    clean += [docs[22], docs[23]]
    expected.append(expected_entry(path, lines=raw.count(b"\n"), documents=2, invalid_utf8_lines=1,
                                   first_line={"invalid_utf8_lines": 3}))

    # Lines 2 and 3 hold a zero-width space and a bell: kept, and the tokenizer removes them.
    dirty = [docs[24][0]] + [with_invisible_characters(line) for line in docs[24][1:3]] + docs[24][3:]
    text = text_of([dirty, docs[25]])
    path = write("e_control.txt", text)
    clean += [docs[24], docs[25]]
    expected.append(expected_entry(path, lines=text.count("\n"), documents=2,
                                   control_character_lines=2,
                                   first_line={"control_character_lines": 2}))

    # Line 2 is 2 MB of words: over the 1,000,000 characters of the default, skipped.
    long_line = "word " * 400_000
    text = text_of([[docs[26][0], long_line, *docs[26][1:]], docs[27]])
    path = write("f_long_line.txt", text)
    clean += [docs[26], docs[27]]
    expected.append(expected_entry(path, lines=text.count("\n"), documents=2, overlong_lines=1,
                                   first_line={"overlong_lines": 2}))

    # Random bytes (NULs among them), and a gzip file without the .gz name: skipped whole.
    data = random.Random(0).randbytes(4096)
    assert b"\0" in data
    path = write("g_random.txt", data)
    expected.append(expected_entry(path, binary=1, first_line={"binary": data[:data.index(0)].count(b"\n") + 1}))
    path = write("h_gzipped.txt", gzip.compress(text_of(docs[32:34]).encode(), mtime=0))
    expected.append(expected_entry(path, binary=1, first_line={"binary": 1}))

    # JSON Lines: a record without text is an empty document; one whose text field is null, and
    # a line that is not JSON, are skipped.
    records = [{"text": ""}, {"text": None}, {"text": "\n".join(docs[28])}]
    text = "".join(json.dumps(record) + "\n" for record in records) + "{not json\n"
    path = write("i_records.jsonl", text)
    clean += [docs[28]]
    expected.append(expected_entry(path, lines=4, documents=2, empty_documents=1,
                                   records_without_text=1, invalid_records=1,
                                   first_line={"empty_documents": 1, "records_without_text": 2,
                                               "invalid_records": 4}))

    # A file of the directory that is not read (its name), named in the report.
    expected.append(expected_entry(write("j_notes", text_of(docs[34:36])), other_files=1))

    missing, nothing = str(root / "nowhere.txt"), str(root / "*.nothing")
    expected += [expected_entry(missing, missing=1), expected_entry(nothing, missing=1)]
    clean_path = root / "clean.txt"
    clean_path.write_text(text_of(clean), encoding="utf-8")
    return {"inputs": [str(corpus), missing, nothing], "expected": expected, "clean": clean_path,
            "corpus": corpus, "clean_documents": clean}


@pytest.fixture(scope="module")
def created(bad_corpus, uncased_vocab_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    manifest = create_pretraining_data(bad_corpus["inputs"], uncased_vocab_path, out, CONFIG)
    return out, manifest


def test_bad_input_is_skipped_and_the_good_text_all_used(created, bad_corpus, uncased_vocab_path,
                                                         tmp_path):
    out, manifest = created
    clean = create_pretraining_data([bad_corpus["clean"]], uncased_vocab_path, tmp_path, CONFIG)
    assert shard_bytes(out) == shard_bytes(tmp_path)
    for key in ("num_instances", "num_documents", "num_sentences", "shards", "statistics"):
        assert manifest[key] == clean[key], key
    assert manifest["num_documents"] == len(bad_corpus["clean_documents"])
    # The sources read are the existing files, in order; the missing paths, and the file that
    # is not read, are in the report.
    assert manifest["inputs"] == [entry["source"] for entry in bad_corpus["expected"][:-3]]


def test_report_counts_each_problem_per_file(created, bad_corpus):
    out, manifest = created
    report = json.loads((out / INPUT_REPORT_NAME).read_text())
    assert report["files"] == bad_corpus["expected"]
    assert report["strict"] is False and report["max_line_chars"] == 1_000_000
    assert set(report["problems"]) == set(PROBLEMS)
    totals = report["totals"]
    assert totals == {"files": 9, "lines": sum(e["lines"] for e in bad_corpus["expected"]),
                      "documents": 33, "missing": 2, "unreadable": 0, "other_files": 1, "binary": 2,
                      "empty_file": 1, "invalid_utf8_lines": 1, "invalid_records": 1,
                      "records_without_text": 1, "overlong_lines": 1,
                      "control_character_lines": 2, "empty_documents": 2,
                      "one_sentence_documents": 2}
    # Documents read, less the empty ones, are the documents the shards were made from.
    assert totals["documents"] - totals["empty_documents"] == manifest["num_documents"]
    assert sorted(os.listdir(out)) == [INPUT_REPORT_NAME, "manifest.json",
                                       "train-00000-of-00002.tfrecord",
                                       "train-00001-of-00002.tfrecord"]


def test_report_is_logged_as_a_table_of_the_files_with_problems(bad_corpus, uncased_vocab_path,
                                                                 tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="input_pipeline.creation.create_pretraining_data"):
        create_pretraining_data(bad_corpus["inputs"], uncased_vocab_path, tmp_path,
                                dataclasses.replace(CONFIG, dupe_factor=1))
    [record] = [r for r in caplog.records if "input report" in r.getMessage()]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert str(tmp_path / INPUT_REPORT_NAME) in message
    rows = {line.split()[0]: line.split()[1:] for line in message.splitlines()[2:]}
    problem_files = [e["source"] for e in bad_corpus["expected"] if e["source"].endswith(
        ("b_empty.txt", "c_documents.txt", "d_invalid_utf8.txt", "e_control.txt",
         "f_long_line.txt", "g_random.txt", "h_gzipped.txt", "i_records.jsonl", "j_notes",
         "nowhere.txt", "*.nothing"))]
    assert [source for source in rows if source != "total"] == problem_files  # not a_good.txt
    header = message.splitlines()[1].split()
    assert header[:3] == ["file", "lines", "documents"] and "unreadable" not in header
    invalid = rows[str(bad_corpus["corpus"] / "d_invalid_utf8.txt")]
    assert invalid[header.index("invalid_utf8_lines") - 1] == "1"


def test_workers_merge_their_counts_and_write_the_same_bytes(created, bad_corpus,
                                                             uncased_vocab_path, tmp_path):
    out, manifest = created
    assert create_pretraining_data(bad_corpus["inputs"], uncased_vocab_path, tmp_path, CONFIG,
                                   num_workers=2) == manifest
    assert shard_bytes(tmp_path) == shard_bytes(out)
    assert (tmp_path / INPUT_REPORT_NAME).read_bytes() == (out / INPUT_REPORT_NAME).read_bytes()


def test_beam_runner_writes_the_same_report(created, bad_corpus, uncased_vocab_path, tmp_path):
    pytest.importorskip("apache_beam")
    from input_pipeline.creation.beam_pipeline import run_beam_pipeline

    out, manifest = created
    assert run_beam_pipeline(bad_corpus["inputs"], uncased_vocab_path, str(tmp_path), CONFIG,
                             pipeline_args=["--runner=DirectRunner"]) == manifest
    assert shard_bytes(tmp_path) == shard_bytes(out)
    assert (tmp_path / INPUT_REPORT_NAME).read_bytes() == (out / INPUT_REPORT_NAME).read_bytes()


# --- Strict mode: the first problem is an error naming file and line. ------------------------------

def _strict_case(kind: str, directory: Path) -> tuple[list[str], str, type, CreationConfig]:
    """Inputs of good text and one problem of `kind`, the start of the error expected for it,
    its type, and the config."""
    docs = good_documents(6)
    good = directory / "good.txt"
    good.write_text(text_of(docs[:4]), encoding="utf-8")
    config = dataclasses.replace(CONFIG, strict=True)
    name = {"unreadable": "bad.txt.gz", "empty_record": "bad.jsonl", "invalid_record": "bad.jsonl",
            "record_without_text": "bad.jsonl"}.get(kind, "bad.txt")
    bad = directory / name
    start = docs[4][0] + "\n"
    if kind == "other_file":  # The input is a directory holding a file it does not read.
        corpus = directory / "corpus"
        corpus.mkdir()
        good.rename(corpus / good.name)
        (corpus / "bad").write_text(text_of(docs[4:]), encoding="utf-8")
        return ([str(corpus)], f"{corpus / 'bad'}: its name does not end in .txt", ValueError,
                config)
    if kind == "missing":
        return [str(good), str(bad)], f"{bad}: no such file or directory", FileNotFoundError, config
    if kind == "empty_file":
        bad.write_bytes(b"")
        expected = f"{bad}: empty file"
    elif kind == "binary":
        bad.write_bytes(start.encode() + b"\x00\x01\x02\xff" * 100)
        expected = f"{bad}:2: not text: a NUL byte at byte {len(start.encode())}"
    elif kind == "unreadable":
        compressed = gzip.compress(text_of(docs * 50).encode())
        bad.write_bytes(compressed[:len(compressed) // 2])
        expected = f"{bad}: not a complete gzip file"
    elif kind == "invalid_utf8":
        bad.write_bytes(text_of(docs[4:5]).encode() + b"caf\xe9\n")
        expected = f"{bad}:{len(docs[4]) + 2}: invalid UTF-8 (invalid continuation byte"
    elif kind == "overlong_chars":
        bad.write_text(start + "é" * 2_000 + "\n", encoding="utf-8")  # 4,000 bytes
        config = dataclasses.replace(config, max_line_chars=1_000)
        expected = f"{bad}:2: a line of 2,000 characters (max_line_chars=1,000)"
    elif kind == "overlong_bytes":
        bad.write_text(start + "x" * 5_000 + "\n" + start, encoding="utf-8")
        config = dataclasses.replace(config, max_line_chars=1_000)
        expected = f"{bad}:2: a line of more than 4,000 bytes (max_line_chars=1,000)"
    elif kind == "control_characters":
        bad.write_text(start + "Tab\tis fine" + ZERO_WIDTH_SPACE + " but not this.\n",
                       encoding="utf-8")
        expected = f"{bad}:2: control or zero-width character U+200B at column 12"
    elif kind == "empty_document":
        bad.write_text(text_of([docs[4], [NO_TOKEN_LINE], docs[5]]), encoding="utf-8")
        expected = f"{bad}:{len(docs[4]) + 2}: document without any token"
    elif kind == "empty_record":
        bad.write_text(json.dumps({"text": "\n".join(docs[4])}) + "\n"
                       + json.dumps({"text": " \n "}) + "\n")
        expected = f"{bad}:2: document without any token"
    elif kind in ("invalid_record", "record_without_text"):
        bad.write_text(json.dumps({"text": "\n".join(docs[4])}) + "\n"
                       + ("{not json" if kind == "invalid_record" else '{"text": null}') + "\n")
        expected = f"{bad}:2: " + ("not valid JSON" if kind == "invalid_record" else
                                   "field 'text' is null, not a string of text")
    elif kind == "one_sentence_document":
        bad.write_text(text_of([docs[4], docs[5][:1]]), encoding="utf-8")
        expected = f"{bad}:{len(docs[4]) + 2}: document of a single sentence"
    else:
        raise AssertionError(kind)
    return [str(good), str(bad)], expected, ValueError, config


# Each case and the kind of problem (the report's field) it is.
STRICT_CASES = {"missing": "missing", "empty_file": "empty_file", "binary": "binary",
                "unreadable": "unreadable", "invalid_utf8": "invalid_utf8_lines",
                "overlong_chars": "overlong_lines", "overlong_bytes": "overlong_lines",
                "control_characters": "control_character_lines",
                "empty_document": "empty_documents", "empty_record": "empty_documents",
                "one_sentence_document": "one_sentence_documents", "other_file": "other_files",
                "invalid_record": "invalid_records", "record_without_text": "records_without_text"}


@pytest.mark.parametrize("kind", list(STRICT_CASES))
def test_strict_mode_names_file_and_line(kind, uncased_vocab_path, tmp_path):
    inputs, expected, error, config = _strict_case(kind, tmp_path)
    out = tmp_path / "out"
    with pytest.raises(error) as raised:
        create_pretraining_data(inputs, uncased_vocab_path, out, config)
    message = str(raised.value)
    assert message.startswith(expected), message
    assert "Without strict mode (--strict)" in message  # and what to do, from PROBLEMS
    assert not out.exists() or os.listdir(out) == []
    # Without strict mode the same input makes shards.
    lenient = dataclasses.replace(config, strict=False)
    manifest = create_pretraining_data(inputs, uncased_vocab_path, out, lenient)
    report = json.loads((out / INPUT_REPORT_NAME).read_text())
    assert manifest["num_instances"] > 0 and report["totals"][STRICT_CASES[kind]] == 1


def test_no_input_at_all_is_still_an_error(tmp_path, uncased_vocab_path):
    with pytest.raises(FileNotFoundError, match="none of the inputs exists.*'.*a.txt'.*'.*b.txt'"):
        create_pretraining_data([tmp_path / "a.txt", tmp_path / "b.txt"], uncased_vocab_path,
                                tmp_path / "out", CONFIG)


def test_too_little_good_text_says_what_the_report_found(tmp_path, uncased_vocab_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)))
    (tmp_path / "one.txt").write_text("A single document.\nOf two sentences.\n")
    with pytest.raises(ValueError, match=r"holds 1 non-empty document.*input report: 3 file\(s\).*"
                                         r"1 binary, 1 empty file"):
        create_pretraining_data([tmp_path / "*.txt"], uncased_vocab_path, tmp_path / "out", CONFIG)
    assert not os.listdir(tmp_path / "out")


def _run_cli(args: list[str], max_file_bytes: int | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "bert_jax.cli", "create-data", *args]
    if max_file_bytes is not None:  # a stand-in for a full disk
        command = [sys.executable, str(REPO_ROOT / "tests" / "support" / "file_size_limit.py"), str(max_file_bytes),
                   *command]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)


def test_cli_strict_and_max_line_chars(tmp_path, uncased_vocab_path):
    inputs, expected, _, _ = _strict_case("overlong_chars", tmp_path)
    common = ["--input", *inputs, "--vocab", uncased_vocab_path, "--output-dir", str(tmp_path / "out"),
              "--max-seq-length", "64", "--max-predictions-per-seq", "10", "--dupe-factor", "1",
              "--workers", "1", "--max-line-chars", "1000"]
    lenient = _run_cli(common)
    assert lenient.returncode == 0, lenient.stderr
    assert "overlong_lines" in lenient.stderr and str(inputs[1]) in lenient.stderr  # the table
    report = json.loads((tmp_path / "out" / INPUT_REPORT_NAME).read_text())
    assert report["totals"]["overlong_lines"] == 1 and report["max_line_chars"] == 1000
    before = shard_bytes(tmp_path / "out")
    strict = _run_cli(common + ["--strict", "--overwrite"])
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert expected in strict.stderr.strip().splitlines()[-1]
    assert shard_bytes(tmp_path / "out") == before  # The failed run replaced nothing.


# --- A full disk: a clear error, and nothing under a final name. ----------------------------------

@pytest.fixture(scope="module")
def disk_corpus(tmp_path_factory, uncased_vocab_path) -> dict:
    """About 100 kB of text in about ten blocks, and the size of the one shard it makes."""
    root = tmp_path_factory.mktemp("disk")
    text = root / "text.txt"
    lines = stdlib_docstring_lines(2_000)
    text.write_text(text_of([list(lines[i:i + 5]) for i in range(0, len(lines), 5)]))
    args = ["--input", str(text), "--vocab", uncased_vocab_path, "--max-seq-length", "64",
            "--max-predictions-per-seq", "10", "--dupe-factor", "1", "--num-shards", "1",
            "--block-mb", "0.01"]
    config = CreationConfig(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=1,
                            num_shards=1, block_chars=10_000)
    manifest = create_pretraining_data([text], uncased_vocab_path, root / "unlimited", config)
    shard = root / "unlimited" / manifest["shards"][0]["file"]
    assert manifest["num_blocks"] >= 8  # So that each block's file is far under half the shard.
    return {"args": args, "shard_size": shard.stat().st_size, "output": root / "unlimited"}


@pytest.mark.parametrize("stage, runner", [("shard", "1"), ("block", "2"), ("shard", "beam")])
def test_a_failed_write_is_clear_and_leaves_nothing_behind(stage, runner, disk_corpus, tmp_path):
    """One message, however many workers fail (each worker of a full disk does), and the output
    directory as it was: empty, or an earlier run's output that --overwrite was to replace."""
    if runner == "beam":
        pytest.importorskip("apache_beam")
    out = tmp_path / "out"
    earlier = {}
    if stage == "block":  # An earlier run's output must stay as it was.
        shutil.copytree(disk_corpus["output"], out)
        earlier = {name: (out / name).read_bytes() for name in os.listdir(out)}
    # Half a shard fails the shard's write; 4 kB fails the first block's, in a worker process.
    max_bytes = disk_corpus["shard_size"] // 2 if stage == "shard" else 4096
    how = (["--runner", "beam", "--beam-args", "--runner=DirectRunner"] if runner == "beam" else
           ["--workers", runner])
    result = _run_cli(disk_corpus["args"] + ["--output-dir", str(out), "--overwrite", *how],
                      max_file_bytes=max_bytes)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.count("File too large") == 1, \
        result.stderr
    last = result.stderr.strip().splitlines()[-1]
    if stage == "shard":
        assert f"writing shard {out / 'train-00000-of-00001.tfrecord'} failed: File too large" in last
    else:
        assert re.search(r"writing the records of block \d+ to .*block-\d+ failed: File too large",
                         last), last
    assert "Free disk space" in last
    # No shard, report or manifest, no temporary file or staging directory: as it was.
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == earlier
