"""`bert-jax demo`: every stage end to end on this machine's CPU (`bert_jax.run_demo`)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo", help="run every stage end to end on this machine's CPU",
        description="Builds a corpus from the Python standard library's docstrings, "
        "trains a vocab, makes shards, pretrains a tiny BERT, exports it to the "
        "Hugging Face format and shows fill-mask predictions. Run it again to resume.")
    p.add_argument("--workdir", default="workdir/demo", help="where everything is written")
    p.add_argument("--vocab", help="use this vocab.txt instead of training one")
    p.add_argument("--vocab-size", type=int, default=8000, help="size of the trained vocab")
    p.add_argument("--dupe-factor", type=int, default=5, help="masking passes over the corpus")
    p.add_argument("--steps", type=int, help="training steps (default: the config's)")
    p.add_argument("--config", default="cpu_demo", help="config name in configs/ or path")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set train.global_batch_size=16")
    p.add_argument("--task", choices=("pretraining", "classification", "retrieval"), default="pretraining",
                   help="after pretraining, classification: fine-tune on which standard-library package a "
                   "docstring is from, starting from random weights, from the demo's pretraining and from "
                   "MiniLM, next to the majority class; retrieval: find a function's documentation from "
                   "its summary with BM25, and with the demo model and MiniLM before and after "
                   "Sentence-BERT training")
    p.add_argument("--no-minilm", action="store_true",
                   help="with --task classification or retrieval: leave the packaged MiniLM out")
    p.add_argument("--finetune-set", action="append", default=[], metavar="FIELD=VALUE",
                   help="with --task classification or retrieval: override a fine-tuning (or "
                   "Sentence-BERT) config field, e.g. --finetune-set train.num_epochs=1")
    return p


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (JAX and TensorFlow take seconds).
    from bert_jax.config.files import load_config
    from bert_jax.demos.pretraining import DemoOptions, run_demo

    overrides = list(args.set)
    if args.steps is not None:
        overrides.append(f"train.num_steps={args.steps}")
        if not any(item.startswith("optimizer.warmup_steps=") for item in args.set):
            # The config's warm-up share of its steps is kept: `--steps 20` must not leave a
            # warm-up of 100 steps longer than the run (an invalid config).
            base = load_config(args.config)
            overrides.append("optimizer.warmup_steps="
                             f"{round(base.optimizer.warmup_steps * args.steps / base.train.num_steps)}")
    options = DemoOptions(workdir=args.workdir, vocab_file=args.vocab, vocab_size=args.vocab_size,
                          dupe_factor=args.dupe_factor, config=args.config, overrides=tuple(overrides))
    if args.task == "classification":
        from bert_jax.demos.classification import STARTS, ClassificationDemoOptions, run_classification_demo
        starts = tuple(s for s in STARTS if not (args.no_minilm and s == "minilm"))
        run_classification_demo(ClassificationDemoOptions(pretraining=options, starts=starts,
                                                          overrides=tuple(args.finetune_set)))
    elif args.task == "retrieval":
        from bert_jax.demos.retrieval import RetrievalDemoOptions, run_retrieval_demo
        run_retrieval_demo(RetrievalDemoOptions(pretraining=options, with_minilm=not args.no_minilm,
                                                overrides=tuple(args.finetune_set)))
    else:
        run_demo(options)
