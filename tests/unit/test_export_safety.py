"""No command deletes or replaces a file it did not write, and none leaves a half-written file
under a final name (issue 17): the Hugging Face and sentence-transformers exports
(`bert_jax.convert.export_directory`), vocab files and encoded vectors
(`input_pipeline.output_file`). The command-line runs are in
tests/integration/test_export_safety.py, export-serving's in tests/integration/test_serving_export.py."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from safetensors import SafetensorError
from safetensors.numpy import save_file

from bert_jax.convert import hf_export, sentence_transformers
from bert_jax.convert.export_directory import MARKER_NAME, STAGING_PREFIX, ExportDirectory
from bert_jax.inference.encode import Encodings, save_encodings
from bert_jax.model import BertConfig
from bert_jax.model.sentence import SentenceConfig
from input_pipeline.output_file import write_output_file
from input_pipeline.vocabulary.sentencepiece import train_sentencepiece, train_sentencepiece_from_files
from input_pipeline.vocabulary.wordpiece import train_vocab_from_files
from tests.support.export_fixtures import CONFIG, perturbed_params

SMALL = BertConfig(**{**CONFIG.__dict__, "vocab_size": 64, "num_layers": 1})
KINDS = ("huggingface", "sentence-transformers")


def export(kind: str, out: Path, vocab: str, *, seed: int = 0, overwrite: bool = False,
           sentence: SentenceConfig | None = None) -> None:
    params = perturbed_params(SMALL, seed)
    sentence = sentence or SentenceConfig()
    if kind == "huggingface":
        hf_export.export_to_huggingface(params, SMALL, vocab, True, out, overwrite=overwrite)
    else:
        sentence_transformers.export_sentence_transformers(params, SMALL, vocab, True, sentence, out,
                                                           overwrite=overwrite)


def tree(directory: Path) -> dict[str, bytes | None] | None:
    """Every file (its bytes) and directory (None) under `directory`, by relative path; None if
    it does not exist."""
    if not directory.exists():
        return None
    return {p.relative_to(directory).as_posix(): None if p.is_dir() else p.read_bytes()
            for p in sorted(directory.rglob("*"))}


def leftovers(*directories: Path) -> list[str]:
    """Staging directories and temporary files in `directories`."""
    return [p.name for d in directories if d.is_dir() for p in d.iterdir()
            if STAGING_PREFIX in p.name or ".tmp-" in p.name]


@pytest.fixture
def downloaded(tmp_path) -> Path:
    """The directory of the issue: a model downloaded from the Hub, with a model.safetensors
    that bert-jax did not write."""
    directory = tmp_path / "bert-base-uncased"
    (directory / "onnx").mkdir(parents=True)
    (directory / "README.md").write_text("# bert-base-uncased\n")
    (directory / "config.json").write_text('{"model_type": "bert"}\n')
    (directory / "pytorch_model.bin").write_bytes(os.urandom(1000))
    (directory / "onnx" / "x.onnx").write_bytes(os.urandom(500))
    save_file({"w": np.ones((4, 4), np.float32)}, str(directory / "model.safetensors"))
    return directory


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_export_never_touches_a_directory_it_did_not_write(kind, overwrite, downloaded,
                                                            uncased_vocab_path):
    before = tree(downloaded)
    with pytest.raises(FileExistsError, match=(
            rf"--output {downloaded} holds files that bert-jax did not write \(README.md, config.json, "
            r"model.safetensors, onnx, pytorch_model.bin; no .bert-jax-export.json\).*choose another "
            r"--output. Nothing was written.")):
        export(kind, downloaded, uncased_vocab_path, overwrite=overwrite)
    assert tree(downloaded) == before
    assert leftovers(downloaded, downloaded.parent) == []


def test_overwrite_replaces_only_the_files_of_the_earlier_export(tmp_path, uncased_vocab_path):
    out = tmp_path / "model"
    export("huggingface", out, uncased_vocab_path, seed=0)
    (out / "NOTES.md").write_text("my model card\n")
    (out / "onnx").mkdir()
    (out / "onnx" / "x.onnx").write_bytes(b"onnx")
    before = tree(out)
    with pytest.raises(FileExistsError, match=rf"--output {out} holds an earlier export \(7 files by "
                       r"bert-jax export, listed in .bert-jax-export.json\); pass --overwrite"):
        export("huggingface", out, uncased_vocab_path, seed=1)
    assert tree(out) == before

    export("huggingface", out, uncased_vocab_path, seed=1, overwrite=True)
    after = tree(out)
    assert set(after) == set(before)
    assert after["NOTES.md"] == b"my model card\n" and after["onnx/x.onnx"] == b"onnx"
    assert after["model.safetensors"] != before["model.safetensors"]
    fresh = tmp_path / "fresh"
    export("huggingface", fresh, uncased_vocab_path, seed=1)
    assert {name: after[name] for name in tree(fresh)} == tree(fresh)  # the new export, whole
    marker = json.loads(after[MARKER_NAME])
    assert marker["complete"] and marker["written_by"] == "bert-jax export"
    assert set(marker["files"]) == set(after) - {"NOTES.md", "onnx", "onnx/x.onnx", MARKER_NAME}
    assert leftovers(out, tmp_path) == []


def test_overwrite_removes_only_its_own_files_it_no_longer_writes(tmp_path, uncased_vocab_path):
    out = tmp_path / "st"
    export("sentence-transformers", out, uncased_vocab_path, sentence=SentenceConfig(normalize=True))
    (out / "2_Normalize" / "mine.txt").write_text("mine")
    export("sentence-transformers", out, uncased_vocab_path, overwrite=True)
    assert sorted(p.name for p in (out / "2_Normalize").iterdir()) == ["mine.txt"]
    (out / "2_Normalize" / "mine.txt").unlink()
    export("sentence-transformers", out, uncased_vocab_path, sentence=SentenceConfig(normalize=True),
           overwrite=True)
    export("sentence-transformers", out, uncased_vocab_path, overwrite=True)
    assert not (out / "2_Normalize").exists()  # emptied of our files, it goes too


def test_overwrite_refuses_a_file_changed_since_the_export(tmp_path, uncased_vocab_path):
    out = tmp_path / "st"
    export("sentence-transformers", out, uncased_vocab_path)
    (out / "README.md").write_text("my own model card\n")
    before = tree(out)
    with pytest.raises(FileExistsError, match="README.md changed since bert-jax exported them"):
        export("sentence-transformers", out, uncased_vocab_path, overwrite=True)
    assert tree(out) == before


def test_overwrite_refuses_to_write_over_a_file_of_another(tmp_path, uncased_vocab_path):
    out = tmp_path / "st"
    export("sentence-transformers", out, uncased_vocab_path)
    (out / "2_Normalize").mkdir()
    (out / "2_Normalize" / "config.json").write_text("mine")
    before = tree(out)
    with pytest.raises(FileExistsError, match=r"this export writes 2_Normalize/config.json, where "
                       "the directory holds something the earlier export there did not write"):
        export("sentence-transformers", out, uncased_vocab_path, overwrite=True,
               sentence=SentenceConfig(normalize=True))
    assert tree(out) == before and leftovers(out, tmp_path) == []


def test_overwrite_refuses_a_file_of_ours_that_became_a_directory(tmp_path, uncased_vocab_path):
    out = tmp_path / "model"
    export("huggingface", out, uncased_vocab_path)
    (out / "vocab.txt").unlink()
    (out / "vocab.txt").mkdir()
    (out / "vocab.txt" / "mine.txt").write_text("mine")
    before = tree(out)
    with pytest.raises(FileExistsError, match="this export writes vocab.txt, where the directory holds"):
        export("huggingface", out, uncased_vocab_path, seed=1, overwrite=True)
    assert tree(out) == before and leftovers(out, tmp_path) == []


def test_a_marker_naming_files_outside_is_refused(tmp_path, uncased_vocab_path):
    out = tmp_path / "model"
    export("huggingface", out, uncased_vocab_path)
    (tmp_path / "precious.txt").write_text("mine")
    marker = json.loads((out / MARKER_NAME).read_text())
    marker["files"]["../precious.txt"] = None
    (out / MARKER_NAME).write_text(json.dumps(marker))
    with pytest.raises(ValueError, match=r"not a bert-jax export marker \(it lists '../precious.txt'"):
        export("huggingface", out, uncased_vocab_path, overwrite=True)
    assert (tmp_path / "precious.txt").read_text() == "mine"


@pytest.mark.parametrize("target", ["new", "empty", "earlier export"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_export_leaves_the_target_as_it_was(kind, target, tmp_path, uncased_vocab_path,
                                                     monkeypatch):
    out = tmp_path / "model"
    if target == "empty":
        out.mkdir()
    elif target == "earlier export":
        export(kind, out, uncased_vocab_path)
        (out / "notes.txt").write_text("mine")
    before = tree(out)

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a model")
        # As safetensors reports it (before, the command ended in this traceback).
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    module = hf_export if kind == "huggingface" else sentence_transformers
    monkeypatch.setattr(module, "save_file", disk_full)
    with pytest.raises(OSError, match=f"writing the export into {out} failed: No space left on "
                                      f"device. {out} is as it was; free disk space") as failed:
        export(kind, out, uncased_vocab_path, seed=1, overwrite=True)
    assert failed.value.errno == 28
    assert tree(out) == before
    assert leftovers(out, tmp_path) == []


@pytest.mark.parametrize("fresh", [True, False], ids=["new directory", "existing directory"])
def test_an_export_into_a_directory_it_may_not_write_names_it(fresh, tmp_path, uncased_vocab_path,
                                                              monkeypatch):
    """A read-only directory: the message names --output, not the staging directory that could
    not be made (simulated: tests may run as root, whom permissions do not stop)."""
    out = tmp_path / "model"
    if not fresh:
        out.mkdir()
    mkdir = Path.mkdir

    def read_only(path, *args, **kwargs):
        if STAGING_PREFIX in path.name:
            raise PermissionError(13, "Permission denied", str(path))
        mkdir(path, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(PermissionError, match=f"--output {out} cannot be written [(]Permission "
                                              "denied making .*[)]; nothing was written"):
        export("huggingface", out, uncased_vocab_path)
    assert tree(out) == (None if fresh else {})


def test_an_export_killed_while_renaming_is_replaced_by_the_next(tmp_path, uncased_vocab_path,
                                                                 monkeypatch):
    """Killed between two renames (no cleanup ran), the directory holds some old files and some
    new, and a marker listing both: the next --overwrite replaces them all, the user's file kept."""
    out = tmp_path / "model"
    export("huggingface", out, uncased_vocab_path, seed=0)
    (out / "NOTES.md").write_text("mine")
    renames = []
    real_replace = os.replace

    def killed_at_the_third_rename(source, target):
        renames.append(target)
        if len(renames) == 3:
            raise KeyboardInterrupt
        real_replace(source, target)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", killed_at_the_third_rename)
        m.setattr(ExportDirectory, "discard", lambda self: None)  # killed: no cleanup
        with pytest.raises(KeyboardInterrupt):
            export("huggingface", out, uncased_vocab_path, seed=1, overwrite=True)
    assert leftovers(out)  # what the killed export left
    assert not json.loads((out / MARKER_NAME).read_text())["complete"]

    export("huggingface", out, uncased_vocab_path, seed=1, overwrite=True)
    fresh = tmp_path / "fresh"
    export("huggingface", fresh, uncased_vocab_path, seed=1)
    after = tree(out)
    assert set(after) == set(tree(fresh)) | {"NOTES.md"} and after["NOTES.md"] == b"mine"
    assert {name: after[name] for name in tree(fresh) if name != MARKER_NAME} == {
        name: content for name, content in tree(fresh).items() if name != MARKER_NAME}
    assert leftovers(out, tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o027])
