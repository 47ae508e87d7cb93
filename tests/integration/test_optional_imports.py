"""Heavy optional dependencies stay out of the processes that do not need them, as the comments
on the function-local imports say: making pretraining data from local text (what the data
workers do) imports neither TensorFlow, TensorFlow Datasets nor Apache Beam, and importing a
Hugging Face safetensors directory imports neither TensorFlow nor torch. Checked in a fresh
interpreter, since the test process has imported them all."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_SCRIPT = """
import sys
from pathlib import Path

from input_pipeline.creation.create_pretraining_data import CreationConfig, create_pretraining_data
from input_pipeline.text.stdlib_corpus import write_stdlib_corpus
from input_pipeline.vocabulary.wordpiece import train_vocab_from_files

HEAVY = {"tensorflow", "tensorflow_datasets", "apache_beam", "torch"}
root, export = Path(sys.argv[1]), sys.argv[2]
write_stdlib_corpus(root / "train.txt", root / "held_out.txt", max_bytes=30_000)
train_vocab_from_files([str(root / "train.txt")], str(root / "vocab.txt"), 1000)
create_pretraining_data([root / "train.txt"], root / "vocab.txt", root / "shards",
                        CreationConfig(max_seq_length=32, max_predictions_per_seq=5, num_shards=2))
assert (root / "shards" / "manifest.json").is_file()
print("data:", sorted(HEAVY & set(sys.modules)))

from bert_jax.convert.sources import load_pretrained

imported = load_pretrained(export)
assert imported.missing == []
print("import:", sorted(HEAVY & set(sys.modules)))
"""


@pytest.mark.parametrize("exported", ["gelu"], indirect=True)  # one activation is enough here
def test_data_creation_and_huggingface_import_keep_heavy_dependencies_out(exported, tmp_path):
    _, _, out = exported
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), str(out)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data: []" in result.stdout and "import: []" in result.stdout, result.stdout
