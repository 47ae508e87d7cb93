"""bert-jax's train step side by side with Hugging Face's `FlaxBertForPreTraining`. Prints a table.

  python benchmarks/hf_flax_comparison.py --sizes mini base --steps 20 4

Same config (vocab 30,522, float32, dropout on), the same synthetic batch (default 32 x 128 with
20 masked-LM predictions), the same loss (masked-LM cross-entropy at the masked positions plus
next-sentence cross-entropy) and the same optimizer (clipping at 1.0, AdamW at 1e-4 with bert-jax's
warm-up schedule), each jitted with its state donated, compiled, run once, then timed step by
step over `--steps` steps. The table gives the median step, which bursts of other processes on a
shared machine move less than the mean (each side's JSON has the mean and minimum too); the
second table has the process's CPU time per step (all threads), which another process's load
changes less than the wall time, and the 1-minute load average at the start and end of the timed
steps, which counts the measured process itself (about 2 on two otherwise idle cores); with
`--rounds R` the two sides alternate R times and each keeps its fastest run.

The sides run one after the other in their own processes, never at once: ours in this
environment, the peer in its own virtual environment, since Hugging Face's Flax models exist only
in transformers 4.x. That environment is made on the first run (about 30 s of pip) at
`--peer-venv` (default ~/.cache/bert-jax/hf-flax-venv) with the versions pinned in `PEER_PINS`, and
reused while the pins are unchanged. The peer's step is `benchmarks/hf_flax_step.py`.

The difference under test is the masked-LM head: ours projects only the masked positions onto the
vocabulary, Hugging Face's projects every position (the loss then gathers the masked ones).

With `--packed-shards DIR` our side trains instead on rows packed (`input_pipeline.reading.packing`, up to
`--max-sequences` per row) from real shards made with the same sequence length, and its seq/s
counts the real sequences in them; the peer's step costs the same whatever its rows hold, one
sequence each, so its seq/s is what it would train on from the same shards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER_SCRIPT = HERE / "hf_flax_step.py"
# transformers 4.57 is the last 4.x release (5.0 removed the Flax models). It runs on the jax,
# flax and optax that bert-jax is measured with, so both sides share the same XLA.
PEER_PINS = ("transformers==4.57.6", "jax==0.10.2", "jaxlib==0.10.2", "flax==0.12.8",
             "optax==0.2.8", "numpy==2.4.6")
DEFAULT_PEER_VENV = Path.home() / ".cache" / "bert-jax" / "hf-flax-venv"
PINS_FILE = "bert-jax-pins.txt"


def ensure_peer_venv(venv: Path) -> Path:
    """The peer environment's python, creating or updating the environment if its pins differ."""
    python = venv / "bin" / "python"
    marker = venv / PINS_FILE
    wanted = "\n".join(PEER_PINS) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"creating the peer environment in {venv}: {' '.join(PEER_PINS)}", file=sys.stderr)
    if not python.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_PINS], check=True)
    marker.write_text(wanted)
    return python


