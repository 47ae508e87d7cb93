"""create-data's output directory (`input_pipeline.shards.directory`): what it refuses, what it
replaces, what it removes (only its own files, and only dead runs' leftovers), and what readers see
while it is written.

The earlier outputs are real create-data runs on a few documents of the standard library's
docstrings (`create_pretraining_data`), or directories laid out by hand where the point is a name.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from conftest import stdlib_docstring_lines

from input_pipeline import remote_files
from input_pipeline.creation.create_pretraining_data import CreationConfig, create_pretraining_data
from input_pipeline.shards.directory import (
    MANIFEST_NAME,
    StagedOutput,
    listed_only,
    shard_files,
    staging_name,
)

CONFIG = CreationConfig(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=1, num_shards=3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    lines = stdlib_docstring_lines(400)
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    path.write_text("".join("\n".join(lines[i:i + 5]) + "\n\n" for i in range(0, 400, 5)))
    return str(path)


def files(directory) -> dict[str, bytes]:
    """Every file under `directory` (relative path -> bytes)."""
    out = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = f.read()
    return out


def dead_pid() -> int:
    """A pid that no process has now."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_an_earlier_output_is_refused_without_overwrite_and_replaced_with_it(corpus, uncased_vocab_path,
                                                                            tmp_path):
    out = tmp_path / "out"
    create_pretraining_data([corpus], uncased_vocab_path, out, CONFIG)
    before = files(out)
    with pytest.raises(FileExistsError, match=r"holds the output of an earlier create-data run \(\d+ "
                                              r"instances in 3 shard files.*pass --overwrite"):
        create_pretraining_data([corpus], uncased_vocab_path, out, CONFIG)
    assert files(out) == before
    # Replaced by a set of two shards: the earlier run's three are gone, nothing else is left.
    two = CreationConfig(**{**CONFIG.__dict__, "num_shards": 2, "seed": 5})
    manifest = create_pretraining_data([corpus], uncased_vocab_path, out, two, overwrite=True)
    assert sorted(os.listdir(out)) == sorted([MANIFEST_NAME, "input_report.json",
                                              *(shard["file"] for shard in manifest["shards"])])
    create_pretraining_data([corpus], uncased_vocab_path, tmp_path / "fresh", two)
    assert files(out) == files(tmp_path / "fresh")


@pytest.mark.parametrize("overwrite", [False, True])
def test_files_create_data_did_not_write_are_refused_and_kept(corpus, uncased_vocab_path, tmp_path,
                                                              overwrite):
    out = tmp_path / "out"
    create_pretraining_data([corpus], uncased_vocab_path, out, CONFIG)
    # A shard of another run (not in the manifest) and a file of the user's.
    (out / "train-00000-of-00004.tfrecord").write_bytes(b"stale")
    (out / "notes.txt").write_text("mine")
    before = files(out)
    with pytest.raises(FileExistsError, match=r"holds 2 file\(s\) that create-data did not write \("
                                              r"notes.txt, train-00000-of-00004.tfrecord; not listed "
                                              r"by its manifest.json\).*never deletes"):
        create_pretraining_data([corpus], uncased_vocab_path, out, CONFIG, overwrite=overwrite)
    assert files(out) == before
    # Without a manifest, any file is another's.
    other = tmp_path / "other"
    other.mkdir()
    (other / "corpus.txt").write_text("text")
    with pytest.raises(FileExistsError, match=r"holds 1 file\(s\) that create-data did not write "
                                              r"\(corpus.txt\)"):
        StagedOutput(other, overwrite=overwrite).prepare()
    assert os.listdir(other) == ["corpus.txt"]


