"""What every inference task shares after loading: turning texts into `[CLS] ... [SEP]` token
sequences, and padding them into a small fixed set of (batch, length) shapes so that a jitted
function compiles once per shape bucket, not once per request.

Lengths round up to powers of two from 16 to the model's `max_position_embeddings` (which is the
last bucket even when it is not a power of two); batch sizes round up to powers of two up to
`max_batch_size`, and longer inputs are cut into batches of that size. A stream of requests of any
lengths and counts therefore compiles at most `len(lengths) * len(batch_sizes)` programs per task
(`ShapeBuckets.num_shapes`); `BucketedModel.trace_count` counts them.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from bert_jax.inference.loading import load_for_inference, require_heads
from bert_jax.model import BertConfig, BertForPreTraining
from input_pipeline.tasks.truncation import truncate_pair

Tokenizer = Any  # BertTokenizer or input_pipeline.tokenizers.sentencepiece_tokenizer.SentencePieceTokenizer


class Tokens(NamedTuple):
    """One model input before padding: token ids and segment ids of the same length."""
    ids: list[int]
    segments: list[int]


def too_long(what: str, length: int, max_length: int) -> ValueError:
    """The error for an input of `length` tokens where the model takes `max_length`."""
    return ValueError(f"{what} is {length} tokens with [CLS] and [SEP]; the model takes at most "
                      f"{max_length}. Shorten it, or truncate (truncate=True, --truncate).")


def single_sequence(tokenizer: Tokenizer, text: str, max_length: int, truncate: bool = False,
                    what: str | None = None) -> Tokens:
    """`[CLS] text [SEP]`, all segment 0. Too long: cut to `max_length` if `truncate`, else a
    ValueError naming `what` (default: the text's start)."""
    ids = tokenizer.encode(text)
    if len(ids) + 2 > max_length:
        if not truncate:
            raise too_long(what or repr(text[:40] + "..."), len(ids) + 2, max_length)
        ids = ids[:max_length - 2]
    ids = [tokenizer.cls_id, *ids, tokenizer.sep_id]
    return Tokens(ids, [0] * len(ids))


def sequence_pair(tokenizer: Tokenizer, text_a: str, text_b: str, max_length: int,
                  truncate: bool = False, what: str | None = None) -> Tokens:
    """`[CLS] a [SEP] b [SEP]` with segment 0 for `[CLS] a [SEP]` and 1 for `b [SEP]`, as in
    pretraining. Too long: cut as BERT's `run_classifier.py` cuts pairs (the longer text loses
    its last token until they fit; `input_pipeline.tasks.truncation`) if `truncate`, else a
    ValueError."""
    a, b = tokenizer.encode(text_a), tokenizer.encode(text_b)
    if len(a) + len(b) + 3 > max_length:
        if not truncate:
            raise too_long(what or repr(text_a[:30] + "...") + " with its pair",
                            len(a) + len(b) + 3, max_length)
        truncate_pair(a, b, max_length - 3, rule="google")
    ids = [tokenizer.cls_id, *a, tokenizer.sep_id, *b, tokenizer.sep_id]
    return Tokens(ids, [0] * (len(a) + 2) + [1] * (len(b) + 1))


def doubling_sizes(minimum: int, maximum: int) -> tuple[int, ...]:
    """minimum, 2 * minimum, 4 * minimum, ... below `maximum`, then `maximum` itself."""
    sizes = []
    size = minimum
    while size < maximum:
        sizes.append(size)
        size *= 2
    return (*sizes, maximum)


def round_up(n: int, sizes: Sequence[int]) -> int:
    """The smallest of `sizes` (ascending) that holds `n`."""
    for size in sizes:
        if n <= size:
            return size
    raise ValueError(f"{n} exceeds the largest bucket, {sizes[-1]}.")


@dataclasses.dataclass(frozen=True)
class ShapeBuckets:
    """The padded lengths and batch sizes inputs are rounded up to."""
    lengths: tuple[int, ...]
    batch_sizes: tuple[int, ...]

    @classmethod
    def for_model(cls, max_length: int, max_batch_size: int = 32, min_length: int = 16) -> ShapeBuckets:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size={max_batch_size} must be at least 1.")
        return cls(doubling_sizes(min(min_length, max_length), max_length),
                   doubling_sizes(1, max_batch_size))

    @property
    def max_length(self) -> int:
        return self.lengths[-1]

    @property
    def max_batch_size(self) -> int:
        return self.batch_sizes[-1]

    @property
    def num_shapes(self) -> int:
        """How many (batch, length) shapes there are: the most compilations a task can cause."""
        return len(self.lengths) * len(self.batch_sizes)


@dataclasses.dataclass(frozen=True)
class PaddedBatch:
    """Some of the inputs, padded to a bucket shape; rows past `len(rows)` are all padding."""
    rows: list[int]           # The index, among all inputs, of each real row.
    input_ids: np.ndarray     # [batch bucket, length bucket] int32, 0 ([PAD]) past each end.
    input_mask: np.ndarray    # 1 on real tokens, 0 on padding.
    segment_ids: np.ndarray
    lengths: np.ndarray       # [len(rows)] real lengths.


def padded_batches(sequences: Sequence[Tokens], buckets: ShapeBuckets) -> Iterator[PaddedBatch]:
    """`sequences` in batches of bucket shapes.

    Sequences are grouped by length (sorted, longest first, so the first batch shows at once
    whether the longest input fits in memory), which keeps padding small; each batch's `rows`
    says which inputs it holds, for putting results back in input order.
    """
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i].ids))
    for start in range(0, len(order), buckets.max_batch_size):
        rows = order[start:start + buckets.max_batch_size]
        lengths = np.array([len(sequences[i].ids) for i in rows])
        shape = (round_up(len(rows), buckets.batch_sizes), round_up(int(lengths.max()), buckets.lengths))
        input_ids = np.zeros(shape, np.int32)
        segment_ids = np.zeros(shape, np.int32)
        input_mask = np.zeros(shape, np.int32)
        for r, i in enumerate(rows):
            n = lengths[r]
            input_ids[r, :n] = sequences[i].ids
            segment_ids[r, :n] = sequences[i].segments
            input_mask[r, :n] = 1
        yield PaddedBatch(rows, input_ids, input_mask, segment_ids, lengths)