def measure_ours(size: str, batch: int, seq: int, predictions: int, steps: int,
                 overrides: list[str], packed_shards: str = "", max_sequences: int = 4) -> dict:
    """Our side, as `benchmarks/train_step.py` measures it, plus the first loss and the checks
    that the model and batch are the peer's."""
    import functools

    import jax

    from bert_jax.config.files import load_config
    from bert_jax.config.pretraining import PretrainingData
    from bert_jax.config.run import RunConfig
    from bert_jax.config.validation import bert_config
    from bert_jax.model import BertForPreTraining, flops
    from bert_jax.parallel import sharding
    from bert_jax.state.optimizer import make_optimizer
    from bert_jax.state.train_state import create_state, state_shardings
    from bert_jax.training.pretraining import PretrainingObjective
    from bert_jax.training.step import train_step

    sys.path.insert(0, str(HERE))
    import hf_flax_step
    from step_timing import packed_batch, synthetic_batch, time_step

    common = ["data.train_files=unused", f"data.max_seq_length={seq}",
              f"data.max_predictions_per_seq={predictions}", f"train.global_batch_size={batch}",
              "model.dtype=float32"]
    # The named config must be the peer's; `overrides` (--set) may then depart from it on purpose.
    config = load_config(f"bert_{size}", common)
    m = bert_config(config)
    shape = (m.hidden_size, m.num_layers, m.num_heads, m.intermediate_size)
    if shape != hf_flax_step.SIZES[size] or m.vocab_size != hf_flax_step.VOCAB_SIZE \
            or (m.hidden_dropout_rate, m.attention_dropout_rate) != (0.1, 0.1) or m.hidden_act != "gelu":
        raise SystemExit(f"bert_{size} differs from the peer's BertConfig: {m}")
    o = config.optimizer
    if (o.name, o.learning_rate, o.warmup_steps, config.train.num_steps, o.b1, o.b2, o.eps, o.weight_decay,
            o.clip_norm) != ("adamw", hf_flax_step.LEARNING_RATE, hf_flax_step.WARMUP_STEPS,
                             hf_flax_step.NUM_TRAIN_STEPS, hf_flax_step.B1, hf_flax_step.B2,
                             hf_flax_step.EPS, hf_flax_step.WEIGHT_DECAY, hf_flax_step.CLIP_NORM):
        raise SystemExit(f"bert_{size}'s optimizer differs from the peer's: {o}")
    config = load_config(f"bert_{size}", [*common, *overrides])
    m = bert_config(config)
    arrays = (packed_batch(packed_shards, batch, seq, predictions, max_sequences) if packed_shards
              else synthetic_batch(batch, seq, predictions, m.vocab_size))

    mesh = sharding.make_mesh(config.mesh.shape)
    run = RunConfig.from_config(config)
    objective = PretrainingObjective.for_data(BertForPreTraining(m), PretrainingData.from_config(config))
    optimizer, schedule = make_optimizer(run.optimizer, run.loop.num_steps)
    shardings = state_shardings(objective.init_params, optimizer, mesh, run.mesh.rules)
    state = create_state(objective.init_params, optimizer, shardings, run.loop.seed)
    num_params = sum(x.size for x in jax.tree.leaves(state.params))
    batch_arrays = jax.device_put(arrays, sharding.batch_sharding(mesh))
    step = jax.jit(functools.partial(train_step, objective=objective, optimizer=optimizer, schedule=schedule,
                                     seed=run.loop.seed, rng_impl=run.loop.rng_impl),
                   donate_argnums=0)
    timing = time_step(step, state, batch_arrays, steps)
    if packed_shards:
        sequences = float(arrays["next_sentence_weights"].sum())
        timing["seq_per_s"] *= sequences / batch
        timing["sequences_per_row"] = sequences / batch
    versions = hf_flax_step.versions()
    versions.pop("transformers")
    return {"side": "ours", "size": size, "batch": batch, "seq": seq, "predictions": predictions,
            "steps": steps, "num_params": int(num_params), **timing,
            # Matmul FLOPs per step (`bert_jax.model.flops`): ours, and the same model with the
            # vocabulary projection at every position, as Hugging Face's head does it.
            "train_flops": flops.train_flops_per_step(m, batch, seq, arrays["masked_lm_ids"].shape[1]),
            "hf_train_flops": flops.train_flops_per_step(m, batch, seq, seq),
            "versions": versions}


