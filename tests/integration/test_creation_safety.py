"""`bert-jax create-data` and `bert-jax vocab` run for real: nothing lost, nothing silently wrong.

* An output directory is never mixed: a second run is refused, or with --overwrite replaces only
  the earlier run's own files once its own set is complete; a kill leaves the earlier output
  readable and a staging directory that the next run removes; the reader reads exactly what the
  manifest lists.
* A corpus of long documents (one book per document) makes shards, the same with any number of
  workers and with Beam, and says how its documents were cut.
* Degenerate input (a vocab of special tokens only, a directory of files without the endings it
  reads, a sequence too short for two sentences) gets one clear line or a warning with numbers.
* `vocab` skips and counts bad input as create-data does, and stops on it with --strict.

The text is the standard library's docstrings, the vocab the real uncased BERT one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import stdlib_docstring_lines

from input_pipeline.reading.reader import count_examples, list_shards
from input_pipeline.shards.directory import STAGING_PREFIX, shard_files

REPO_ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--max-seq-length", "64", "--max-predictions-per-seq", "10", "--dupe-factor", "1"]


def run(command: str, *args: str, wait: bool = True):
    process = [sys.executable, "-m", "bert_jax.cli", command, *map(str, args)]
    if not wait:
        return subprocess.Popen(process, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=REPO_ROOT)
    return subprocess.run(process, capture_output=True, text=True, cwd=REPO_ROOT)


def files(directory) -> dict[str, bytes]:
    return {name: (Path(directory) / name).read_bytes() for name in sorted(os.listdir(directory))
            if (Path(directory) / name).is_file()}


def write_documents(path: Path, sizes, offset: int = 0) -> Path:
    """Documents of real text of about `sizes` characters each, in the original format."""
    lines = stdlib_docstring_lines(20_000)
    at, out = offset, []
    for size in sizes:
        document = []
        while sum(map(len, document)) < size:
            document.append(lines[at % len(lines)])
            at += 1
        out.append("\n".join(document) + "\n\n")
    path.write_text("".join(out))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_documents(tmp_path_factory.mktemp("corpus") / "text.txt", [600] * 200)


def test_a_second_run_is_refused_and_overwrite_replaces_only_the_earlier_runs_files(
        corpus, uncased_vocab_path, tmp_path):
    """The red team's case: shards of 4 then of 2 in one directory were all read (2,261 instances
    for a manifest of 1,092). Now the second run is refused, --overwrite leaves only its own set,
    and the reader reads exactly what the manifest lists."""
    out = tmp_path / "shards"
    common = ["--input", corpus, "--vocab", uncased_vocab_path, "--output-dir", out, *SMALL,
              "--workers", "1"]
    assert run("create-data", *common, "--num-shards", "4").returncode == 0
    before = files(out)
    refused = run("create-data", *common, "--num-shards", "2")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert re.search(r"holds the output of an earlier create-data run \(\d+ instances in 4 shard "
                     r"files.*pass --overwrite", refused.stderr.splitlines()[-1])
    assert files(out) == before
    replaced = run("create-data", *common, "--num-shards", "2", "--seed", "7", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(os.listdir(out)) == ["input_report.json", "manifest.json",
                                       "train-00000-of-00002.tfrecord",
                                       "train-00001-of-00002.tfrecord"]
    assert count_examples(list_shards([str(out)])) == manifest["num_instances"]
    # A file of the user's is never deleted, even with --overwrite: the run is refused, naming it.
    (out / "notes.txt").write_text("mine")
    before = files(out)
    refused = run("create-data", *common, "--overwrite")
    assert refused.returncode == 2 and "notes.txt" in refused.stderr.splitlines()[-1]
    assert files(out) == before


def children(pid: int) -> list[int]:
    """The pids of the processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                # The fields after the command name (which may hold spaces) in parentheses.
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (one that exited, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("earlier, workers", [(False, 2), (True, 1)])
def test_a_killed_run_leaves_the_output_as_it_was_and_the_next_run_removes_its_leftovers(
        uncased_vocab_path, tmp_path, earlier, workers):
    """SIGKILL while blocks are being written (the red team's `.blocks-*` of hundreds of MB that no
    rerun removed): the output is as it was (an earlier run's output still read whole, or empty
    and refused as being written), the worker processes leave, and the same command again removes
    the dead run's staging directory, nothing else, and finishes."""
    text = write_documents(tmp_path / "text.txt", [3_000] * 600)
    out = tmp_path / "shards"
    beside = tmp_path / "beside.txt"  # Next to the output: must survive everything.
    beside.write_text("keep")
    common = ["--input", text, "--vocab", uncased_vocab_path, "--output-dir", out, "--workers", workers,
              "--block-mb", "0.05", "--max-seq-length", "64", "--max-predictions-per-seq", "10"]
    command = [*common, "--dupe-factor", "5", "--overwrite"]
    if earlier:
        assert run("create-data", *common, "--dupe-factor", "1").returncode == 0
    before = files(out) if earlier else {}
    process = run("create-data", *command, wait=False)
    staging = None
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        stagings = [p for p in out.glob(STAGING_PREFIX + "*")] if out.exists() else []
        if stagings and len(list(stagings[0].glob("block-*"))) >= 2:
            staging = stagings[0]
            break
        time.sleep(0.02)
    assert staging is not None, "the run finished before it could be killed: give it more text"
    workers_and_helpers = children(process.pid)  # spawn's workers, and its resource tracker
    assert len(workers_and_helpers) >= (workers if workers > 1 else 0)
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 30
    while any(running(pid) for pid in workers_and_helpers):
        assert time.monotonic() < deadline, "worker processes outlived their parent"
        time.sleep(0.2)
    assert staging.is_dir() and list(staging.glob("block-*"))
    assert staging.name.endswith(f"-{process.pid}")
    assert files(out) == before  # Not a byte of the output changed.
    if earlier:
        assert count_examples(list_shards([str(out)])) == json.loads(
            before["manifest.json"])["num_instances"]
    else:
        with pytest.raises(ValueError, match="is being written by create-data"):
            list_shards([str(out)])
    again = run("create-data", *command)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (f"removing what a killed create-data run (pid {process.pid} on this host, no longer "
            f"running) left in {out}: {staging.name}") in again.stderr
    assert not staging.exists() and not list(out.glob(".*"))
    assert beside.read_text() == "keep" and shard_files(str(out))[1] == []


def test_documents_longer_than_a_block_make_the_same_shards_with_workers_and_beam(
        uncased_vocab_path, tmp_path):
    """The red team's three books of 1.3 MB at --block-mb 1: refused before with "the input holds
    1 non-empty document(s)", now shards, byte-identical for 1 and 2 workers and Beam."""
    books = write_documents(tmp_path / "books.txt", [1_300_000] * 3)
    common = ["--input", books, "--vocab", uncased_vocab_path, "--block-mb", "1", *SMALL,
              "--num-shards", "2"]
    one = run("create-data", *common, "--output-dir", tmp_path / "one", "--workers", "1")
    assert one.returncode == 0, one.stderr[-2000:]
    assert re.search(r"3 document\(s\) hold more than half a block of text \(--block-mb 1: "
                     r"1,000,000 characters\), the longest 1,\d{3},\d{3} characters: each was cut "
                     r"between lines into pieces of at most 500,000 characters.*Raise --block-mb "
                     r"to 2\.\d or more", one.stderr)
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    assert manifest["num_documents"] == 3 and manifest["num_cut_documents"] == 3
    shards = {name: data for name, data in files(tmp_path / "one").items() if name.endswith(".tfrecord")}
    runs = [["--workers", "2"]]
    try:
        import apache_beam  # noqa: F401
        runs.append(["--runner", "beam", "--beam-args", "--runner=DirectRunner"])
    except ImportError:
        pass
    for index, how in enumerate(runs):
        result = run("create-data", *common, "--output-dir", tmp_path / str(index), *how)
        assert result.returncode == 0, result.stderr[-2000:]
        assert {n: d for n, d in files(tmp_path / str(index)).items() if n.endswith(".tfrecord")} == shards
        assert json.loads((tmp_path / str(index) / "manifest.json").read_text()) == manifest


def test_degenerate_inputs_get_one_clear_line_or_a_warning_with_numbers(corpus, uncased_vocab_path,
                                                                        tmp_path):
    specials = tmp_path / "specials.txt"
    specials.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    result = run("create-data", "--input", corpus, "--vocab", specials, "--output-dir",
                 tmp_path / "a", *SMALL)
    assert result.returncode == 2 and "Traceback" not in result.stderr  # was an IndexError
    assert "holds only the 5 special tokens" in result.stderr.splitlines()[-1]

    no_endings = tmp_path / "no_endings"
    no_endings.mkdir()
    (no_endings / "part1").write_text(corpus.read_text())
    (no_endings / "part2.md").write_text(corpus.read_text())
    result = run("create-data", "--input", no_endings, "--vocab", uncased_vocab_path,
                 "--output-dir", tmp_path / "b", *SMALL)
    assert result.returncode == 2 and "none of the inputs exists" not in result.stderr
    assert re.search(r"nothing to read in the inputs \('.*no_endings': a directory holding no file "
                     r"ending in .txt.* but 2 other entries \(part1, part2.md\): name the files, or "
                     r"use a glob such as '.*no_endings/\*'\)", result.stderr.splitlines()[-1])
    result = run("create-data", "--input", no_endings / "*", "--vocab", uncased_vocab_path,
                 "--output-dir", tmp_path / "b", *SMALL)
    assert result.returncode == 0, result.stderr[-2000:]

    result = run("create-data", "--input", corpus, "--vocab", uncased_vocab_path, "--output-dir",
                 tmp_path / "c", "--max-seq-length", "8", "--max-predictions-per-seq", "2",
                 "--dupe-factor", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"\d+ of the \d+ pairs \(\d+%\) take a random next segment, where about half "
                     r"is usual.*a pair holds 5 tokens", result.stderr)


def test_vocab_skips_and_counts_bad_input_or_stops_on_it_with_strict(corpus, tmp_path):
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me.\n".encode("latin-1"))
    (tmp_path / "records.jsonl").write_text('{"text": "Some text here."}\n{"text": null}\nnot json\n')
    inputs = [corpus, tmp_path / "binary.txt", tmp_path / "latin1.txt", tmp_path / "records.jsonl"]
    lenient = run("vocab", "--input", *inputs, "--output", tmp_path / "vocab.txt", "--vocab-size", "300")
    assert lenient.returncode == 0, lenient.stderr
    assert "wrote 300 tokens" in lenient.stdout
    summary = [line for line in lenient.stderr.splitlines() if "input report" in line]
    assert summary and re.search(r"problems: 1 binary, 1 invalid utf8 lines, 1 invalid records, 1 "
                                 r"records without text", summary[0]), lenient.stderr
    strict = run("vocab", "--input", *inputs, "--output", tmp_path / "strict.txt", "--vocab-size",
                 "300", "--strict")
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert re.search(r"binary.txt:1: not text: a NUL byte at byte 0;.*Without strict mode",
                     strict.stderr.splitlines()[-1])
    assert not (tmp_path / "strict.txt").exists()

    (tmp_path / "invisible.txt").write_text("\u200b\u200b\n\n\u200b\n")
    empty = run("vocab", "--input", tmp_path / "invisible.txt", "--output", tmp_path / "v.txt",
                "--vocab-size", "100")
    assert empty.returncode == 2 and "no word to train a vocab on" in empty.stderr.splitlines()[-1]
    assert not (tmp_path / "v.txt").exists()  # was a vocab of the 5 special tokens, exit 0
    large = run("vocab", "--input", corpus, "--output", tmp_path / "v.txt", "--vocab-size", "100000")
    assert large.returncode == 0
    count = len((tmp_path / "v.txt").read_text().splitlines())
    assert f"the vocab holds {count} tokens, not the 100000 of --vocab-size" in large.stderr
