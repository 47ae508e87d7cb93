"""Runs sharded training in fresh processes for `tests/test_sharding.py`, `tests/test_multihost.py`
and `tests/test_multihost_pretrain.py`.

The pytest process has already imported JAX with one CPU device, and fake CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=N`) must be requested before JAX starts, so the
tests run this script as subprocesses (`multihost_command` below builds the command line and
environment). Modes:

* `equivalence`: one process, 8 devices. Two train steps from the same initial state and the same
  global batches on one device and on several (data, fsdp, tensor) meshes; writes the losses,
  the relative differences of the parameters and optimizer state, and where every array lives.
* `steps`: one or more processes (`--num-processes`, `--process-id`, `--coordinator`). Trains a
  few steps on deterministic global batches of which every process feeds its own rows, as
  `train_and_evaluate` does; optionally saves the state with `Checkpointer`, restores another
  run's checkpoint, and writes the (gathered) state to `.npz` files.
* `pretrain`: `train_and_evaluate` itself, on shards, in every process.

Every process writes `<out>/process_<i>.json` (and its log to `<out>/process_<i>.log`); arrays go
to `.npz` files written by process 0. `run_workers` starts the processes and collects the results.
`BERT_JAX_TEST_OVERRIDES` (a JSON list of `section.field=value`) changes the tiny model of the
`equivalence` and `steps` modes, e.g. `["model.scan_layers=False"]`, to check another variant by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# The tiny BERT of the equivalence checks: 8 heads so that every mesh axis of size 8 divides
# heads, vocab, feed-forward width and hidden size.
TINY_OVERRIDES = (
    "model.hidden_size=64", "model.num_layers=2", "model.num_heads=8", "model.intermediate_size=128",
    "model.vocab_size=1000", "model.hidden_dropout_rate=0.1", "model.attention_dropout_rate=0.1",
    "model.dtype='float32'", "data.max_seq_length=32", "data.max_predictions_per_seq=5",
    "data.train_files=unused", "optimizer.learning_rate=0.01", "optimizer.warmup_steps=0",
    "train.global_batch_size=16", "train.seed=3",
)


def multihost_command(mode: str, out: os.PathLike, *args: str, num_processes: int = 1,
                      process_id: int = 0, coordinator: str | None = None,
                      devices_per_process: int = 8) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of one worker process."""
    env = dict(os.environ)
    inherited = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = f"{inherited} --xla_force_host_platform_device_count={devices_per_process}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    command = [sys.executable, str(Path(__file__).resolve()), mode, "--out", str(out),
               "--num-processes", str(num_processes), "--process-id", str(process_id)]
    if coordinator:
        command += ["--coordinator", coordinator]
    return command + list(args), env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_workers(mode: str, out: os.PathLike, *args: str, num_processes: int = 1,
                total_devices: int = 8, timeout: float = 120) -> list[dict]:
    """Runs `num_processes` workers (of `total_devices / num_processes` CPU devices each) joined
    through `bert_jax.parallel.distributed`; returns each process's JSON payload. On a failure or past
    `timeout` seconds, kills the workers and raises an AssertionError with their stderr."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    coordinator = f"localhost:{free_port()}" if num_processes > 1 else None
    processes, logs = [], []
    for i in range(num_processes):
        command, env = multihost_command(mode, out, *args, num_processes=num_processes, process_id=i,
                                         coordinator=coordinator,
                                         devices_per_process=total_devices // num_processes)
        log = open(out / f"process_{i}.log", "w+")  # files, not pipes: a full pipe would block
        logs.append(log)
        processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + timeout
    timed_out = False
    # Once one process fails, the others would wait for it in a collective: stop them too.
    while any(p.poll() is None for p in processes) and not any(p.poll() for p in processes):
        if time.monotonic() > deadline:
            timed_out = True
            break
        time.sleep(0.1)
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
    codes = [p.returncode for p in processes]
    texts = []
    for log in logs:
        log.seek(0)
        texts.append(log.read())
        log.close()
    if timed_out or any(codes):
        report = "\n".join(f"--- process {i} (exit code {c}) ---\n{_without_noise(t)[-6000:]}"
                           for i, (c, t) in enumerate(zip(codes, texts)))
        raise AssertionError(f"{mode} with {num_processes} process(es) "
                             f"{'timed out after %d s' % timeout if timed_out else 'failed'}:\n{report}")
    return [json.loads((out / f"process_{i}.json").read_text()) for i in range(num_processes)]


def _without_noise(text: str) -> str:
    """Drops XLA's SPMD partitioner warnings, which would bury the error."""
    return "\n".join(line for line in text.splitlines() if "spmd_partitioner" not in line)


