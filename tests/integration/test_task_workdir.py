"""A fine-tuning work directory as a source for the task inference classes: a checkpoint of a task
head's train state (scanned layers, AdamW's slots beside the parameters, as the training loop
saves it) and the run's labels.json. Its parameters are those of a tiny random `transformers`
`BertForSequenceClassification`, whose probabilities ours equal within 1e-5; a work directory of
another head is refused by name. `bert-jax export` writes it as a `BertForSequenceClassification`
with the run's labels, on which `pipeline("text-classification")` gives our labels and scores."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bert_jax.config.files import load_config
from bert_jax.convert.hf_import import load_huggingface
from bert_jax.convert.imported import in_layout
from bert_jax.inference.text_classifier import TextClassifier
from bert_jax.inference.token_classifier import TokenClassifier
from bert_jax.state.checkpointer import Checkpointer
from bert_jax.state.train_state import TrainState
from tests.support.task_models import VOCAB, tiny_transformers_model


def test_a_fine_tuned_work_directory_predicts_as_transformers(tmp_path):
    import torch

    theirs = tiny_transformers_model("classification", dropout=0.0)
    theirs.save_pretrained(tmp_path / "hf")
    imported = load_huggingface(tmp_path / "hf", "sequence_classification")
    config = load_config("cpu_demo")
    for field in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                  "max_position_embeddings", "type_vocab_size", "hidden_act", "layer_norm_eps"):
        config.model[field] = getattr(imported.config, field)
    config.model.scan_layers = True
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    config.data.vocab_file = str(tmp_path / "vocab.txt")
    workdir = tmp_path / "run"
    params = jax.device_put(in_layout(imported.params, dataclasses.replace(imported.config, scan_layers=True)))
    state = TrainState(step=jnp.array(7, jnp.int32), params=params, opt_state=optax.adamw(1e-3).init(params))
    checkpointer = Checkpointer(workdir, async_save=False)
    checkpointer.save(7, state, config.to_dict())
    checkpointer.close()
    (workdir / "labels.json").write_text(json.dumps({"labels": ["x", "y", "z"]}))

    ours = TextClassifier.load(workdir)
    assert ours.labels == ("x", "y", "z") and ours.source.endswith("(step 7)")
    texts = [" ".join(f"w{i}" for i in range(n, 2 * n)) for n in (2, 5, 9)]
    got = ours(texts, all_scores=True)
    with torch.no_grad():
        for text, scores in zip(texts, got):
            ids = [2, *(VOCAB.index(w) for w in text.split()), 3]
            expected = torch.softmax(theirs(torch.tensor([ids])).logits[0], -1).numpy()
            np.testing.assert_allclose([s["score"] for s in scores], expected, atol=1e-5)
    with pytest.raises(ValueError, match="holds a sequence classification head; token classification"):
        TokenClassifier.load(workdir)

    import transformers

    from bert_jax.cli import main

    assert main(["export", "--workdir", str(workdir), "--output", str(tmp_path / "export")]) == 0
    written = json.loads((tmp_path / "export" / "config.json").read_text())
    assert written["architectures"] == ["BertForSequenceClassification"]
    assert written["id2label"] == {"0": "x", "1": "y", "2": "z"}
    assert written["problem_type"] == "single_label_classification"
    pipeline = transformers.pipeline("text-classification", model=str(tmp_path / "export"), device="cpu")
    for text, scores in zip(texts, got):
        best = max(scores, key=lambda s: s["score"])
        expected = pipeline(text)
        expected = expected[0] if isinstance(expected, list) else expected
        assert expected["label"] == best["label"] and abs(expected["score"] - best["score"]) <= 1e-5