@pytest.mark.parametrize("kind", KINDS)
def test_exported_files_have_the_mode_the_umask_gives(kind, umask, tmp_path, uncased_vocab_path):
    """safetensors creates model.safetensors 0600; an export's files are the user's 0644."""
    previous = os.umask(umask)
    try:
        export(kind, tmp_path / "new", uncased_vocab_path)
        export(kind, tmp_path / "new", uncased_vocab_path, seed=1, overwrite=True)
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "new").rglob("*")}
    assert modes["model.safetensors"] == 0o666 & ~umask
    assert modes == {p.name: (0o777 if p.is_dir() else 0o666) & ~umask
                     for p in (tmp_path / "new").rglob("*")}


# --- Single files: vocab, SentencePiece model, encoded vectors. ------------------------------------

def test_vocab_refuses_an_existing_file_unless_overwrite(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 20)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("my vocab\n")
    with pytest.raises(FileExistsError, match=f"--output {vocab} exists; pass --overwrite"):
        train_vocab_from_files([str(text)], str(vocab), 100)
    assert vocab.read_text() == "my vocab\n"
    tokens = train_vocab_from_files([str(text)], str(vocab), 100, overwrite=True)
    assert vocab.read_text().splitlines() == tokens
    assert leftovers(tmp_path) == []


