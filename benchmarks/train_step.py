"""Training-step throughput of bert-jax on this machine's devices. Prints a table.

  python benchmarks/train_step.py [--sizes tiny mini] [--batch 32] [--seq 128] [--steps 20]

Times the jitted train step alone (synthetic batches, no input pipeline), after compilation,
and reports compile time, sequences/s, tokens/s and model TFLOP/s (matmul FLOPs counted from the
config, as in `bert_jax/flops.py`).
"""

from __future__ import annotations

import argparse
import functools
import time

import jax

from bert_jax import experiment_config, flops, sharding
from bert_jax.model import BertForPreTraining
from bert_jax.optimizer import make_optimizer
from bert_jax.train import create_state, state_shardings
from bert_jax.train_step import train_step
from step_timing import synthetic_batch


def measure(size: str, batch: int, seq: int, steps: int, dtype: str, overrides: list[str]) -> dict:
    config = experiment_config.load_config(f"bert_{size}", [
        "data.train_files=unused", f"data.max_seq_length={seq}", f"train.global_batch_size={batch}",
        f"model.dtype={dtype}", *overrides])
    predictions = config.data.max_predictions_per_seq
    mesh = sharding.make_mesh(config.mesh.shape)
    model_config = experiment_config.bert_config(config)
    model = BertForPreTraining(model_config)
    optimizer, schedule = make_optimizer(config.optimizer, config.train.num_steps)
    shardings = state_shardings(model, optimizer, config, mesh)
    state = create_state(model, optimizer, config, shardings)
    batch_arrays = jax.device_put(synthetic_batch(batch, seq, predictions, model_config.vocab_size),
                                  sharding.batch_sharding(mesh))
    step = jax.jit(functools.partial(train_step, model=model, optimizer=optimizer, schedule=schedule,
                                     seed=0), donate_argnums=0)
    start = time.perf_counter()
    compiled = step.lower(state, batch_arrays).compile()
    compile_seconds = time.perf_counter() - start
    state, metrics = compiled(state, batch_arrays)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = compiled(state, batch_arrays)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - start) / steps
    step_flops = flops.train_flops_per_step(model_config, batch, seq, predictions)
    return {"size": size, "dtype": dtype, "batch": batch, "seq": seq, "compile_s": compile_seconds,
            "step_ms": seconds * 1e3, "seq_per_s": batch / seconds, "tok_per_s": batch * seq / seconds,
            "tflops": step_flops / seconds / 1e12}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "mini"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    device = jax.devices()[0]
    print(f"{jax.device_count()} x {device.device_kind} ({device.platform}), jax {jax.__version__}")
    print("| model | dtype | batch x seq | compile s | step ms | seq/s | tokens/s | TFLOP/s |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        r = measure(size, args.batch, args.seq, args.steps, args.dtype, args.set)
        print(f"| BERT-{size} | {r['dtype']} | {r['batch']} x {r['seq']} | {r['compile_s']:.1f} | "
              f"{r['step_ms']:.1f} | {r['seq_per_s']:.1f} | {r['tok_per_s']:,.0f} | {r['tflops']:.3f} |")


if __name__ == "__main__":
    main()
