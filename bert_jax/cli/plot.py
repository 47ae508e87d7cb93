"""`bert-jax plot`: a run's curves from its metrics.jsonl as a PNG (`bert_jax.plot_metrics`)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "plot", help="draw a run's curves (loss, accuracies, throughput) from its metrics.jsonl",
        description="Reads WORKDIR/metrics.jsonl (a row every train.log_every steps and one per "
        "evaluation) and writes loss, masked-LM accuracy, accuracy on replaced tokens, "
        "next-sentence accuracy, throughput and learning rate, training and evaluation, as one "
        "PNG. Works on a running job too.")
    p.add_argument("workdir", help="the work directory of a run")
    p.add_argument("--output", help="the PNG to write (default: WORKDIR/metrics.png)")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    return p


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` does not load it.
    from bert_jax.training.metrics_plot import plot_metrics

    print(f"wrote {plot_metrics(args.workdir, args.output, overwrite=args.overwrite)}")
