"""The task inference classes pad inputs to lengths that are multiples of 64 (and the model's
longest); tests/integration/test_task_inference_shapes.py runs a stream of lengths through them."""

from __future__ import annotations

from bert_jax.inference.task_model import bucket_lengths


def test_lengths_are_multiples_of_64_up_to_the_longest():
    assert bucket_lengths(200, 8).lengths == (64, 128, 192, 200)
    assert bucket_lengths(512).lengths == (64, 128, 192, 256, 320, 384, 448, 512)
    assert bucket_lengths(40).lengths == (40,)
    assert bucket_lengths(200, 8).batch_sizes == (1, 2, 4, 8)