def test_sentencepiece_refuses_an_existing_model_unless_overwrite(tmp_path):
    lines = [f"sentence number {i} about the quick brown fox" for i in range(300)]
    model = tmp_path / "sp.model"
    model.write_bytes(b"my model")
    with pytest.raises(FileExistsError, match=f"--output {model} exists; pass --overwrite"):
        train_sentencepiece(lines, model, 60)
    assert model.read_bytes() == b"my model"
    train_sentencepiece(lines, model, 60, overwrite=True)
    assert model.read_bytes() != b"my model" and leftovers(tmp_path) == []


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_write_leaves_no_file_behind(existing, tmp_path):
    path = tmp_path / "vectors.npy"
    if existing:
        path.write_bytes(b"old")

    def half_then_fail(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match=f"writing {path} failed: No space left on device. Nothing was "
                       f"written under that name{' [(]the file there is as it was[)]' if existing else ''}; "
                       "free disk space") as failed:
        write_output_file(path, half_then_fail, overwrite=True)
    assert failed.value.errno == 28
    assert tree(tmp_path) == ({"vectors.npy": b"old"} if existing else {})


@pytest.mark.parametrize("problem", ["missing", "read-only"])
@pytest.mark.parametrize("output", ["vocab.txt", "spm.model"])
def test_an_output_that_cannot_be_written_is_refused_before_any_reading(problem, output, tmp_path,
                                                                        monkeypatch):
    """Before, a read-only directory failed only when the trained vocab was written (hours
    later for a large corpus), naming the temporary file. The input does not exist: reading it
    would fail first. (The read-only case is simulated: tests may run as root.)"""
    directory = tmp_path / "out"
    if problem == "read-only":
        directory.mkdir()
        access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: (
            os.fspath(path) != str(directory) and access(path, mode, **kwargs)))
    path, never_read = directory / output, [str(tmp_path / "corpus.txt")]
    with pytest.raises(FileNotFoundError if problem == "missing" else PermissionError,
                       match=f"--output {path}: its directory {directory} "
                             + ("does not exist" if problem == "missing" else "may not be written")):
        if output == "vocab.txt":
            train_vocab_from_files(never_read, path, 100)
        else:
            train_sentencepiece_from_files(never_read, path, 100)


