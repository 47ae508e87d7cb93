"""The arguments every inference subcommand takes to find its model."""

import argparse


def add_model_arguments(p: argparse.ArgumentParser, batch_size: bool = True) -> None:
    """--model (with --workdir as its old name), --step, --dtype and --batch-size."""
    p.add_argument("--model", "--workdir", dest="model", required=True,
                   help="a pretraining work directory, a Hugging Face BERT directory (e.g. from "
                   "bert-jax export) or repo id (found in the local Hugging Face cache, or "
                   "downloaded), or a Google BERT checkpoint")
    p.add_argument("--step", type=int, help="checkpoint step of a work directory (default: latest)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                   help="compute dtype (default: the model's)")
    if batch_size:
        p.add_argument("--batch-size", type=int, default=32,
                       help="largest batch; inputs are padded to power-of-two batch sizes and "
                       "lengths, so each shape compiles once")
