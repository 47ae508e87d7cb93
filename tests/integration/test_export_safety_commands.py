"""The commands that write model files, run as a user runs them (issue 17): `bert-jax export`
never touches a directory it did not write (exit 2, one line, every file byte-identical, with
--overwrite too), replaces its own earlier export only with --overwrite and keeps what the user
added; `bert-jax vocab` and `bert-jax encode` refuse an existing output unless --overwrite. The
in-process cases (failures, kills, modes, markers) are in tests/unit/test_export_safety.py."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import numpy as np
import pytest
from safetensors.numpy import save_file


def _bert_jax(*args: str) -> subprocess.CompletedProcess:
    path = shutil.which("bert-jax")
    assert path, "the bert-jax console script is not installed (pip install -e .)"
    return subprocess.run([path, *args], capture_output=True, text=True)


def _tree(directory) -> dict:
    return {p.relative_to(directory).as_posix(): None if p.is_dir() else p.read_bytes()
            for p in sorted(directory.rglob("*"))}


def _refused(result: subprocess.CompletedProcess, *phrases: str) -> None:
    """Exit 2 with one line (no traceback) holding `phrases`."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    for phrase in phrases:
        assert phrase in line, line


@pytest.fixture(scope="module")
def workdir(tiny_trained_model):
    return tiny_trained_model[0]


def test_export_refuses_a_downloaded_model_directory(workdir, tmp_path):
    """The issue's directory: a model from the Hub with a model.safetensors that is not ours."""
    downloaded = tmp_path / "bert-base-uncased"
    (downloaded / "onnx").mkdir(parents=True)
    (downloaded / "README.md").write_text("# bert-base-uncased\n")
    (downloaded / "pytorch_model.bin").write_bytes(os.urandom(1000))
    (downloaded / "onnx" / "x.onnx").write_bytes(os.urandom(500))
    save_file({"w": np.ones((4, 4), np.float32)}, str(downloaded / "model.safetensors"))
    before = _tree(downloaded)
    for extra in ([], ["--overwrite"], ["--sentence-transformers", "--overwrite"]):
        _refused(_bert_jax("export", "--workdir", str(workdir), "--output", str(downloaded), *extra),
                 f"bert-jax export: error: --output {downloaded} holds files that bert-jax did not "
                 "write (README.md, model.safetensors, onnx, pytorch_model.bin; no "
                 ".bert-jax-export.json)", "Nothing was written.")
        assert _tree(downloaded) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bert-base-uncased"]


def test_export_replaces_its_own_export_only_with_overwrite(workdir, tmp_path):
    out = tmp_path / "hf"
    previous = os.umask(0o022)
    try:
        first = _bert_jax("export", "--workdir", str(workdir), "--output", str(out))
        assert first.returncode == 0, first.stderr[-3000:]
        (out / "NOTES.md").write_text("my notes\n")
        before = _tree(out)
        _refused(_bert_jax("export", "--workdir", str(workdir), "--output", str(out)),
                 "holds an earlier export", "pass --overwrite")
        assert _tree(out) == before
        (out / "model.safetensors").chmod(0o600)  # as safetensors made it before issue 17
        again = _bert_jax("export", "--workdir", str(workdir), "--output", str(out), "--overwrite")
        assert again.returncode == 0, again.stderr[-3000:]
    finally:
        os.umask(previous)
    assert _tree(out) == before  # the same checkpoint: the same bytes, NOTES.md kept
    assert stat.S_IMODE((out / "model.safetensors").stat().st_mode) == 0o644


def test_vocab_and_encode_refuse_an_existing_output(workdir, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 20)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("my vocab\n")
    _refused(_bert_jax("vocab", "--input", str(text), "--output", str(vocab), "--vocab-size", "100"),
             f"bert-jax vocab: error: --output {vocab} exists; pass --overwrite")
    assert vocab.read_text() == "my vocab\n"
    result = _bert_jax("vocab", "--input", str(text), "--output", str(vocab), "--vocab-size", "100",
                       "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[CLS]" in vocab.read_text()

    vectors = tmp_path / "vectors.npy"
    vectors.write_bytes(b"my vectors")
    _refused(_bert_jax("encode", "--model", str(workdir), "--input", str(text), "--output", str(vectors)),
             f"bert-jax encode: error: --output {vectors} exists; pass --overwrite")
    assert vectors.read_bytes() == b"my vectors"
    result = _bert_jax("encode", "--model", str(workdir), "--input", str(text), "--output", str(vectors),
                       "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert np.load(vectors).shape[0] == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.txt", "vectors.npy", "vocab.txt"]
