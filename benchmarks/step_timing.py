"""What both sides of a train-step benchmark share: the synthetic batch and the timing of a
compiled step. Imports only numpy at module level, so it runs in bert-jax's environment and in
the Hugging Face peer's (`hf_flax_step.py`) alike."""

from __future__ import annotations

import os
import time

import numpy as np


def synthetic_batch(batch: int, seq: int, predictions: int, vocab: int, seed: int = 0) -> dict:
    """A pretraining batch of random ids with the original feature names (full-length rows,
    `predictions` distinct masked positions per row)."""
    rng = np.random.default_rng(seed)
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq), predictions, replace=False)
                                  for _ in range(batch)]), axis=1)
    return {
        "input_ids": rng.integers(5, vocab, (batch, seq)).astype(np.int32),
        "input_mask": np.ones((batch, seq), np.int32),
        "segment_ids": (np.arange(seq)[None, :] >= seq // 2).astype(np.int32).repeat(batch, 0),
        "masked_lm_positions": positions.astype(np.int32),
        "masked_lm_ids": rng.integers(5, vocab, (batch, predictions)).astype(np.int32),
        "masked_lm_weights": np.ones((batch, predictions), np.float32),
        "next_sentence_labels": rng.integers(0, 2, batch).astype(np.int32),
    }


def packed_batch(directory: str, batch: int, seq: int, predictions: int, max_sequences: int) -> dict:
    """`batch` rows packed from the first 2,048 examples of the shards in `directory`, in the
    order the trainer's `PackedBatches` serves them."""
    from input_pipeline.reading.packing import PackedBatches, PackingConfig
    from input_pipeline.reading.reader import ReaderConfig, numpy_batches

    window = 2048
    examples = next(numpy_batches(ReaderConfig((directory,), window, seq, predictions, repeat=False)))
    real = examples.pop("example_weights") > 0
    examples = {k: v[real] for k, v in examples.items()}
    rows = PackedBatches(iter([examples]), batch, seq, PackingConfig(max_sequences, predictions + max_sequences))
    return next(rows)


def time_step(step, state, batch, steps: int) -> dict:
    """Compiles `step(state, batch) -> (state, metrics)` (a jitted function that donates the
    state), runs it once, then times `steps` steps one by one; returns the measurements."""
    import jax

    start = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_seconds = time.perf_counter() - start
    state, metrics = compiled(state, batch)
    first_loss = float(metrics["loss"])
    load_before = os.getloadavg()[0]
    times = []
    cpu_start = time.process_time()
    for _ in range(steps):
        start = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    cpu_seconds = (time.process_time() - cpu_start) / steps
    seconds = float(np.median(times))
    rows, length = batch["input_ids"].shape
    device = jax.devices()[0]
    return {"compile_s": compile_seconds, "step_ms": seconds * 1e3,
            "mean_step_ms": float(np.mean(times)) * 1e3, "min_step_ms": min(times) * 1e3,
            "cpu_ms_per_step": cpu_seconds * 1e3, "seq_per_s": rows / seconds,
            "tok_per_s": rows * length / seconds, "first_loss": first_loss,
            "last_loss": float(metrics["loss"]), "load_before": load_before,
            "load_after": os.getloadavg()[0],
            "device": f"{jax.device_count()} x {device.device_kind} ({device.platform})"}
