"""The task inference classes' shapes: inputs padded to lengths that are multiples of 64 (and the
model's longest), so a stream of texts of every length compiles at most one program per bucket
shape, and a text's prediction does not depend on the texts batched with it."""

from __future__ import annotations

import numpy as np

from bert_jax.convert.hf_export import Labels, export_to_huggingface
from bert_jax.convert.imported import parameter_shapes, set_path
from bert_jax.inference.text_classifier import TextClassifier
from bert_jax.model import BertConfig
from tests.support.task_models import VOCAB


def test_a_stream_of_lengths_compiles_once_per_bucket_shape(tmp_path):
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_layers=1, num_heads=2,
                        intermediate_size=32, max_position_embeddings=160)
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    params, rng = {}, np.random.default_rng(0)
    for path, shape in parameter_shapes(config, "sequence_classification", 3).items():
        set_path(params, tuple(path.split("/")), 0.2 * rng.standard_normal(shape).astype(np.float32))
    export_to_huggingface(params, config, tmp_path / "vocab.txt", True, tmp_path / "model",
                          "sequence_classification", Labels(("a", "b", "c")))
    classifier = TextClassifier.load(tmp_path / "model", max_batch_size=2)
    assert classifier.buckets.lengths == (64, 128, 160)
    texts = [" ".join(f"w{i}" for i in rng.integers(0, 95, n)) for n in range(1, 158, 13)]
    first = classifier(texts, all_scores=True)
    assert classifier.trace_count <= classifier.buckets.num_shapes
    compiled = classifier.trace_count
    again = classifier(texts[::-1], all_scores=True)[::-1]
    alone = [classifier(t, all_scores=True)[0] for t in texts[::4]]
    assert classifier.trace_count <= compiled + 3  # batch size 1 at each length bucket, at most
    for mine, other in zip(first, again):
        np.testing.assert_allclose([s["score"] for s in mine], [s["score"] for s in other], atol=1e-6)
    for mine, other in zip(first[::4], alone):
        np.testing.assert_allclose([s["score"] for s in mine], [s["score"] for s in other], atol=1e-6)
    assert [s["label"] for s in first[0]] == ["a", "b", "c"]
