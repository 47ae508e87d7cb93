"""Training data held in memory, as fine-tuning sets are (thousands of examples, not billions):
numpy arrays with one row per example, served in an order drawn per epoch from (seed, epoch),
each process its own rows of every global batch, and the position saved in checkpoints like the
shard reader's (`save(prefix)` / `restore(prefix)`), so that a resumed run sees the batches an
uninterrupted one would.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import jax
import numpy as np

from input_pipeline import remote_files


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
    """Batches in one pass over `num_examples`, the last one partial: a task's run is
    `epochs * steps_per_epoch` steps."""
    return math.ceil(num_examples / global_batch_size)


class ArrayBatches:
    """This process's rows of every global batch of `arrays` (feature name -> [examples, ...]).

    An epoch is `steps_per_epoch` batches; the rows missing from its last are padding (copies
    of the first example, so every feature keeps its shape and dtype) with weight 0 in the
    `example_weights` this adds to every batch. With `shuffle` each epoch's order is a
    permutation drawn from (seed, epoch) alone; with `repeat` epochs follow each other forever,
    else one pass ends the iterator (evaluation). Process `p` of `P` takes rows
    [p * B / P, (p + 1) * B / P) of every global batch of B rows.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], global_batch_size: int, *, seed: int = 0,
                 shuffle: bool = True, repeat: bool = True, process_index: int = 0,
                 process_count: int = 1):
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
        examples = np.concatenate([examples, np.zeros(size - len(examples), examples.dtype)])
        local = examples[self._rows]
        return {name: value[local] for name, value in self.arrays.items()} | {
            "example_weights": weights[self._rows]}

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
    shuffled `ArrayBatches` over `arrays`, each process its own rows."""

    def __init__(self, arrays: Mapping[str, np.ndarray], global_batch_size: int, seed: int = 0):
        self.arrays = dict(arrays)
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.num_examples = len(next(iter(self.arrays.values())))

    def stage_at(self, step: int) -> str:
        return f"{self.num_examples:,} examples in memory"

    def batches(self, stage: str) -> ArrayBatches:
        return ArrayBatches(self.arrays, self.global_batch_size, seed=self.seed,
                            process_index=jax.process_index(), process_count=jax.process_count())

    def position(self, stage: str) -> dict:
        return {"examples": self.num_examples, "global_batch_size": self.global_batch_size,
                "seed": self.seed, "features": sorted(self.arrays)}