def encoder_outputs(model: BertForPreTraining, params: Any, input_ids: jax.Array, input_mask: jax.Array,
                    segment_ids: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The encoder's sequence output [batch, length, hidden] and pooled output [batch, hidden]
    from the parameters of a `BertForPreTraining` (heads unused)."""
    return model.apply({"params": params}, input_ids, input_mask, segment_ids,
                       method=lambda module, *inputs: module.bert(*inputs))


class BucketedModel:
    """A loaded model (params, config, tokenizer) whose jitted functions see only bucket shapes.

    Subclasses build their jitted functions with `self.jit`, which counts traces in
    `trace_count`: a trace is a compilation, so the count shows that a stream of requests
    compiles once per bucket shape and then never again.
    """

    def __init__(self, params: Any, config: BertConfig, tokenizer: Tokenizer, max_batch_size: int = 32):
        self.params = params
        self.config = config
        self.tokenizer = tokenizer
        self.model = BertForPreTraining(config)
        self.buckets = ShapeBuckets.for_model(config.max_position_embeddings, max_batch_size)
        self.trace_count = 0

    # The heads this task reads (see `require_heads`), and its name for errors.
    required_heads: tuple[str, ...] = ()
    task = "this task"

    @classmethod
    def load(cls, path: str | os.PathLike, step: int | None = None, dtype: str | None = None, **kwargs):
        """From a work directory, a Hugging Face directory or a Google checkpoint (see
        `load_for_inference`); refuses a source without the heads the task reads."""
        loaded = load_for_inference(path, step, dtype)
        require_heads(loaded, cls.required_heads, cls.task)
        return cls(loaded.params, loaded.config, loaded.tokenizer, **kwargs)

    def jit(self, fn: Callable, static_argnames: Sequence[str] = ()) -> Callable:
        """`jax.jit(fn)`, counting in `self.trace_count` each time JAX traces (compiles) it."""
        @functools.wraps(fn)  # Keeps fn's signature, which static_argnames refer to.
        def counted(*args, **kwargs):
            # Python runs here only while JAX traces: once per new shape or static argument.
            self.trace_count += 1
            return fn(*args, **kwargs)
        return jax.jit(counted, static_argnames=tuple(static_argnames))

