"""Training data held in memory, as fine-tuning sets are (thousands of examples, not billions):
numpy arrays with one row per example, served in an order drawn per epoch from (seed, epoch),
each process its own rows of every global batch, and the position saved in checkpoints like the
shard reader's (`save(prefix)` / `restore(prefix)`), so that a resumed run sees the batches an
uninterrupted one would.

With `LengthBuckets`, each batch's sequence features are cut to the smallest of a few lengths
(32, 64, 128, ... up to the arrays' own) that holds the batch's longest example: short texts
cost short sequences, and a run compiles its step once per length, at most `len(lengths)`
programs (`training.loop` compiles per batch shape). The bucket is chosen from the whole global
batch, so every process cuts its rows to the same length.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from input_pipeline import remote_files


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
    """Batches in one pass over `num_examples`, the last one partial: a task's run is
    `epochs * steps_per_epoch` steps."""
    return math.ceil(num_examples / global_batch_size)


def doubling_lengths(max_length: int, smallest: int = 32) -> tuple[int, ...]:
    """smallest, 2 * smallest, 4 * smallest, ... below `max_length`, then `max_length` itself."""
    lengths, length = [], min(smallest, max_length)
    while length < max_length:
        lengths.append(length)
        length *= 2
    return (*lengths, max_length)


@dataclasses.dataclass(frozen=True)
class LengthBuckets:
    """The lengths a batch's sequence `features` ([examples, lengths[-1]], right-padded) are cut
    to: the smallest that holds the longest of its examples (`example_lengths`, real tokens)."""
    lengths: tuple[int, ...]
    example_lengths: np.ndarray
    features: tuple[str, ...]

    def __post_init__(self):
        if not self.lengths or list(self.lengths) != sorted(set(self.lengths)) or self.lengths[0] < 1:
            raise ValueError(f"length buckets {self.lengths} must be distinct positive lengths, ascending.")
        longest = int(np.max(self.example_lengths, initial=0))
        if longest > self.lengths[-1]:
            raise ValueError(f"an example of {longest} tokens is longer than the longest bucket, "
                             f"{self.lengths[-1]}.")

    @classmethod
    def doubling(cls, max_length: int, example_lengths: np.ndarray, features: Sequence[str],
                 smallest: int = 32) -> LengthBuckets:
        """Buckets of `doubling_lengths(max_length, smallest)`."""
        return cls(doubling_lengths(max_length, smallest), np.asarray(example_lengths), tuple(features))

    def length_of(self, examples: np.ndarray) -> int:
        """The bucket of a batch of `examples` (indices): the smallest length holding them all."""
        longest = int(np.max(self.example_lengths[examples], initial=1))
        return next(length for length in self.lengths if length >= longest)


class ArrayBatches:
    """This process's rows of every global batch of `arrays` (feature name -> [examples, ...]).

    An epoch is `steps_per_epoch` batches; the rows missing from its last are padding (copies
    of the first example, so every feature keeps its shape and dtype) with weight 0 in the
    `example_weights` this adds to every batch. With `shuffle` each epoch's order is a
    permutation drawn from (seed, epoch) alone; with `repeat` epochs follow each other forever,
    else one pass ends the iterator (evaluation). Process `p` of `P` takes rows
    [p * B / P, (p + 1) * B / P) of every global batch of B rows. With `buckets`, each batch's
    sequence features are cut to its bucket's length.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], global_batch_size: int, *, seed: int = 0,
                 shuffle: bool = True, repeat: bool = True, process_index: int = 0,
                 process_count: int = 1, buckets: LengthBuckets | None = None):
        lengths = {name: len(value) for name, value in arrays.items()}
        if len(set(lengths.values())) != 1 or not min(lengths.values(), default=0):
            raise ValueError(f"every feature needs the same number of examples, at least one; got {lengths}.")
        if global_batch_size % process_count:
            raise ValueError(f"the global batch of {global_batch_size} rows does not divide among "
                             f"{process_count} processes.")
        self.arrays = dict(arrays)
        self.num_examples = next(iter(lengths.values()))
        self.global_batch_size = global_batch_size
        self.seed, self.shuffle, self.repeat = seed, shuffle, repeat
        if buckets is not None:
            wrong = {name: self.arrays[name].shape for name in buckets.features
                     if self.arrays[name].shape[1:] != (buckets.lengths[-1],)}
            if len(buckets.example_lengths) != self.num_examples or wrong:
                raise ValueError(f"length buckets for {len(buckets.example_lengths)} examples of at most "
                                 f"{buckets.lengths[-1]} tokens do not fit these features: {wrong}.")
        self.buckets = buckets
        per_process = global_batch_size // process_count
        self._rows = slice(process_index * per_process, (process_index + 1) * per_process)
        self._epoch, self._batch = 0, 0  # The next batch: its epoch, and its index in that epoch.

    @property
    def batches_per_epoch(self) -> int:
        return steps_per_epoch(self.num_examples, self.global_batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The examples of `epoch`, in the order they are served."""
        if not self.shuffle:
            return np.arange(self.num_examples)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)

    def __iter__(self) -> ArrayBatches:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self._batch == self.batches_per_epoch:
            if not self.repeat:
                raise StopIteration
            self._epoch, self._batch = self._epoch + 1, 0
        size = self.global_batch_size
        examples = self.epoch_order(self._epoch)[self._batch * size:(self._batch + 1) * size]
        self._batch += 1
        weights = (np.arange(size) < len(examples)).astype(np.float32)
        # From the global batch's real examples: every process cuts to the same length.
        length = self.buckets.length_of(examples) if self.buckets is not None else None
        cut = self.buckets.features if self.buckets is not None else ()
        examples = np.concatenate([examples, np.zeros(size - len(examples), examples.dtype)])
        local = examples[self._rows]
        return {name: value[local][:, :length] if name in cut else value[local]
                for name, value in self.arrays.items()} | {"example_weights": weights[self._rows]}

    def save(self, prefix: str) -> None:
        """Writes the position (epoch and batch within it) to `prefix.json`."""
        with remote_files.open_file(prefix + ".json", "w") as f:
            json.dump({"epoch": self._epoch, "batch": self._batch, "examples": self.num_examples}, f)

    def restore(self, prefix: str) -> None:
        """Continues from a position written by `save` for the same examples."""
        with remote_files.open_file(prefix + ".json") as f:
            position = json.load(f)
        if position["examples"] != self.num_examples:
            raise ValueError(f"{prefix}.json is the position in {position['examples']} examples, "
                             f"these are {self.num_examples}.")
        self._epoch, self._batch = position["epoch"], position["batch"]


class ArrayData:
    """The training data of a task held in memory (`training.objective.TrainData`): one stage,
    shuffled `ArrayBatches` over `arrays`, each process its own rows, cut to `buckets` if given."""

    def __init__(self, arrays: Mapping[str, np.ndarray], global_batch_size: int, seed: int = 0,
                 buckets: LengthBuckets | None = None):
        self.arrays = dict(arrays)
        self.buckets = buckets
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.num_examples = len(next(iter(self.arrays.values())))

    def stage_at(self, step: int) -> str:
        return f"{self.num_examples:,} examples in memory"

    def batches(self, stage: str) -> ArrayBatches:
        return ArrayBatches(self.arrays, self.global_batch_size, seed=self.seed, buckets=self.buckets,
                            process_index=jax.process_index(), process_count=jax.process_count())

    def position(self, stage: str) -> dict:
        return {"examples": self.num_examples, "global_batch_size": self.global_batch_size,
                "seed": self.seed, "features": sorted(self.arrays)}
