"""`bert-jax fill-mask`: the top-k tokens for every [MASK] (`bert_jax.FillMask`)."""

from __future__ import annotations

import argparse

from bert_jax.cli.model_arguments import add_model_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "fill-mask", help="predict the tokens behind [MASK]",
        description="The top-k tokens for every [MASK] in each text, with score, "
        "token id, token string and the filled-in sequence, as transformers' "
        "fill-mask pipeline gives them.")
    p.add_argument("text", nargs="*", help="texts containing [MASK]")
    add_model_arguments(p)
    p.add_argument("--file", help="more texts, one per line")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text: readable blocks; json: one JSON object per text")
    p.add_argument("--truncate", action="store_true",
                   help="cut texts longer than the model takes to the tokens around their [MASK]s "
                   "instead of stopping with an error")
    return p


def texts_from(args: argparse.Namespace, what: str) -> list[str]:
    """The positional texts, then the lines of --file (blank lines skipped); at least one."""
    texts = list(args.text)
    if args.file:
        with open(args.file, encoding="utf-8") as f:
            texts += [line.rstrip("\r\n") for line in f if line.strip()]
    if not texts:
        raise ValueError(f"no {what}: pass them as arguments or with --file.")
    return texts


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (JAX and Flax take seconds).
    import json

    from bert_jax.inference.fill_mask import FillMask, format_predictions

    texts = texts_from(args, "texts with [MASK]")
    fill_mask = FillMask.load(args.model, args.step, args.dtype, max_batch_size=args.batch_size)
    for text, per_mask in zip(texts, fill_mask(texts, top_k=args.top_k, truncate=args.truncate)):
        if args.format == "json":
            print(json.dumps({"text": text, "predictions": per_mask}, ensure_ascii=False))
        else:
            print(format_predictions(text, per_mask))
