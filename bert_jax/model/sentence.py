"""The sentence-embedding head: one vector per text, pooled from the encoder's token vectors and
optionally scaled to unit length, as sentence-transformers' `Pooling` and `Normalize` modules
compute it; and `SentenceConfig`, the settings of that head, which a model carries with it (a work
directory in its run config's `sentence` section, a sentence-transformers directory in its module
files: `bert_jax.convert.sentence_transformers`).

Poolings, over the tokens where `mask` is 1 (`[CLS]` and `[SEP]` included, never padding, and not
the prompt's tokens when `include_prompt` is False):
  mean    the sum of the token vectors divided by their count
  max     the elementwise maximum
  cls     the first pooled token's vector: `[CLS]`, or the first after a prompt left out
  pooler  BERT's pooler output, tanh(dense(`[CLS]` vector)), which the NSP head reads (ours only:
          sentence-transformers has no such pooling, so a `SentenceConfig` does not take it)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp

POOLINGS = ("mean", "max", "cls", "pooler")
# The poolings a SentenceConfig takes: those sentence-transformers' Pooling module computes too.
SENTENCE_POOLINGS = ("mean", "max", "cls")
# sentence-transformers' `similarity_fn_name`s: how two sentence vectors are compared.
SIMILARITIES = ("cosine", "dot", "euclidean", "manhattan")


@dataclasses.dataclass(frozen=True)
class SentenceConfig:
    """How a text becomes one vector, beyond the encoder: the settings of sentence-transformers'
    `Pooling`, `Normalize` and `Transformer` modules and its model-level prompts and similarity."""
    pooling: str = "mean"           # One of SENTENCE_POOLINGS.
    normalize: bool = False         # Scale each vector to unit L2 norm after pooling.
    max_seq_length: int = 0         # Longest input in tokens, [CLS] and [SEP] included; 0: the model's.
    do_lower_case: bool = False     # Lower-case the text before the tokenizer (its own casing aside).
    # Texts put before the input by name ("query": "query: "), and the one used when none is named.
    prompts: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)
    default_prompt_name: str = ""   # "": no prompt unless one is named.
    include_prompt: bool = True     # Whether the prompt's tokens are pooled with the text's.
    similarity: str = "cosine"      # One of SIMILARITIES: what the vectors were trained for.

    def __post_init__(self):
        """Raises ValueError naming each field that breaks a rule (as `sentence.FIELD`, the run
        config's name), with its value and the rule, one per line."""
        object.__setattr__(self, "prompts", dict(self.prompts))  # a copy: the caller's may change
        problems = []
        if self.pooling not in SENTENCE_POOLINGS:
            problems.append(f"pooling={self.pooling!r} must be one of {SENTENCE_POOLINGS}")
        if self.similarity not in SIMILARITIES:
            problems.append(f"similarity={self.similarity!r} must be one of {SIMILARITIES}")
        if not isinstance(self.max_seq_length, int) or self.max_seq_length < 0:
            problems.append(f"max_seq_length={self.max_seq_length!r} must be a length in tokens "
                            "(0: the model's max_position_embeddings)")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in dict(self.prompts).items()):
            problems.append(f"prompts={dict(self.prompts)!r} must map names to texts")
        if self.default_prompt_name and self.default_prompt_name not in self.prompts:
            problems.append(f"default_prompt_name={self.default_prompt_name!r} is not one of the "
                            f"prompts {sorted(self.prompts)}")
        if problems:
            raise ValueError("\n  - ".join(f"sentence.{problem}" for problem in problems))

    def max_length(self, max_position_embeddings: int) -> int:
        """The longest input, in tokens, for a model of `max_position_embeddings` positions."""
        return min(self.max_seq_length or max_position_embeddings, max_position_embeddings)

    def prompt(self, name: str | None = None) -> str:
        """The text of the prompt `name`, or of the default prompt when `name` is None ("" if
        there is none)."""
        if name is None:
            name = self.default_prompt_name
            if not name:
                return ""
        if name not in self.prompts:
            raise ValueError(f"no prompt named {name!r}; the model's prompts are {sorted(self.prompts)}.")
        return self.prompts[name]


def pool(sequence: jax.Array, pooled: jax.Array, mask: jax.Array, pooling: str) -> jax.Array:
    """[batch, hidden] float32 sentence vectors from the sequence output [batch, length, hidden]
    and the pooler output [batch, hidden], over the tokens where `mask` [batch, length] is 1."""
    sequence = sequence.astype(jnp.float32)
    real = mask[..., None] > 0
    if pooling == "mean":
        count = jnp.maximum(jnp.sum(mask, axis=1, keepdims=True), 1).astype(jnp.float32)
        return jnp.sum(jnp.where(real, sequence, 0.0), axis=1) / count
    if pooling == "max":
        return jnp.max(jnp.where(real, sequence, -jnp.inf), axis=1)
    if pooling == "cls":
        first = jnp.argmax(mask > 0, axis=1)  # 0 unless a prompt is left out of the pooling
        return jnp.take_along_axis(sequence, first[:, None, None], axis=1)[:, 0]
    if pooling == "pooler":
        return pooled.astype(jnp.float32)
    raise ValueError(f"pooling {pooling!r} must be one of {POOLINGS}.")


def l2_normalize(vectors: jax.Array) -> jax.Array:
    """Each row scaled to unit L2 norm, as `torch.nn.functional.normalize` (a zero row stays 0)."""
    norm = jnp.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / jnp.maximum(norm, 1e-12)