# --- Helpers. ---------------------------------------------------------------------------------------

def tiny_config(mesh: tuple[int, int, int], num_steps: int = 2, extra: tuple[str, ...] = ()):
    from bert_jax.config.files import load_config

    extra = tuple(extra) + tuple(json.loads(os.environ.get("BERT_JAX_TEST_OVERRIDES", "[]")))
    config = load_config(
        "cpu_demo", TINY_OVERRIDES + (f"train.num_steps={num_steps}",) + extra)
    config.mesh.shape.update(dict(zip(("data", "fsdp", "tensor"), mesh)))
    return config


def global_batch_numpy(config, step: int) -> dict:
    """A deterministic global batch: padded sequences of two segments, some padding predictions;
    with `data.packing`, rows packed from 4 times as many shorter sequences."""
    if config.data.packing:
        from input_pipeline.reading.packing import PackedBatches, PackingConfig

        k = config.data.max_sequences_per_pack
        examples = _examples_numpy(config, 1000 + step, 4 * config.train.global_batch_size, shortest=6,
                                   longest=config.data.max_seq_length // 2)
        packing = PackingConfig(k, config.data.max_predictions_per_seq + k)
        rows = next(PackedBatches(iter([examples]), config.train.global_batch_size,
                                  config.data.max_seq_length, packing, seed=step))
        assert rows["next_sentence_weights"].sum() > 1.5 * len(rows["input_ids"])
        return rows
    seq = config.data.max_seq_length
    return _examples_numpy(config, 1000 + step, config.train.global_batch_size, seq // 2, seq)


def _examples_numpy(config, seed: int, batch_size: int, shortest: int, longest: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    seq = config.data.max_seq_length
    preds, vocab = config.data.max_predictions_per_seq, config.model.vocab_size
    lengths = rng.integers(shortest, longest + 1, batch_size)
    positions = np.arange(seq)[None, :]
    input_mask = (positions < lengths[:, None]).astype(np.int32)
    input_ids = rng.integers(5, vocab, (batch_size, seq)).astype(np.int32) * input_mask
    segment_ids = ((positions >= (lengths // 2)[:, None]) & (input_mask > 0)).astype(np.int32)
    masked_lm_positions = np.stack([np.sort(rng.choice(np.arange(1, n), preds, replace=False))
                                    for n in lengths]).astype(np.int32)
    masked_lm_weights = (rng.random((batch_size, preds)) < 0.8).astype(np.float32)
    masked_lm_ids = rng.integers(5, vocab, (batch_size, preds)).astype(np.int32)
    input_ids[np.arange(batch_size)[:, None], masked_lm_positions] = 3  # [MASK]-like
    return {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids,
            "masked_lm_positions": masked_lm_positions, "masked_lm_ids": masked_lm_ids,
            "masked_lm_weights": masked_lm_weights,
            "next_sentence_labels": rng.integers(0, 2, batch_size).astype(np.int32)}


def process_rows(batch: dict, process_index: int, process_count: int) -> dict:
    """This process's contiguous slice of the global batch (what its reader would yield)."""
    n = len(batch["input_ids"]) // process_count
    return {k: v[process_index * n:(process_index + 1) * n] for k, v in batch.items()}


def setup(config, mesh):
    from tests.support.pretraining_parts import pretraining_parts

    return pretraining_parts(config, mesh)


def jitted_step(parts, mesh):
    """The step exactly as `train_and_evaluate` jits it."""
    from bert_jax.training.loop import jit_train_step

    return jit_train_step(parts.objective, parts.optimizer, parts.schedule, parts.run.loop, mesh,
                          parts.run.mesh.rules, parts.shardings)


def activation_constraints(step, state, batch) -> list[str]:
    """The distinct sharding constraints in the traced step (the model's activation annotations
    once the rules are in scope), as PartitionSpec strings."""
    import jax.extend.core

    found = set()

    def visit(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "sharding_constraint":
                found.add(str(eqn.params["sharding"].spec))
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                visit(sub)

    visit(step.trace(state, batch).jaxpr.jaxpr)
    return sorted(found)


def to_numpy(tree):
    """A tree of (possibly multi-process) global arrays as numpy arrays, on every process."""
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    if jax.process_count() > 1:
        return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
    return jax.tree.map(np.asarray, jax.device_get(tree))


def flatten(tree) -> dict:
    import jax

    return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def differences(a, b) -> dict[str, list[float]]:
    """Per leaf, [||a - b||, ||b||] (Frobenius norms, in float64)."""
    import numpy as np

    out = {}
    for (key, x), y in zip(flatten(a).items(), flatten(b).values()):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        out[key] = [float(np.linalg.norm(x - y)), float(np.linalg.norm(y))]
    return out


def placement(tree) -> dict:
    """Where every array of `tree` lives: global shape, the shape of one shard, the spec."""
    out = {}
    for key, leaf in flatten(tree).items():
        shard_shapes = sorted({tuple(s.data.shape) for s in leaf.addressable_shards})
        out[key] = {"shape": list(leaf.shape), "shard_shapes": [list(s) for s in shard_shapes],
                    "spec": [None if p is None else (list(p) if isinstance(p, tuple) else p)
                             for p in leaf.sharding.spec],
                    "mesh": dict(leaf.sharding.mesh.shape),
                    "device_bytes": int(sum(s.data.nbytes for s in leaf.addressable_shards
                                            if s.device == leaf.addressable_shards[0].device))}
    return out


def logical_axes(config) -> dict:
    """The logical axis names of every parameter, as the model annotates them."""
    import flax.linen as nn
    import jax

    from bert_jax.config.pretraining import PretrainingData
    from bert_jax.config.validation import bert_config
    from bert_jax.model import BertForPreTraining
    from bert_jax.training.pretraining import PretrainingObjective

    objective = PretrainingObjective.for_data(BertForPreTraining(bert_config(config)),
                                              PretrainingData.from_config(config))
    boxed = jax.eval_shape(objective.init_params, jax.random.key(0))
    specs = nn.get_partition_spec(boxed)
    return {jax.tree_util.keystr(path): list(spec) for path, spec in jax.tree_util.tree_leaves_with_path(
        specs, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))}


def write_json(out: Path, payload: dict) -> None:
    import jax

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"process_{jax.process_index()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True))
    os.replace(tmp, path)


def write_npz(path: Path, tree) -> None:
    import jax
    import numpy as np

    if jax.process_index() == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{k: np.asarray(v) for k, v in flatten(tree).items()})


# --- Modes. -----------------------------------------------------------------------------------------

def run_equivalence(args) -> dict:
    import jax

    from bert_jax.parallel import sharding
    from bert_jax.training.loop import _global_batch

    assert jax.device_count() == 8, jax.devices()
    meshes = [tuple(int(x) for x in m.split(",")) for m in args.meshes]
    num_steps = args.steps
    reference_config = tiny_config((1, 1, 1), num_steps)
    batches = [global_batch_numpy(reference_config, s) for s in range(num_steps)]

    def run(mesh_shape, devices, initial=None, check_create=False):
        config = tiny_config(mesh_shape, num_steps)
        mesh = sharding.make_mesh(config.mesh.shape, devices)
        parts = setup(config, mesh)
        out = {}
        if initial is None or check_create:
            out["created"] = to_numpy(parts.fresh_state())
        # Every mesh starts from the very same numbers: the one-device run's initial state.
        state = jax.device_put(initial if initial is not None else out["created"], parts.shardings)
        step = jitted_step(parts, mesh)
        out["initial_placement"] = placement(state)
        out["activation_constraints"] = activation_constraints(
            step, state, _global_batch(batches[0], mesh))
        out["losses"] = []
        for batch in batches:
            batch = _global_batch(batch, mesh)
            out["batch_shard_shapes"] = sorted({tuple(s.data.shape)
                                                for s in batch["input_ids"].addressable_shards})
            state, metrics = step(state, batch)
            out["losses"].append({k: float(v) for k, v in jax.device_get(metrics).items()})
        out["final"] = to_numpy(state)
        out["final_placement"] = placement(state)
        return out

    start = time.perf_counter()
    reference = run((1, 1, 1), jax.devices()[:1])
    initial = reference["created"]
    ref_update = jax.tree.map(lambda a, b: a - b, reference["final"].params, initial.params)
    results = {"reference_losses": reference["losses"], "meshes": {},
               "dropout": [reference_config.model.hidden_dropout_rate,
                           reference_config.model.attention_dropout_rate],
               "logical_axes": logical_axes(reference_config),
               "reference_updates": {k: v[1] for k, v in differences(ref_update, ref_update).items()}}
    for mesh_shape in meshes:
        name = ",".join(map(str, mesh_shape))
        out = run(mesh_shape, jax.devices(), initial, check_create=name in args.check_create)
        update = jax.tree.map(lambda a, b: a - b, out["final"].params, initial.params)
        results["meshes"][name] = {
            "losses": out["losses"],
            "params": differences(out["final"].params, reference["final"].params),
            "updates": differences(update, ref_update),
            "opt_state": differences(out["final"].opt_state, reference["final"].opt_state),
            "step": int(out["final"].step),
            "batch_shard_shapes": [list(x) for x in out["batch_shard_shapes"]],
            "initial_placement": out["initial_placement"],
            "final_placement": out["final_placement"],
            "activation_constraints": out["activation_constraints"],
        } | ({"created": differences(out["created"], initial)} if "created" in out else {})
    results["seconds"] = time.perf_counter() - start
    return results


def run_steps(args) -> dict:
    """Trains `--steps` steps on this process's rows of deterministic global batches, as
    `train_and_evaluate` would: the config validated, the rows assembled by `train._global_batch`,
    the step jitted alike. With `--assemble-only`, only assembles the batches."""
    import jax
    import numpy as np

    from bert_jax.config.validation import validate
    from bert_jax.parallel import sharding
    from bert_jax.state.checkpointer import Checkpointer
    from bert_jax.state.train_state import abstract_state
    from bert_jax.training.loop import _global_batch

    out_dir = Path(args.out)
    result: dict = {"process_index": jax.process_index(), "process_count": jax.process_count(),
                    "local_devices": jax.local_device_count(), "devices": jax.device_count()}
    if args.mesh:
        config = tiny_config(tuple(int(x) for x in args.mesh.split(",")), args.steps)
        validate(config, jax.device_count(), jax.process_count())
        mesh = sharding.make_mesh(config.mesh.shape)
        if not args.assemble_only:
            parts = setup(config, mesh)
            state = parts.fresh_state()
            write_npz(out_dir / "initial.npz", to_numpy(state))
            step_fn = jitted_step(parts, mesh)
        losses, batches_ok, shapes = [], [], []
        for s in range(args.steps):
            global_np = global_batch_numpy(config, s)
            local = process_rows(global_np, jax.process_index(), jax.process_count())
            batch = _global_batch(local, mesh)
            # The global array must be the intended global batch, rows in order.
            shapes.append(list(batch["input_ids"].shape))
            assembled = to_numpy(batch)
            batches_ok.append(all(np.array_equal(assembled[k], global_np[k]) for k in global_np))
            if not args.assemble_only:
                state, metrics = step_fn(state, batch)
                losses.append({k: float(v) for k, v in jax.device_get(metrics).items()})
        result |= {"losses": losses, "batches_in_order": batches_ok, "batch_shapes": shapes}
        if not args.assemble_only:
            result["step"] = int(state.step)
            write_npz(out_dir / "final.npz", to_numpy(state))
        if args.save:
            checkpointer = Checkpointer(args.save, async_save=True)
            checkpointer.save(int(state.step), state, config.to_dict())
            checkpointer.wait_until_finished()
            checkpointer.close()
    if args.restore:
        restore_dir, mesh_arg = args.restore
        config = tiny_config(tuple(int(x) for x in mesh_arg.split(",")), args.steps)
        mesh = sharding.make_mesh(config.mesh.shape)
        parts = setup(config, mesh)
        shardings = parts.shardings
        checkpointer = Checkpointer(restore_dir, async_save=False)
        step = checkpointer.latest_step()
        restored = checkpointer.restore(step, abstract_state(parts.objective.init_params, parts.optimizer,
                                                             shardings))
        checkpointer.close()
        result["restored_step"] = step
        result["restored_placement"] = placement(restored.params)
        result["restored_matches_shardings"] = all(
            a.sharding.is_equivalent_to(s, a.ndim) for a, s in
            zip(jax.tree.leaves(restored), jax.tree.leaves(shardings)))
        write_npz(out_dir / "restored.npz", to_numpy(restored))
    return result


def run_pretrain(args) -> dict:
    """`train_and_evaluate` on the shards given by `--overrides` (a JSON list of `--set` items)."""
    import jax

    from bert_jax.config.files import load_config
    from bert_jax.training import loop

    calls = []
    original = loop.save_config

    def recording_save_config(config, path):
        calls.append(str(path))
        return original(config, path)

    loop.save_config = recording_save_config
    config = load_config("cpu_demo", json.loads(args.overrides))
    reports = []
    results = [loop.train_and_evaluate(config, args.workdir, on_report=reports.append)]
    for _ in range(args.again):  # A finished run started again: restores, evaluates, trains nothing.
        results.append(loop.train_and_evaluate(config, args.workdir, on_report=reports.append))
    return {"process_index": jax.process_index(), "process_count": jax.process_count(),
            "devices": jax.device_count(), "results": results, "reports": reports,
            "save_config_calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("equivalence", "steps", "pretrain"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--coordinator")
    parser.add_argument("--meshes", nargs="*", default=())
    parser.add_argument("--check-create", nargs="*", default=())
    parser.add_argument("--mesh")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--assemble-only", action="store_true")
    parser.add_argument("--save")
    parser.add_argument("--restore", nargs=2, metavar=("DIR", "MESH"))
    parser.add_argument("--overrides", default="[]")
    parser.add_argument("--workdir")
    parser.add_argument("--again", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("absl", "orbax", "jax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import jax

    from bert_jax.parallel import distributed

    if args.num_processes > 1:
        distributed.initialize("explicit", coordinator_address=args.coordinator,
                               num_processes=args.num_processes, process_id=args.process_id,
                               initialization_timeout=60)
    try:
        run = {"equivalence": run_equivalence, "steps": run_steps, "pretrain": run_pretrain}[args.mode]
        payload = run(args)
        write_json(Path(args.out), payload)
    finally:
        if args.num_processes > 1:
            jax.distributed.shutdown()


if __name__ == "__main__":
    main()
