"""SentencePiece training gives the same model bytes in another process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from input_pipeline.vocabulary.sentencepiece import train_sentencepiece_from_files
from tests.support.sentencepiece_corpora import MODEL_TYPES

_TRAIN_IN_SUBPROCESS = """
import sys
from input_pipeline.vocabulary.sentencepiece import train_sentencepiece_from_files
train_sentencepiece_from_files([sys.argv[1]], sys.argv[2], 1000, model_type=sys.argv[3],
                               max_sentences=3000, seed=int(sys.argv[4]))
"""


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_training_is_deterministic(corpora, tmp_path, model_type):
    """Same text and options, same bytes: in this process and in a fresh one (SentencePiece's
    own sampling would differ from process to process), and the seed picks the sample."""
    train = str(corpora["en"]["train"])
    paths = [tmp_path / f"{name}.model" for name in ("a", "b", "c", "d")]
    for path, seed in zip(paths[:2], (0, 0)):
        train_sentencepiece_from_files([train], path, 1000, model_type=model_type,
                                       max_sentences=3000, seed=seed)
    subprocess.run([sys.executable, "-c", _TRAIN_IN_SUBPROCESS, train, str(paths[2]), model_type, "0"],
                   check=True, cwd=Path(__file__).resolve().parents[2])
    train_sentencepiece_from_files([train], paths[3], 1000, model_type=model_type,
                                   max_sentences=3000, seed=1)
    a, b, c, d = (path.read_bytes() for path in paths)
    assert a == b == c
    assert a != d
    assert sorted(os.listdir(tmp_path)) == ["a.model", "b.model", "c.model", "d.model"]  # No temp files.
