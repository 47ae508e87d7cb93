"""Training-step throughput of bert-jax on this machine's devices. Prints a table.

  python benchmarks/train_step.py [--sizes tiny mini] [--batch 32] [--seq 128] [--steps 20]
      [--dtype bfloat16] [--set model.remat=full] [--memory-batch 64] [--peak-tflops 800] [--json]

Times the jitted train step alone (synthetic batches, no input pipeline), after compilation,
and reports compile time, sequences/s, tokens/s, model TFLOP/s (matmul FLOPs counted from the
config, as in `bert_jax/model/flops.py`), MFU against the device's datasheet peak and against
`--peak-tflops` (a measured practical peak), and the device's peak memory. `--memory-batch N`
also compiles the step at batch N (without running it) so that XLA's memory plan at two batch
sizes gives the largest batch that fits (the plan grows linearly with the batch).

`--batch-file B.npz` times the step on a saved batch instead (e.g. rows packed from real shards,
written by `benchmarks/packing.py --save-batch`; no TensorFlow needed to read it): its rows,
length and predictions set the shapes, and sequences/s counts the sequences in packed rows.
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import jax
import numpy as np
from step_timing import synthetic_batch

from bert_jax.config.files import load_config
from bert_jax.config.pretraining import PretrainingData
from bert_jax.config.run import RunConfig
from bert_jax.model import BertForPreTraining, flops
from bert_jax.parallel import sharding
from bert_jax.state.optimizer import make_optimizer
from bert_jax.state.train_state import create_state, state_shardings
from bert_jax.training.plan import planned_bytes
from bert_jax.training.pretraining import PretrainingObjective
from bert_jax.training.step import train_step


def measure(size: str, batch: int, seq: int, steps: int, dtype: str, overrides: list[str],
            memory_batch: int = 0, peak_tflops: float = 0.0, batch_file: str = "") -> dict:
    saved = dict(np.load(batch_file)) if batch_file else None
    if saved is not None:
        batch, seq = saved["input_ids"].shape
        overrides = [*overrides, f"data.max_predictions_per_seq={saved['masked_lm_ids'].shape[1]}"]

    def setup(rows: int):
        config = load_config(f"bert_{size}", [
            "data.train_files=unused", f"data.max_seq_length={seq}", f"train.global_batch_size={rows}",
            f"model.dtype={dtype}", *overrides])
        mesh = sharding.make_mesh(config.mesh.shape)
        run = RunConfig.from_config(config)
        model_config = run.model
        objective = PretrainingObjective.for_data(BertForPreTraining(model_config),
                                                  PretrainingData.from_config(config))
        optimizer, schedule = make_optimizer(run.optimizer, run.loop.num_steps)
        shardings = state_shardings(objective.init_params, optimizer, mesh, run.mesh.rules)
        predictions = config.data.max_predictions_per_seq
        arrays = (saved if saved is not None and rows == batch
                  else synthetic_batch(rows, seq, predictions, model_config.vocab_size))
        batch_arrays = jax.device_put(arrays, sharding.batch_sharding(mesh))
        step = jax.jit(functools.partial(train_step, objective=objective, optimizer=optimizer, schedule=schedule,
                                         seed=0, rng_impl=run.loop.rng_impl), donate_argnums=0)
        return config, model_config, objective, optimizer, shardings, batch_arrays, step

    config, model_config, objective, optimizer, shardings, batch_arrays, step = setup(batch)
    predictions = config.data.max_predictions_per_seq
    state = create_state(objective.init_params, optimizer, shardings, config.train.seed)
    start = time.perf_counter()
    compiled = step.lower(state, batch_arrays).compile()
    compile_seconds = time.perf_counter() - start
    state, metrics = compiled(state, batch_arrays)
    first_loss = float(metrics["loss"])
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = compiled(state, batch_arrays)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - start) / steps
    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    step_flops = flops.train_flops_per_step(model_config, batch, seq, predictions)
    sequences = float(saved["next_sentence_weights"].sum()) if saved is not None and \
        "next_sentence_weights" in saved else batch
    tflops = step_flops / seconds / 1e12 / jax.device_count()
    datasheet = flops.peak_flops(device.device_kind)
    result = {
        "size": size, "dtype": dtype, "batch": batch, "seq": seq, "overrides": overrides,
        "device": f"{jax.device_count()} x {device.device_kind}", "jax": jax.__version__,
        "compile_s": compile_seconds, "step_ms": seconds * 1e3, "seq_per_s": sequences / seconds,
        "sequences_per_row": sequences / batch, "tok_per_s": batch * seq / seconds, "tflops": tflops,
        "first_loss": first_loss,
        "last_loss": float(metrics["loss"]),
        "mfu_datasheet": tflops * 1e12 / datasheet if datasheet else None,
        "mfu_practical": tflops / peak_tflops if peak_tflops else None,
        "peak_memory_gb": stats["peak_bytes_in_use"] / 1e9 if "peak_bytes_in_use" in stats else None,
        "memory_limit_gb": stats["bytes_limit"] / 1e9 if "bytes_limit" in stats else None,
        "planned_gb": (planned_bytes(compiled) or 0) / 1e9,
    }
    if memory_batch:
        del state, compiled
        *_, more_rows, bigger_step = setup(memory_batch)
        state_shapes = jax.eval_shape(lambda: create_state(objective.init_params, optimizer, shardings,
                                                           config.train.seed))
        bigger = bigger_step.lower(state_shapes, more_rows).compile()
        result["memory_batch"] = memory_batch
        result["memory_batch_planned_gb"] = (planned_bytes(bigger) or 0) / 1e9
        if result["memory_limit_gb"] and result["memory_batch_planned_gb"] > result["planned_gb"]:
            per_row = (result["memory_batch_planned_gb"] - result["planned_gb"]) / (memory_batch - batch)
            fixed = result["planned_gb"] - per_row * batch
            result["largest_batch_estimate"] = int((result["memory_limit_gb"] - fixed) / per_row)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "mini"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--memory-batch", type=int, default=0,
                        help="also plan memory at this batch, for the largest batch that fits")
    parser.add_argument("--peak-tflops", type=float, default=0.0,
                        help="a measured practical peak per device, for a second MFU column")
    parser.add_argument("--batch-file", default="", help="time the step on this saved batch (.npz)")
    parser.add_argument("--json", action="store_true", help="print one JSON line per measurement")
    args = parser.parse_args()
    device = jax.devices()[0]
    if not args.json:
        print(f"{jax.device_count()} x {device.device_kind} ({device.platform}), jax {jax.__version__}")
        print("| model | dtype | batch x seq | compile s | step ms | seq/s | tokens/s | TFLOP/s | MFU | peak GB |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        r = measure(size, args.batch, args.seq, args.steps, args.dtype, args.set, args.memory_batch,
                    args.peak_tflops, args.batch_file)
        if args.json:
            print(json.dumps(r), flush=True)
            continue
        mfu = f"{r['mfu_datasheet']:.1%}" if r["mfu_datasheet"] else "-"
        peak = f"{r['peak_memory_gb']:.1f}" if r["peak_memory_gb"] else "-"
        print(f"| BERT-{size} | {r['dtype']} | {r['batch']} x {r['seq']} | {r['compile_s']:.1f} | "
              f"{r['step_ms']:.1f} | {r['seq_per_s']:.1f} | {r['tok_per_s']:,.0f} | {r['tflops']:.3f} | "
              f"{mfu} | {peak} |")


if __name__ == "__main__":
    main()
