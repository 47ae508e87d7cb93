"""Sentence and token vectors: the encoder's contextual token vectors, and one vector per text
pooled from them (`bert_jax.model.sentence`).

Poolings (all over the real tokens, `[CLS]` and `[SEP]` included, never over padding):
  mean    the sum of the token vectors where `input_mask` is 1, divided by their count (as
          sentence-transformers' mean pooling)
  max     the elementwise maximum over the real tokens
  cls     the `[CLS]` token's vector
  pooler  BERT's pooler output: tanh(dense(`[CLS]` vector)), which the NSP head reads

By default a model pools as its `SentenceConfig` says: a sentence-transformers directory's own
pooling, normalization, length, lower-casing and default prompt (so that the vectors are
`SentenceTransformer(directory).encode(texts)`'s), a work directory's run config `sentence`
section; other sources have none, and pool by the mean, unnormalized.

Files (`save_encodings`): the sentence vectors as a `.npy` of shape [n, hidden] (float32, row i
for line i), and optionally the token vectors as a ragged `.npz`: `token_vectors` [total tokens,
hidden] float32, all texts' tokens one after the other; `token_ids` [total tokens] int32; and
`offsets` [n + 1] int64, so that text i's tokens are rows `offsets[i]:offsets[i + 1]`
(`load_token_vectors` splits them back into a list). Or, for consumers that want one array, the
token vectors padded (`padded_tokens_path`): a `.npy` [n, longest text's tokens, hidden] float32,
zeros past each text's end, and beside it `<name>.mask.npy` [n, longest] int32, 1 for a real
token and 0 for padding (the `attention_mask` of `transformers`' padded batches).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.inference.batching import (
    BucketedModel,
    ShapeBuckets,
    encoder_outputs,
    padded_batches,
    single_sequence,
)
from bert_jax.inference.loading import load_for_inference
from bert_jax.model import BertConfig
from bert_jax.model.sentence import POOLINGS, SentenceConfig, l2_normalize, pool
from input_pipeline.output_file import refuse_existing_file, write_output_file
from input_pipeline.tasks.sentence_features import lower_case


@dataclasses.dataclass
class Encodings:
    """The vectors of n texts; token vectors only when asked for."""
    sentence_vectors: np.ndarray        # [n, hidden] float32.
    token_ids: np.ndarray               # [total tokens] int32, [CLS] and [SEP] included.
    offsets: np.ndarray                 # [n + 1] int64: text i is rows offsets[i]:offsets[i + 1].
    token_vectors: np.ndarray | None    # [total tokens, hidden] float32, or None.
    pooling: str = "mean"               # How the sentence vectors were pooled,
    normalized: bool = False            # and whether scaled to unit length.

    def tokens(self, i: int) -> np.ndarray:
        """Text i's token vectors [its length, hidden]."""
        if self.token_vectors is None:
            raise ValueError("token vectors were not computed; encode with with_tokens=True.")
        return self.token_vectors[self.offsets[i]:self.offsets[i + 1]]

    def padded_tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """(token vectors [n, longest, hidden] float32, zeros past each text's end; mask [n,
        longest] int32, 1 on real tokens), longest being the most tokens of any text."""
        if self.token_vectors is None:
            raise ValueError("token vectors were not computed; encode with with_tokens=True.")
        lengths = np.diff(self.offsets)
        longest = int(lengths.max(initial=0))
        mask = (np.arange(longest) < lengths[:, None]).astype(np.int32)
        vectors = np.zeros((len(lengths), longest, self.token_vectors.shape[1]), np.float32)
        vectors[mask.astype(bool)] = self.token_vectors  # row-major: text 0's tokens first, as stored
        return vectors, mask


