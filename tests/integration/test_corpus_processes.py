"""The standard-library corpus is the same when written by another process (another hash seed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_deterministic_across_processes(stdlib_corpus, tmp_path):
    """The same files from another process with another hash seed."""
    directory, _ = stdlib_corpus
    code = ("import sys; from input_pipeline.text.stdlib_corpus import write_stdlib_corpus; "
            "write_stdlib_corpus(sys.argv[1], sys.argv[2], held_out_percent=5.0)")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, tmp_path / "train.txt", tmp_path / "held_out.txt"],
                   check=True, env=env, cwd=Path(__file__).resolve().parents[2])
    for name in ("train.txt", "held_out.txt"):
        assert (tmp_path / name).read_bytes() == (directory / name).read_bytes()
    assert sorted(os.listdir(directory)) == ["held_out.txt", "train.txt"]  # no temporary files