def test_a_manifest_naming_a_path_outside_its_directory_or_damaged_is_refused(tmp_path):
    (tmp_path / "victim.txt").write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("../victim.txt", "../x.tfrecord", "manifest.json", ".create-data-h-1.tfrecord"):
        (out / MANIFEST_NAME).write_text(json.dumps({"shards": [{"file": name}]}))
        with pytest.raises(ValueError, match=re.escape(f"lists {name!r} as a shard file, which is "
                                                       "not the name of a .tfrecord file in its "
                                                       "directory")):
            StagedOutput(out, overwrite=True).prepare()
        with pytest.raises(ValueError, match="not the name of a .tfrecord file in its directory"):
            shard_files(str(out))
    for text in ("{oops", "[]"):
        (out / MANIFEST_NAME).write_text(text)
        for check in (lambda: StagedOutput(out, overwrite=True).prepare(),
                      lambda: shard_files(str(out))):
            with pytest.raises(ValueError, match="manifest.json is not a create-data manifest"):
                check()
    assert (tmp_path / "victim.txt").read_text() == "keep"


def test_a_failed_run_leaves_the_earlier_output_as_it_was(corpus, uncased_vocab_path, tmp_path,
                                                          monkeypatch):
    out = tmp_path / "out"
    create_pretraining_data([corpus], uncased_vocab_path, out, CONFIG)
    before = files(out)

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("input_pipeline.creation.create_pretraining_data.write_manifest", disk_full)
    with pytest.raises(OSError, match="writing the manifest into .*failed: No space left on device; "
                                      "the output directory is as it was"):
        create_pretraining_data([corpus], uncased_vocab_path, out, CONFIG, overwrite=True)
    assert files(out) == before


def test_leftovers_of_a_dead_run_of_this_host_are_removed_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    dead = out / staging_name(dead_pid())
    dead.mkdir(parents=True)
    for name in ("block-0000000", "block-0000001", "train-00000-of-00002.tfrecord",
                 "train-00001-of-00002.tfrecord.tmp-77"):
        (dead / name).write_bytes(b"x" * 1000)
    output = StagedOutput(out)
    staging = output.prepare()
    assert os.listdir(out) == [os.path.basename(staging)]
    output.discard()
    assert os.listdir(out) == []


@pytest.mark.parametrize("owner", ["running", "other_host", "not_ours"])
def test_a_staging_directory_that_may_be_alive_or_is_not_ours_is_refused_and_kept(tmp_path, owner):
    out = tmp_path / "out"
    name = {"running": staging_name(os.getppid()), "other_host": staging_name(dead_pid(), "elsewhere"),
            "not_ours": staging_name(dead_pid())}[owner]
    (out / name).mkdir(parents=True)
    (out / name / ("block-0000000" if owner != "not_ours" else "thesis.tex")).write_text("x")
    before = files(out)
    match = {"running": "that may still be writing", "other_host": "host elsewhere",
             "not_ours": "holds files create-data does not write there"}[owner]
    with pytest.raises(FileExistsError, match=match):
        StagedOutput(out).prepare()
    assert files(out) == before


def test_readers_never_see_a_mix_while_shards_are_put_in_place(corpus, uncased_vocab_path, tmp_path,
                                                               monkeypatch):
    """A replace interrupted inside `commit` (after the old manifest moved out and one new shard
    moved in): readers refuse the directory, and the next run removes the interrupted run's files
    (those its manifests list) and writes a complete set."""
    out = tmp_path / "out"
    create_pretraining_data([corpus], uncased_vocab_path, out, CONFIG)
    with_staging = tmp_path / "being_replaced"  # A replacement is being built: the old set is read.
    create_pretraining_data([corpus], uncased_vocab_path, with_staging, CONFIG)
    (with_staging / staging_name(dead_pid())).mkdir()
    assert [os.path.basename(f) for f in shard_files(str(with_staging))[0]] == [
        f"train-0000{s}-of-00003.tfrecord" for s in range(3)]

    renames = []

    def killed_after_two_renames(source, target):
        # The commit's moves between the output and its staging directory, not atomic writes.
        if os.path.dirname(source) != os.path.dirname(target):
            if len(renames) == 2:
                raise KeyboardInterrupt  # As a kill would, in the middle of the commit.
            renames.append(os.path.basename(target))
        os.replace(source, target)

    monkeypatch.setattr(remote_files, "replace", killed_after_two_renames)
    two = CreationConfig(**{**CONFIG.__dict__, "num_shards": 2})
    with pytest.raises(KeyboardInterrupt):
        create_pretraining_data([corpus], uncased_vocab_path, out, two, overwrite=True)
    monkeypatch.undo()
    assert renames == ["replaced-manifest.json", "train-00000-of-00002.tfrecord"]
    assert MANIFEST_NAME not in os.listdir(out)
    for reader in (lambda: shard_files(str(out)), lambda: listed_only([str(out / "x.tfrecord")])):
        with pytest.raises(ValueError, match=r"is being written by create-data .*or a create-data run "
                                             "was killed while putting its shards in place"):
            reader()
    # The next run (the same process: its pid was the interrupted run's) cleans up and writes.
    manifest = create_pretraining_data([corpus], uncased_vocab_path, out, two)
    assert sorted(os.listdir(out)) == sorted([MANIFEST_NAME, "input_report.json",
                                              *(shard["file"] for shard in manifest["shards"])])


