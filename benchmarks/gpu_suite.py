"""The GPU measurements of one lent H100/H200, in one command that fits a short lease:

  python benchmarks/gpu_suite.py [--budget-s 450] [--out results.jsonl]

1. The practical bf16 peak: an 8192^3 matmul through XLA, the denominator of the second MFU column.
2. cuDNN flash attention against the plain einsum-softmax-einsum: the same logits and gradients
   (both in bf16, each measured against a float32 reference) on a batch with padding.
3. BERT-Base and BERT-Large train steps at sequence length 128 and 512 in bf16, each case in its
   own process (`benchmarks/train_step.py --json`, so peak memory is the case's own): compile
   time, sequences/s, MFU, peak memory and, from XLA's memory plan at two batch sizes, the largest
   batch that fits; then that batch, run, for BERT-Large at 512.

Cases run in order of importance until the time budget is spent; every result is printed as a
JSON line as it arrives and as a table at the end. This process never touches the GPU itself
(JAX would take most of its memory from the cases): 1 and 2 run in a child too (`--checks`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# cuDNN's fused attention has no dropout, and the hardware PRNG makes dropout masks cheap.
FAST = ["model.attention_dropout_rate=0.0", "train.rng_impl=rbg"]
RECIPE = []  # BERT's own: attention dropout 0.1 (plain attention), threefry dropout keys.


def matmul_peak_tflops(n: int = 8192, repeats: int = 20) -> float:
    import jax
    import jax.numpy as jnp

    a, b = (jax.random.normal(jax.random.key(i), (n, n), jnp.bfloat16) for i in range(2))
    matmul = jax.jit(lambda x, y: x @ y)
    matmul(a, b).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
        out = matmul(a, b)
    out.block_until_ready()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def attention_check() -> dict:
    """Relative errors of the bf16 cuDNN and bf16 plain attention models against a float32
    plain-attention model, on MLM logits and on the gradient of the loss."""
    import dataclasses

    import jax
    import jax.numpy as jnp
    import numpy as np

    from bert_jax.model import BertConfig, BertForPreTraining
    from step_timing import synthetic_batch

    base = BertConfig(vocab_size=30522, hidden_dropout_rate=0.0, attention_dropout_rate=0.0)
    batch = synthetic_batch(8, 128, 20, base.vocab_size)
    lengths = np.array([128, 100, 64, 127, 90, 128, 33, 70])
    batch["input_mask"] = (np.arange(128)[None, :] < lengths[:, None]).astype(np.int32)
    batch["masked_lm_positions"] = np.minimum(batch["masked_lm_positions"], lengths[:, None] - 1)
    params = BertForPreTraining(base).init(jax.random.key(0), batch["input_ids"], batch["input_mask"],
                                           batch["segment_ids"], batch["masked_lm_positions"])["params"]

    def run(attention, dtype):
        model = BertForPreTraining(dataclasses.replace(base, attention=attention, dtype=dtype))

        def loss(p):
            logits = model.apply({"params": p}, batch["input_ids"], batch["input_mask"], batch["segment_ids"],
                                 batch["masked_lm_positions"])["mlm_logits"]
            return jnp.mean(jax.nn.logsumexp(logits, -1)), logits
        (_, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
        return np.asarray(logits, np.float64), np.concatenate(
            [np.asarray(g, np.float64).ravel() for g in jax.tree.leaves(grads)])

    ref_logits, ref_grads = run("plain", "float32")
    result = {}
    for attention in ("cudnn", "plain"):
        logits, grads = run(attention, "bfloat16")
        result[f"{attention}_bf16_logits_rel_err"] = float(np.linalg.norm(logits - ref_logits) / np.linalg.norm(ref_logits))
        result[f"{attention}_bf16_grads_rel_err"] = float(np.linalg.norm(grads - ref_grads) / np.linalg.norm(ref_grads))
    cudnn_lowered = jax.jit(lambda p: BertForPreTraining(dataclasses.replace(base, attention="cudnn", dtype="bfloat16")).apply(
        {"params": p}, batch["input_ids"], batch["input_mask"], batch["segment_ids"],
        batch["masked_lm_positions"])).lower(params).compile().as_text()
    result["cudnn_kernel_in_program"] = "__cudnn$fmha" in cudnn_lowered
    return result


CASES = [
    # (name, size, seq, batch, overrides, memory batch)
    ("large-512 fast", "large", 512, 32, FAST, 64),
    ("large-512 recipe", "large", 512, 32, RECIPE, 0),
    ("large-128 fast", "large", 128, 128, FAST, 256),
    ("base-512 fast", "base", 512, 64, FAST, 128),
    ("base-128 fast", "base", 128, 256, FAST, 512),
    ("large-512 fast, largest batch", "large", 512, None, FAST, 0),
    ("large-512 recipe+rbg", "large", 512, 32, ["train.rng_impl=rbg"], 0),
    ("base-128 recipe", "base", 128, 256, RECIPE, 0),
    ("large-128 recipe", "large", 128, 128, RECIPE, 0),
]


def run_case(size, seq, batch, overrides, memory_batch, peak, timeout) -> dict:
    command = [sys.executable, os.path.join(HERE, "train_step.py"), "--json", "--dtype", "bfloat16",
               "--sizes", size, "--seq", str(seq), "--batch", str(batch), "--steps", "20",
               "--peak-tflops", f"{peak:.1f}", "--memory-batch", str(memory_batch)]
    for item in overrides:
        command += ["--set", item]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = done.stderr.strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: " + " | ".join(tail)[-400:]}
    return json.loads(lines[-1])


def checks(attention: bool, matmul_n: int) -> None:
    """Prints the device, the matmul peak and (optionally) the attention check as JSON lines."""
    import jax
    print(json.dumps({"case": "device", "kind": jax.devices()[0].device_kind, "jax": jax.__version__}))
    print(json.dumps({"case": "matmul 8192^3 bf16", "tflops": matmul_peak_tflops(matmul_n)}), flush=True)
    if attention:
        print(json.dumps({"case": "attention check"} | attention_check()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=450)
    parser.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "gpu_results.jsonl"))
    parser.add_argument("--skip-attention-check", action="store_true")
    parser.add_argument("--matmul-n", type=int, default=8192)
    parser.add_argument("--case", action="append", default=[], metavar="NAME:SIZE:SEQ:BATCH[:FIELD=VALUE,...]",
                        help="run these cases instead of the default list (e.g. for an ablation)")
    parser.add_argument("--checks", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    if args.checks:
        return checks(not args.skip_attention_check, args.matmul_n)
    deadline = time.monotonic() + args.budget_s
    out = open(args.out, "w")

    def record(row):
        print(json.dumps(row), flush=True)
        out.write(json.dumps(row) + "\n")
        out.flush()

    command = [sys.executable, os.path.abspath(__file__), "--checks", "--matmul-n", str(args.matmul_n)]
    if args.skip_attention_check:
        command.append("--skip-attention-check")
    done = subprocess.run(command, capture_output=True, text=True)
    found = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for row in found:
        record(row)
    if done.returncode:
        record({"case": "checks", "error": done.stderr.strip()[-400:]})
    device = next((r["kind"] for r in found if r["case"] == "device"), "?")
    peak = next((r["tflops"] for r in found if r["case"] == "matmul 8192^3 bf16"), 0.0)
    cases = CASES
    if args.case:
        cases = []
        for spec in args.case:
            name, size, seq, batch, *rest = spec.split(":")
            cases.append((name, size, int(seq), int(batch), [o for o in ":".join(rest).split(",") if o], 0))
    rows, largest = [], None
    for name, size, seq, batch, overrides, memory_batch in cases:
        left = deadline - time.monotonic()
        if left < 40:
            record({"case": name, "error": "skipped: time budget spent"})
            continue
        if batch is None:
            if not largest:
                continue
            batch = largest // 8 * 8
        row = {"case": name} | run_case(size, seq, batch, overrides, memory_batch, peak, left)
        if name == "large-512 fast":
            largest = row.get("largest_batch_estimate")
        record(row)
        rows.append(row)
    print(f"\n{device}; practical peak {peak:.0f} TFLOP/s (8192^3 bf16 matmul)")
    print("| case | batch x seq | compile s | step ms | seq/s | TFLOP/s | MFU (989) | MFU (practical) "
          "| peak GB | largest batch (plan) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['case']} | {r['error']} |")
            continue
        cells = [r["case"], f"{r['batch']} x {r['seq']}", f"{r['compile_s']:.1f}", f"{r['step_ms']:.1f}",
                 f"{r['seq_per_s']:.0f}", f"{r['tflops']:.0f}", _percent(r["mfu_datasheet"]),
                 _percent(r["mfu_practical"]), f"{r['peak_memory_gb'] or 0:.1f}",
                 str(r.get("largest_batch_estimate", "-"))]
        print("| " + " | ".join(cells) + " |")


def _percent(value: float | None) -> str:
    return f"{value:.1%}" if value else "-"


if __name__ == "__main__":
    main()
