"""Checkpoints of Google's `run_classifier.py` and `run_squad.py` (their `create_model`, run as
published in TF1 graph mode by `tests/support/google_bert_reference.py --head=...`): imported, they
predict the logits of the TensorFlow graph within 1e-5. The classifier's label names come from a
`labels.json` beside the checkpoint (Google's scripts record none)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bert_jax.inference.question_answerer import QuestionAnswerer
from bert_jax.inference.text_classifier import TextClassifier
from tests.support.task_models import VOCAB

TOLERANCE = 1e-5
SCRIPT = Path(__file__).parents[1] / "support" / "google_bert_reference.py"


def google_fine_tuned(root: Path, head: str) -> Path:
    config = {"vocab_size": len(VOCAB), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 64, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 64, "type_vocab_size": 2,
              "initializer_range": 0.02}
    (root / "bert_config.json").write_text(json.dumps(config))
    (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    out = root / head
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(SCRIPT), str(out), str(root / "bert_config.json"),
                             str(root / "vocab.txt"), "0", f"--head={head}"],
                            check=False, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def padded(reference, length: int = 64) -> list[np.ndarray]:
    """The reference inputs padded to a bucket length (padding changes no real position)."""
    arrays = []
    for name in ("input_ids", "input_mask", "segment_ids"):
        array = np.zeros((reference[name].shape[0], length), np.int32)
        array[:, :reference[name].shape[1]] = reference[name]
        arrays.append(array)
    return arrays


@pytest.mark.parametrize("head", ["classifier", "squad"])
def test_google_fine_tuned_checkpoints_predict_as_tensorflow(head, tmp_path):
    out = google_fine_tuned(tmp_path, head)
    reference = np.load(out / "reference.npz")
    if head == "classifier":
        (out / "labels.json").write_text(json.dumps({"labels": ["contradiction", "entailment", "neutral"]}))
        ours = TextClassifier.load(out)
        assert ours.labels == ("contradiction", "entailment", "neutral")
        logits = ours.forward(*padded(reference))[:len(reference["logits"])]
        difference = np.abs(logits - reference["logits"]).max()
    else:
        ours = QuestionAnswerer.load(out)
        outputs = ours.forward(*padded(reference))
        real = reference["input_mask"].astype(bool)
        length = real.shape[1]
        difference = max(np.abs(outputs[f"{side}_logits"][:, :length][real] - reference[f"{side}_logits"][real]).max()
                         for side in ("start", "end"))
    print(f"{head}: max abs logit difference {difference:.3g}")
    assert difference <= TOLERANCE
