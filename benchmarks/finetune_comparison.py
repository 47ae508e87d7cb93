"""Fine-tuning train steps/s: our jitted step against `transformers`' `BertForSequenceClassification`
(PyTorch) on this CPU, in one process, rounds interleaved. Prints a table.

  python benchmarks/finetune_comparison.py --size base --rounds 4 --steps 2
  python benchmarks/finetune_comparison.py --size tiny            # a quick check

Ours: `training.loop.jit_train_step` (what `training.loop.train` runs: `training.step.train_step`
jitted on a one-device mesh, the state donated) with `tasks.classification.SequenceClassificationObjective`
and AdamW from `state.optimizer` (clipping at 1.0, linear warm-up and decay, no decay on biases and
LayerNorm). Theirs: `BertForSequenceClassification` in the loop `transformers`' Trainer runs,
forward with labels, backward, `clip_grad_norm_`, AdamW (the Trainer's default on this torch,
`fused=True`, with the same two parameter groups), the linear schedule, `zero_grad`. Both are
randomly initialized from the same config (a BERT size of `--size`, vocab 30,522, 2 labels,
float32, dropout 0.1 on both), and train on the same synthetic batch: `--batch` sentence pairs of
`--seq` real tokens (segment 0 then 1), random labels.

Each side first runs `--warmup` steps that are not timed (ours: compilation, measured apart, then
its first step; theirs: the optimizer state's creation and the allocator's first growth); then
`--rounds` rounds of `--steps` steps a side, the sides taking turns (`peer_timing.interleaved`).
The table gives the median step; `--json FILE` keeps every step's time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import peer_timing

NUM_LABELS = 2
LEARNING_RATE, WARMUP_STEPS, NUM_TRAIN_STEPS = 2e-5, 10, 1000  # a fine-tuning rate, still warming up
VOCAB_SIZE = 30522


def pair_batch(batch: int, seq: int, seed: int = 0) -> dict[str, np.ndarray]:
    """`batch` sentence pairs of `seq` real tokens each in our features' layout (`[CLS]` first,
    segment 0 for the first half, 1 for the second), random labels, every row weighing 1."""
    rng = np.random.default_rng(seed)
    input_ids = rng.integers(1000, VOCAB_SIZE, (batch, seq)).astype(np.int32)
    input_ids[:, 0] = 101  # [CLS] of the uncased vocab
    return {"input_ids": input_ids, "input_mask": np.ones((batch, seq), np.int32),
            "segment_ids": (np.arange(seq)[None] >= seq // 2).astype(np.int32).repeat(batch, 0),
            "label": rng.integers(0, NUM_LABELS, batch).astype(np.int32),
            "example_weights": np.ones(batch, np.float32)}


class OurStep:
    """Our fine-tuning step on one device, compiled for the batch; each call is one step."""

    def __init__(self, size: str, batch: dict[str, np.ndarray], dtype: str, scan_layers: bool, seed: int = 0):
        import jax

        from bert_jax.config.defaults import default_config, model_size
        from bert_jax.config.run import LoopConfig, OptimizerConfig
        from bert_jax.model import BertConfig
        from bert_jax.model.task_heads import BertForSequenceClassification
        from bert_jax.parallel import sharding
        from bert_jax.state.optimizer import make_optimizer
        from bert_jax.state.train_state import create_state, state_shardings
        from bert_jax.tasks.classification import SequenceClassificationObjective
        from bert_jax.training.loop import jit_train_step

        # What a run of the default config gets, at this size.
        fields = {**default_config().model.to_dict(), **model_size(size), "dtype": dtype, "scan_layers": scan_layers}
        self.config = BertConfig(**fields)
        objective = SequenceClassificationObjective(BertForSequenceClassification(self.config, NUM_LABELS))
        optimizer, schedule = make_optimizer(
            OptimizerConfig(learning_rate=LEARNING_RATE, warmup_steps=WARMUP_STEPS), NUM_TRAIN_STEPS)
        mesh = sharding.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, jax.devices()[:1])
        shardings = state_shardings(objective.init_params, optimizer, mesh)
        self.state = create_state(objective.init_params, optimizer, shardings, seed)
        self.num_params = sum(x.size for x in jax.tree.leaves(self.state.params))
        step = jit_train_step(objective, optimizer, schedule,
                              LoopConfig(num_steps=NUM_TRAIN_STEPS, global_batch_size=len(batch["label"]), seed=seed),
                              mesh, sharding.LOGICAL_RULES, shardings)
        self.batch = jax.device_put(batch, sharding.batch_sharding(mesh))
        self.step, self.compile_s = peer_timing.timed(lambda: step.lower(self.state, self.batch).compile())
        self.losses: list[float] = []

    def __call__(self) -> None:
        self.state, metrics = self.step(self.state, self.batch)
        self.losses.append(float(metrics["loss"]))  # waits for the step


class TheirStep:
    """`transformers`' BertForSequenceClassification trained as its Trainer does; each call is one step."""

    def __init__(self, config, batch: dict[str, np.ndarray], seed: int = 0):
        import torch  # the peer only: torch stays out of the code under test
        import transformers

        torch.manual_seed(seed)
        hf_config = transformers.BertConfig(
            vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
            max_position_embeddings=config.max_position_embeddings, type_vocab_size=config.type_vocab_size,
            hidden_dropout_prob=config.hidden_dropout_rate, attention_probs_dropout_prob=config.attention_dropout_rate,
            layer_norm_eps=config.layer_norm_eps, hidden_act="gelu", num_labels=NUM_LABELS)
        self.model = transformers.BertForSequenceClassification(hf_config).train()
        self.attention = self.model.config._attn_implementation
        self.num_params = sum(p.numel() for p in self.model.parameters())
        named = list(self.model.named_parameters())
        groups = [{"params": [p for n, p in named if not ("bias" in n or "LayerNorm" in n)], "weight_decay": 0.01},
                  {"params": [p for n, p in named if "bias" in n or "LayerNorm" in n], "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW(groups, lr=LEARNING_RATE, betas=(0.9, 0.999), eps=1e-6, fused=True)
        self.schedule = transformers.get_linear_schedule_with_warmup(self.optimizer, WARMUP_STEPS, NUM_TRAIN_STEPS)
        self.inputs = {"input_ids": torch.tensor(batch["input_ids"], dtype=torch.long),
                       "attention_mask": torch.tensor(batch["input_mask"], dtype=torch.long),
                       "token_type_ids": torch.tensor(batch["segment_ids"], dtype=torch.long),
                       "labels": torch.tensor(batch["label"], dtype=torch.long)}
        self.threads = torch.get_num_threads()
        self.losses: list[float] = []

    def __call__(self) -> None:
        import torch

        loss = self.model(**self.inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad()
        self.losses.append(loss.item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="base", choices=["tiny", "mini", "small", "medium", "base"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per side before the rounds")
    parser.add_argument("--rounds", type=int, default=4, help="rounds; the sides alternate")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side per round")
    parser.add_argument("--dtype", default="float32", help="our compute dtype (theirs stays float32)")
    parser.add_argument("--no-scan-layers", dest="scan_layers", action="store_false",
                        help="unroll our layers (the default config scans them)")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args()

    import jax
    import torch

    info = peer_timing.machine()
    batch = pair_batch(args.batch, args.seq)
    ours = OurStep(args.size, batch, args.dtype, args.scan_layers)
    theirs = TheirStep(ours.config, batch)
    warmup = {}
    for name, side in (("ours", ours), ("transformers", theirs)):
        _, warmup[name] = peer_timing.timed(lambda side=side: [side() for _ in range(args.warmup)])
        print(f"{name}: {args.warmup} warm-up steps {warmup[name]:.1f} s", file=sys.stderr)
    raw = peer_timing.interleaved({"ours": ours, "transformers": theirs}, args.rounds, args.steps)
    result = {name: peer_timing.summary(record) for name, record in raw.items()}
    versions = peer_timing.versions("jax", "jaxlib", "flax", "optax", "torch", "transformers", "numpy")

    print(f"{peer_timing.describe(info, versions)}; torch threads {theirs.threads}, attention "
          f"{theirs.attention}")
    print(f"BERT-{args.size.capitalize()} ({ours.num_params:,} / {theirs.num_params:,} parameters), "
          f"{args.batch} x {args.seq} sentence pairs, {NUM_LABELS} labels, ours {args.dtype}, dropout 0.1; "
          f"{args.rounds} rounds x {args.steps} steps a side after {args.warmup} warm-up steps")
    print("| side | median step ms | steps/s | examples/s | mean / min step ms | CPU s per step | load avg |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, r in result.items():
        print(f"| {name} | {r['median_s'] * 1e3:.1f} | {1 / r['median_s']:.3f} | {args.batch / r['median_s']:.1f} | "
              f"{r['mean_s'] * 1e3:.1f} / {r['min_s'] * 1e3:.1f} | {r['cpu_s']:.2f} | "
              f"{r['load_min']:.2f}-{r['load_max']:.2f} |")
    ratio = result["transformers"]["median_s"] / result["ours"]["median_s"]
    print(f"\nours / transformers steps/s: {ratio:.2f}x; our compile {ours.compile_s:.1f} s (not in the steps); "
          f"first losses {ours.losses[0]:.4f} / {theirs.losses[0]:.4f} (ln 2 = {np.log(2):.4f})")
    if args.json:
        args.json.write_text(json.dumps({
            "args": vars(args) | {"json": str(args.json)}, "machine": info, "versions": versions,
            "model": dataclasses.asdict(ours.config), "num_params": [int(ours.num_params), int(theirs.num_params)],
            "compile_s": ours.compile_s, "warmup_s": warmup, "attention": theirs.attention,
            "torch_threads": theirs.threads, "jax_devices": str(jax.devices()), "torch": torch.__version__,
            "losses": {"ours": ours.losses, "transformers": theirs.losses}, "ratio": ratio, "sides": result},
            indent=1))


if __name__ == "__main__":
    main()