class SentenceEncoder(BucketedModel):
    """Texts to vectors. Build it with `SentenceEncoder.load(path)`.

    It needs no head, so it also loads a `BertModel` without a pooler (`pooler` pooling then
    reads a freshly initialized one, which `load` logs). `sentence` (the model's own, from `load`)
    sets the default pooling and normalization, the longest input, and the prompt."""
    task = "encode"

    def __init__(self, params: Any, config: BertConfig, tokenizer: Any, max_batch_size: int = 32,
                 sentence: SentenceConfig | None = None):
        super().__init__(params, config, tokenizer, max_batch_size)
        self.sentence = sentence or SentenceConfig()
        self.buckets = ShapeBuckets.for_model(self.sentence.max_length(config.max_position_embeddings),
                                              max_batch_size)
        self._encode = self.jit(self._vectors, static_argnames=("pooling", "normalize", "with_tokens"))

    @classmethod
    def load(cls, path: str | os.PathLike, step: int | None = None, dtype: str | None = None,
             **kwargs) -> SentenceEncoder:
        """From a work directory, a sentence-transformers or Hugging Face directory or a Google
        checkpoint (see `load_for_inference`), with the model's own `SentenceConfig`."""
        loaded = load_for_inference(path, step, dtype)
        return cls(loaded.params, loaded.config, loaded.tokenizer, sentence=loaded.sentence, **kwargs)

    def _vectors(self, params: Any, input_ids: jax.Array, input_mask: jax.Array, segment_ids: jax.Array,
                 first_pooled: jax.Array, pooling: str, normalize: bool, with_tokens: bool
                 ) -> tuple[jax.Array, jax.Array | None]:
        sequence, pooled = encoder_outputs(self.model, params, input_ids, input_mask, segment_ids)
        tokens = sequence.astype(jnp.float32) if with_tokens else None
        # A prompt's tokens (positions before `first_pooled`) are left out when it is not pooled.
        pooled_mask = input_mask * (jnp.arange(input_mask.shape[1]) >= first_pooled)
        vectors = pool(sequence, pooled, pooled_mask, pooling)
        return l2_normalize(vectors) if normalize else vectors, tokens

    def __call__(self, texts: Sequence[str], pooling: str | None = None, with_tokens: bool = False,
                 truncate: bool = False, normalize: bool | None = None,
                 prompt_name: str | None = None) -> Encodings:
        """Encodes each text as `[CLS] prompt text [SEP]`; results in input order.

        `pooling` and `normalize` (to unit length) default to the model's `SentenceConfig`'s, the
        prompt to its default prompt (none for most models); `prompt_name` names another of its
        prompts.

        Raises ValueError for an unknown pooling or prompt, or a text longer than the model takes
        unless `truncate` (then it is cut to the model's length).
        """
        sentence = self.sentence
        pooling = sentence.pooling if pooling is None else pooling
        normalize = sentence.normalize if normalize is None else normalize
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} must be one of {POOLINGS}.")
        texts = [texts] if isinstance(texts, str) else list(texts)
        prompt = sentence.prompt(prompt_name)
        # As sentence-transformers: the prompt goes before the text, then both are lower-cased if
        # the model says so, and the prompt's length is [CLS] and its own tokens.
        texts = [prompt + text for text in texts]
        if sentence.do_lower_case:
            prompt, texts = lower_case(prompt), [lower_case(text) for text in texts]
        first_pooled = 1 + len(self.tokenizer.encode(prompt)) if prompt and not sentence.include_prompt else 0
        sequences = [single_sequence(self.tokenizer, text, self.buckets.max_length, truncate,
                                     what=f"text {i + 1}") for i, text in enumerate(texts)]
        lengths = np.array([len(s.ids) for s in sequences], np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        token_ids = np.fromiter((t for s in sequences for t in s.ids), np.int32, int(offsets[-1]))
        vectors = np.zeros((len(texts), self.config.hidden_size), np.float32)
        tokens = np.zeros((int(offsets[-1]), self.config.hidden_size), np.float32) if with_tokens else None
        for batch in padded_batches(sequences, self.buckets):
            batch_vectors, batch_tokens = jax.device_get(self._encode(
                self.params, batch.input_ids, batch.input_mask, batch.segment_ids,
                np.int32(first_pooled), pooling=pooling, normalize=normalize, with_tokens=with_tokens))
            vectors[batch.rows] = batch_vectors[:len(batch.rows)]
            if with_tokens:
                for r, i in enumerate(batch.rows):
                    tokens[offsets[i]:offsets[i + 1]] = batch_tokens[r, :lengths[i]]
        return Encodings(vectors, token_ids, offsets, tokens, pooling, normalize)


def read_sentences(path: str | os.PathLike) -> list[str]:
    """The lines of a UTF-8 text file, one text each; every line counts (a blank one too), so
    that row i of the output is line i + 1 of the file."""
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def padded_mask_path(padded_tokens_path: str | os.PathLike) -> str:
    """Where `save_encodings` writes the mask of the padded token vectors: `x.npy` -> `x.mask.npy`."""
    path = os.fspath(padded_tokens_path)
    return (path.removesuffix(".npy")) + ".mask.npy"


def encoding_files(sentence_path: str | os.PathLike, tokens_path: str | os.PathLike | None = None,
                   padded_tokens_path: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """The files `save_encodings` writes, each with the option that names it. numpy's naming:
    `.npy` (`.npz` for the token vectors) is added to a path without it. A ValueError if two
    are the same file."""
    def named(path: str | os.PathLike, suffix: str) -> str:
        path = os.fspath(path)
        return path if path.endswith(suffix) else path + suffix

    files = [(named(sentence_path, ".npy"), "--output")]
    if tokens_path is not None:
        files.append((named(tokens_path, ".npz"), "--tokens"))
    if padded_tokens_path is not None:
        files += [(named(padded_tokens_path, ".npy"), "--padded-tokens"),
                  (padded_mask_path(padded_tokens_path), "--padded-tokens (its mask)")]
    paths = [os.path.abspath(path) for path, _ in files]
    if len(set(paths)) < len(paths):
        raise ValueError(f"the outputs {[path for path, _ in files]} name one file twice; give "
                         "each its own path.")
    return files


def save_encodings(encodings: Encodings, sentence_path: str | os.PathLike,
                   tokens_path: str | os.PathLike | None = None,
                   padded_tokens_path: str | os.PathLike | None = None, *,
                   overwrite: bool = False) -> None:
    """The sentence vectors to `sentence_path` (.npy) and, if given, the token vectors to
    `tokens_path` (.npz with `token_vectors`, `token_ids`, `offsets`) and padded to
    `padded_tokens_path` (.npy, its mask beside it: `padded_mask_path`); see the module docstring.

    Each file is written whole or not at all (`input_pipeline.output_file`); if any of them
    exists and not `overwrite`, FileExistsError and nothing is written."""
    if (tokens_path is not None or padded_tokens_path is not None) and encodings.token_vectors is None:
        raise ValueError("token vectors were not computed; encode with with_tokens=True.")
    files = encoding_files(sentence_path, tokens_path, padded_tokens_path)
    for path, flag in files:
        refuse_existing_file(path, overwrite, flag)
    arrays: list[Any] = [lambda f: np.save(f, encodings.sentence_vectors)]
    if tokens_path is not None:
        arrays.append(lambda f: np.savez(f, token_vectors=encodings.token_vectors,
                                         token_ids=encodings.token_ids, offsets=encodings.offsets))
    if padded_tokens_path is not None:
        vectors, mask = encodings.padded_tokens()
        arrays += [lambda f: np.save(f, vectors), lambda f: np.save(f, mask)]
    for (path, flag), write in zip(files, arrays):
        write_output_file(path, write, overwrite=overwrite, flag=flag)


def load_token_vectors(path: str | os.PathLike) -> list[np.ndarray]:
    """The token vectors of a `.npz` written by `save_encodings`, one [length, hidden] array per text."""
    with np.load(path) as data:
        vectors, offsets = data["token_vectors"], data["offsets"]
    return [vectors[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