def test_two_runs_starting_together_both_stop(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    output = StagedOutput(out)
    other = out / staging_name(os.getppid())  # A live process.
    makedirs = remote_files.makedirs

    def makedirs_as_another_run_starts(path):
        makedirs(path)
        if path == output.staging:  # The other run makes its own at the same moment.
            other.mkdir()

    monkeypatch.setattr(remote_files, "makedirs", makedirs_as_another_run_starts)
    with pytest.raises(FileExistsError, match="another create-data started writing into .* at the "
                                              "same time"):
        output.prepare()
    assert os.listdir(out) == [other.name]  # Ours removed, the other's kept.


@pytest.mark.parametrize("made", ["the output directory", "the staging directory"])
def test_an_output_directory_that_may_not_be_written_is_named(tmp_path, monkeypatch, made):
    """A read-only --output-dir (or its parent) fails in makedirs; the message names the
    directory the user gave, not create-data's staging directory inside it. (Simulated: tests
    may run as root, whom permissions do not stop.)"""
    out = tmp_path / "out"
    output = StagedOutput(out)
    makedirs = remote_files.makedirs

    def read_only(path):
        if path == (str(out) if made == "the output directory" else output.staging):
            raise PermissionError(13, "Permission denied", path)
        makedirs(path)

    monkeypatch.setattr(remote_files, "makedirs", read_only)
    with pytest.raises(PermissionError, match=f"--output-dir {out} cannot be written "
                                              r"\(Permission denied making .*\); nothing was written"):
        output.prepare()


def test_the_output_directory_on_a_remote_file_system():
    """Cloud Storage through tf.io.gfile (here its in-memory `ram://`), as the Beam runner uses it:
    the same refusals, and a replace that leaves only the new set."""
    pytest.importorskip("tensorflow")
    out = "ram://staged/out"

    def run(num_shards: int, overwrite: bool = False) -> None:
        output = StagedOutput(out, overwrite=overwrite)
        staging = output.prepare()
        names = [f"train-{s:05d}-of-{num_shards:05d}.tfrecord" for s in range(num_shards)]
        for name in [*names, "input_report.json"]:
            with remote_files.open_file(os.path.join(staging, name), "wb") as f:
                f.write(name.encode())
        with remote_files.open_file(os.path.join(staging, MANIFEST_NAME), "w") as f:
            json.dump({"shards": [{"file": name, "num_instances": 1} for name in names]}, f)
        output.commit()

    run(3)
    with pytest.raises(FileExistsError, match="earlier create-data run"):
        run(2)
    run(2, overwrite=True)
    assert remote_files.listdir(out) == ["input_report.json", MANIFEST_NAME,
                                         "train-00000-of-00002.tfrecord",
                                         "train-00001-of-00002.tfrecord"]
    with remote_files.open_file(os.path.join(out, "notes.txt"), "w") as f:
        f.write("mine")
    with pytest.raises(FileExistsError, match=r"did not write \(notes.txt"):
        run(2, overwrite=True)
    assert [os.path.basename(f) for f in shard_files(out)[0]] == ["train-00000-of-00002.tfrecord",
                                                                 "train-00001-of-00002.tfrecord"]
