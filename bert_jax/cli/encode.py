"""`bert-jax encode`: sentence vectors (.npy) and token vectors (.npz or .npy)
(`bert_jax.SentenceEncoder`)."""

from __future__ import annotations

import argparse

from bert_jax.cli.model_arguments import add_model_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "encode", help="sentence vectors (.npy) and token vectors (.npz or .npy)",
        description="Encodes each line of a text file. Sentence vectors: a .npy "
        "[lines, hidden] (row i is line i+1). Token vectors (--tokens): a .npz "
        "with token_vectors [all tokens, hidden], token_ids and offsets [lines+1]; "
        "line i+1's tokens, [CLS] and [SEP] included, are rows "
        "offsets[i]:offsets[i+1]. Padded token vectors (--padded-tokens x.npy): "
        "[lines, longest line's tokens, hidden], zeros past each line's end, and "
        "x.mask.npy [lines, longest], 1 on real tokens.")
    add_model_arguments(p)
    p.add_argument("--input", required=True, help="UTF-8 text file, one sentence per line")
    p.add_argument("--output", required=True, help="sentence vectors, .npy")
    p.add_argument("--tokens", help="also write the token vectors to this .npz")
    p.add_argument("--padded-tokens", metavar="PATH.npy",
                   help="also write the token vectors padded to one array, .npy, with its mask "
                   "as PATH.mask.npy")
    p.add_argument("--pooling", choices=("mean", "max", "cls", "pooler"),
                   help="over real tokens only: mean, elementwise max, the [CLS] vector, or "
                   "BERT's tanh pooler output (default: the model's own, a sentence-transformers "
                   "model's or a work directory's sentence.pooling; else mean)")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction,
                   help="scale each sentence vector to unit length (default: as the model does, "
                   "e.g. a sentence-transformers model with a Normalize module; else not)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace output files that exist (by default they are refused, before "
                   "the model is loaded)")
    p.add_argument("--truncate", action="store_true",
                   help="cut lines longer than the model takes instead of stopping with an error")
    return p


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (JAX and Flax take seconds).
    from bert_jax.inference.encode import (
        SentenceEncoder,
        encoding_files,
        padded_mask_path,
        read_sentences,
        save_encodings,
    )
    from input_pipeline.output_file import refuse_existing_file

    texts = read_sentences(args.input)
    if not texts:
        raise ValueError(f"{args.input} has no lines to encode.")
    for path, flag in encoding_files(args.output, args.tokens, args.padded_tokens):
        refuse_existing_file(path, args.overwrite, flag)  # before loading the model and encoding
    encoder = SentenceEncoder.load(args.model, args.step, args.dtype, max_batch_size=args.batch_size)
    with_tokens = args.tokens is not None or args.padded_tokens is not None
    encodings = encoder(texts, pooling=args.pooling, with_tokens=with_tokens, truncate=args.truncate,
                        normalize=args.normalize)
    save_encodings(encodings, args.output, args.tokens, args.padded_tokens, overwrite=args.overwrite)
    written = [args.tokens, args.padded_tokens and f"{args.padded_tokens} (padded; mask "
               f"{padded_mask_path(args.padded_tokens)})"]
    print(f"wrote {encodings.sentence_vectors.shape[0]} {encodings.pooling}-pooled "
          f"{'unit-length ' if encodings.normalized else ''}sentence vectors of "
          f"size {encodings.sentence_vectors.shape[1]} to {args.output}"
          + (f" and {len(encodings.token_ids)} token vectors to {' and '.join(w for w in written if w)}"
             if with_tokens else ""))
