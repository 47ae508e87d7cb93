"""BERT's pretraining heads: the masked-LM head (its decoder tied to the word embeddings) and the
next-sentence head, on top of `BertModel`.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from bert_jax.model.bert import Array, BertConfig, BertModel, activation, dense, layer_norm, zeros_init


class MaskedLMHead(nn.Module):
    """Dense + GELU + LayerNorm, then the tied vocabulary projection plus an output bias."""
    config: BertConfig

    @nn.compact
    def __call__(self, x: Array, word_embeddings: Array) -> Array:
        c = self.config
        x = activation(c, dense(c, c.hidden_size, ("embed", "embed_out"), "transform")(x))
        x = layer_norm(c, "transform_layer_norm")(x)
        bias = self.param("output_bias", zeros_init(("vocab",)), (c.vocab_size,), jnp.float32)
        # Logits in float32: the softmax over 30k entries is where low precision hurts.
        logits = jnp.einsum("...d,vd->...v", x, word_embeddings.astype(x.dtype))
        return logits.astype(jnp.float32) + bias


class BertForPreTraining(nn.Module):
    """BERT with the masked-LM and next-sentence heads."""
    config: BertConfig

    def setup(self):
        self.bert = BertModel(self.config)
        self.masked_lm = MaskedLMHead(self.config)
        self.next_sentence = dense(self.config, 2, ("embed", None), "next_sentence")

    def __call__(self, input_ids: Array, input_mask: Array, segment_ids: Array,
                 masked_lm_positions: Array | None = None, deterministic: bool = True,
                 position_ids: Array | None = None, cls_positions: Array | None = None) -> dict[str, Array]:
        """Returns `mlm_logits` [batch, predictions, vocab] at `masked_lm_positions` (at every
        position when None) and `nsp_logits` [batch, 2] (index 1 is "random next"); for packed
        rows (see `BertModel`), `nsp_logits` [batch, sequences, 2]."""
        sequence, pooled = self.bert(input_ids, input_mask, segment_ids, deterministic,
                                     position_ids, cls_positions)
        if masked_lm_positions is not None:
            # Projecting only the ~15% masked positions onto the vocabulary, not all of them,
            # saves most of the head's FLOPs and memory.
            sequence = jnp.take_along_axis(sequence, masked_lm_positions[..., None], axis=1)
        return {
            "mlm_logits": self.masked_lm(sequence, self.bert.embeddings.word_embeddings.embedding),
            "nsp_logits": self.next_sentence(pooled).astype(jnp.float32),
        }

