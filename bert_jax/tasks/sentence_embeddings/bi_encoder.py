"""The Sentence-BERT bi-encoder: one shared BERT (`bert`, the names every importer and exporter
uses) that turns each side of a pair or triplet into a sentence vector with the run's pooling, and,
for NLI, the classifier over (u, v, |u - v|) that `SoftmaxLoss` trains with it (`nli_classifier`,
trained with the encoder and dropped from the exported sentence-transformers model, as
sentence-transformers drops it).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from bert_jax.model import BertConfig, BertModel, SentenceConfig
from bert_jax.tasks.sentence_embeddings.losses import nli_logits
from bert_jax.tasks.sentence_embeddings.pooling import sentence_vectors


def _linear_uniform(fan_in: int) -> nn.initializers.Initializer:
    """`torch.nn.Linear`'s draw (kernel and bias alike): uniform in +-1/sqrt(fan in)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(rng: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(rng, shape, dtype, -bound, bound)
    return init


class NliClassifier(nn.Module):
    """`SoftmaxLoss`'s classifier: logits W [u; v; |u - v|] + b over `num_labels` labels. Tiny
    ([3 * hidden, labels]): replicated on every device."""
    num_labels: int

    @nn.compact
    def __call__(self, u: jax.Array, v: jax.Array) -> jax.Array:
        fan_in = 3 * u.shape[-1]
        init = _linear_uniform(fan_in)
        kernel = self.param("kernel", nn.with_logical_partitioning(init, (None, None)), (fan_in, self.num_labels))
        bias = self.param("bias", nn.with_logical_partitioning(init, (None,)), (self.num_labels,))
        return nli_logits({"kernel": kernel, "bias": bias}, u, v)


class BiEncoder(nn.Module):
    """Sentence vectors [batch, hidden] (float32) from token ids and masks, by `sentence`'s
    pooling (over real tokens) and normalization; with `num_labels` > 0 an NLI classifier too."""
    config: BertConfig
    sentence: SentenceConfig = SentenceConfig()
    num_labels: int = 0

    def setup(self):
        self.bert = BertModel(self.config)
        if self.num_labels:
            self.nli_classifier = NliClassifier(self.num_labels)

    def encode(self, input_ids: jax.Array, input_mask: jax.Array, deterministic: bool = True) -> jax.Array:
        """[batch, hidden] sentence vectors of single texts ([CLS] text [SEP], segment 0)."""
        sequence, _ = self.bert(input_ids, input_mask, jnp.zeros_like(input_ids), deterministic)
        return sentence_vectors(sequence, input_mask, self.sentence.pooling, self.sentence.normalize)

    def classify(self, u: jax.Array, v: jax.Array) -> jax.Array:
        """[batch, num_labels] NLI logits of the pairs' vectors."""
        return self.nli_classifier(u, v)

    def __call__(self, input_ids: jax.Array, input_mask: jax.Array, deterministic: bool = True) -> jax.Array:
        """The vectors of the texts, or (with a classifier) the logits of each text paired with
        itself: what `init` traces so that every parameter is created."""
        u = self.encode(input_ids, input_mask, deterministic)
        return self.classify(u, u) if self.num_labels else u