def test_a_file_created_while_writing_is_not_replaced(tmp_path):
    path = tmp_path / "vocab.txt"

    def meanwhile(f):
        path.write_text("another's")
        f.write(b"ours")

    with pytest.raises(FileExistsError, match="was created by something else while this command wrote it"):
        write_output_file(path, meanwhile)
    assert tree(tmp_path) == {"vocab.txt": b"another's"}


def test_encodings_refuse_existing_files_before_writing_any(tmp_path):
    encodings = Encodings(sentence_vectors=np.ones((2, 3), np.float32), token_ids=np.arange(5, dtype=np.int32),
                          offsets=np.array([0, 2, 5]), token_vectors=np.ones((5, 3), np.float32))
    (tmp_path / "tokens.mask.npy").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=r"--padded-tokens \(its mask\) .*tokens.mask.npy exists"):
        save_encodings(encodings, tmp_path / "vectors.npy", tmp_path / "ragged.npz", tmp_path / "tokens.npy")
    assert tree(tmp_path) == {"tokens.mask.npy": b"mine"}
    save_encodings(encodings, tmp_path / "vectors.npy", tmp_path / "ragged.npz", tmp_path / "tokens.npy",
                   overwrite=True)
    assert np.load(tmp_path / "tokens.mask.npy").tolist() == [[1, 1, 0], [1, 1, 1]]
    assert sorted(tree(tmp_path)) == ["ragged.npz", "tokens.mask.npy", "tokens.npy", "vectors.npy"]


def test_import_never_removes_a_directory_named_like_its_staging_one(tmp_path, uncased_vocab_path):
    from bert_jax.convert.workdir_import import import_to_workdir

    config = BertConfig(**{**SMALL.__dict__, "vocab_size": 30522})
    hf_export.export_to_huggingface(perturbed_params(config), config, uncased_vocab_path, True,
                                    tmp_path / "hf")
    staging = tmp_path / f"w.tmp-{os.getpid()}"
    staging.mkdir()
    (staging / "mine.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=rf"{staging} exists \(left by an earlier import, or not ours\)"):
        import_to_workdir(tmp_path / "hf", tmp_path / "w")
    assert tree(staging) == {"mine.txt": b"mine"} and not (tmp_path / "w").exists()
