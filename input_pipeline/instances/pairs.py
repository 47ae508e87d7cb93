"""Sentence-pair training instances for next-sentence prediction, as Google's
`create_pretraining_data.py` (`create_instances_from_document`) builds them.

A document is a list of sentences, each a list of token ids. Sentences are gathered into a chunk
until it reaches the target length; segment A is a random number of whole sentences from the
start of the chunk; half of the time segment B is the rest of the chunk (label 0, "is next"),
otherwise it is a span of a random other document (label 1, "random next") and the sentences of
the chunk that B did not use are put back for the next instance. When A took the whole chunk
(a one-sentence chunk), B is always random, so slightly more than half the labels are 1.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Sequence

Document = Sequence[Sequence[int]]


@dataclasses.dataclass(frozen=True)
class SentencePair:
    tokens_a: list[int]
    tokens_b: list[int]
    is_random_next: bool


@dataclasses.dataclass(frozen=True)
class PairingConfig:
    max_seq_length: int = 128
    # With this probability a document's instances target a random shorter length, so the model
    # also sees short sequences (fine-tuning inputs are often short).
    short_seq_prob: float = 0.1


def create_sentence_pairs(documents: Sequence[Document], document_index: int,
                          config: PairingConfig, rng: random.Random) -> list[SentencePair]:
    """All sentence pairs from one document, truncated to fit `[CLS] A [SEP] B [SEP]`."""
    if len(documents) < 2:  # Checked up front: otherwise only the seeds that draw a random B fail.
        raise ValueError(_TOO_FEW_DOCUMENTS)
    document = documents[document_index]
    max_num_tokens = config.max_seq_length - 3  # [CLS], [SEP], [SEP]
    # As in the original, the target length is drawn once per document.
    target_length = max_num_tokens
    if rng.random() < config.short_seq_prob:
        target_length = rng.randint(2, max_num_tokens)

    pairs: list[SentencePair] = []
    chunk: list[Sequence[int]] = []
    chunk_length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target_length:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = list(itertools.chain.from_iterable(chunk[:a_end]))
            tokens_b: list[int] = []
            if len(chunk) == 1 or rng.random() < 0.5:
                is_random_next = True
                other = _random_other_document(len(documents), document_index, rng)
                random_document = documents[other]
                target_b_length = target_length - len(tokens_a)
                for sentence in random_document[rng.randint(0, len(random_document) - 1):]:
                    tokens_b.extend(sentence)
                    if len(tokens_b) >= target_b_length:
                        break
                # The sentences of this chunk that B did not use start the next chunk.
                i -= len(chunk) - a_end
            else:
                is_random_next = False
                tokens_b = list(itertools.chain.from_iterable(chunk[a_end:]))
            truncate_pair(tokens_a, tokens_b, max_num_tokens, rng)
            pairs.append(SentencePair(tokens_a, tokens_b, is_random_next))
            chunk = []
            chunk_length = 0
        i += 1
    return pairs


_TOO_FEW_DOCUMENTS = ("next-sentence pairs need at least two documents (separate documents with a "
                      "blank line in the input text).")


def _random_other_document(num_documents: int, document_index: int, rng: random.Random) -> int:
    # Uniform over the other documents (the original retried up to 10 times and could, rarely,
    # pick the same document).
    other = rng.randrange(num_documents - 1)
    return other + 1 if other >= document_index else other


def truncate_pair(tokens_a: list[int], tokens_b: list[int], max_num_tokens: int,
                  rng: random.Random) -> None:
    """Shortens the longer segment, one token at a time from a random end, until the pair fits.

    Removing from either end (not always the tail) avoids biasing the model towards sentence
    starts. Works in place.
    """
    # The same draws as deleting one token at a time, on indices: `del tokens[0]` is O(length).
    a_start, a_end, b_start, b_end = 0, len(tokens_a), 0, len(tokens_b)
    while (a_end - a_start) + (b_end - b_start) > max_num_tokens:
        cut_front = rng.random() < 0.5
        if a_end - a_start > b_end - b_start:
            a_start, a_end = (a_start + 1, a_end) if cut_front else (a_start, a_end - 1)
        else:
            b_start, b_end = (b_start + 1, b_end) if cut_front else (b_start, b_end - 1)
    tokens_a[:] = tokens_a[a_start:a_end]
    tokens_b[:] = tokens_b[b_start:b_end]