def run_side(command: list[str]) -> dict:
    """Runs one side in a fresh process and returns the JSON it prints last."""
    process = subprocess.run(command, capture_output=True, text=True, cwd=HERE.parent)
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    if process.returncode or not lines:
        sys.stderr.write(process.stdout[-4000:] + process.stderr[-8000:])
        raise SystemExit(f"{' '.join(command)} failed with exit status {process.returncode}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["mini", "base"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--predictions", type=int, default=20)
    parser.add_argument("--steps", type=int, nargs="+", default=[20],
                        help="timed steps: one number for every size, or one per size")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate the two sides this many times and keep each side's fastest run")
    parser.add_argument("--peer-venv", type=Path, default=DEFAULT_PEER_VENV,
                        help="the peer's virtual environment (made if missing)")
    parser.add_argument("--peer-python", help="use this interpreter for the peer instead of --peer-venv")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="config override for our side only (e.g. model.dtype=bfloat16)")
    parser.add_argument("--packed-shards", default="", metavar="DIR",
                        help="our side trains on rows packed from these shards (see above)")
    parser.add_argument("--max-sequences", type=int, default=4, help="sequences per packed row")
    parser.add_argument("--ours-only", metavar="SIZE", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.ours_only:
        print(json.dumps(measure_ours(args.ours_only, args.batch, args.seq, args.predictions,
                                      args.steps[0], args.set, args.packed_shards, args.max_sequences)))
        return
    if len(args.steps) not in (1, len(args.sizes)):
        parser.error("--steps takes one number or one per size")
    steps = args.steps * len(args.sizes) if len(args.steps) == 1 else args.steps
    peer_python = args.peer_python or str(ensure_peer_venv(args.peer_venv))
    shape = ["--batch", str(args.batch), "--seq", str(args.seq), "--predictions", str(args.predictions)]

    rows = []
    for size, n in zip(args.sizes, steps):
        ours = hf = None
        for _ in range(args.rounds):
            run = run_side([sys.executable, str(Path(__file__).resolve()), "--ours-only", size, *shape,
                            "--steps", str(n), *[f"--set={s}" for s in args.set],
                            "--packed-shards", args.packed_shards, "--max-sequences", str(args.max_sequences)])
            print(f"ours {size}: {run['step_ms']:.1f} ms/step (load {run['load_after']:.2f})",
                  file=sys.stderr)
            ours = run if ours is None or run["step_ms"] < ours["step_ms"] else ours
            run = run_side([peer_python, str(PEER_SCRIPT), "--size", size, *shape, "--steps", str(n)])
            print(f"HF   {size}: {run['step_ms']:.1f} ms/step (load {run['load_after']:.2f})",
                  file=sys.stderr)
            hf = run if hf is None or run["step_ms"] < hf["step_ms"] else hf
        rows.append((size, n, ours, hf))

    print(f"{rows[0][2]['device']}, {os.cpu_count()} cores; float32, {args.predictions} masked-LM "
          f"predictions per sequence")
    if args.packed_shards:
        print(f"ours: rows packed from {args.packed_shards}, {rows[0][2]['sequences_per_row']:.2f} "
              f"sequences per row (up to {args.max_sequences}); HF: one sequence per row")
    print("| model | batch x seq | steps | ours step ms | ours seq/s | HF step ms | HF seq/s | ours / HF seq/s "
          "| HF / ours matmul FLOPs | ours compile s | HF compile s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, n, ours, hf in rows:
        print(f"| BERT-{size.capitalize()} | {args.batch} x {args.seq} | {n} | {ours['step_ms']:.1f} | "
              f"{ours['seq_per_s']:.1f} | {hf['step_ms']:.1f} | {hf['seq_per_s']:.1f} | "
              f"{ours['seq_per_s'] / hf['seq_per_s']:.2f}x | {ours['hf_train_flops'] / ours['train_flops']:.2f}x | "
              f"{ours['compile_s']:.1f} | {hf['compile_s']:.1f} |")
    print()
    print("| model | parameters ours / HF | mean step ms ours / HF | CPU s per step ours / HF (ratio) "
          "| first loss ours / HF | load avg during ours / HF |")
    print("|---|---|---|---|---|---|")
    for size, _, ours, hf in rows:
        print(f"| BERT-{size.capitalize()} | {ours['num_params']:,} / {hf['num_params']:,} | "
              f"{ours['mean_step_ms']:.1f} / {hf['mean_step_ms']:.1f} | "
              f"{ours['cpu_ms_per_step'] / 1e3:.2f} / {hf['cpu_ms_per_step'] / 1e3:.2f} "
              f"({hf['cpu_ms_per_step'] / ours['cpu_ms_per_step']:.2f}x) | "
              f"{ours['first_loss']:.3f} / {hf['first_loss']:.3f} | "
              f"{ours['load_before']:.2f}-{ours['load_after']:.2f} / "
              f"{hf['load_before']:.2f}-{hf['load_after']:.2f} |")
    print()
    fmt = lambda v: ", ".join(f"{k} {x}" for k, x in v.items())  # noqa: E731
    print(f"ours: {fmt(rows[0][2]['versions'])}" + (f"; --set {' '.join(args.set)}" if args.set else ""))
    print(f"Hugging Face: {fmt(rows[0][3]['versions'])}")


if __name__ == "__main__":
    main()
