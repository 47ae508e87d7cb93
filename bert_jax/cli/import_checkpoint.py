"""`bert-jax import`: a Hugging Face BERT or Google checkpoint to a bert-jax work directory
(`bert_jax.import_to_workdir`)."""

from __future__ import annotations

import argparse
import os
import tempfile


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "import", help="Hugging Face BERT or Google checkpoint -> bert-jax work dir",
        description="Converts a Hugging Face BERT directory (config.json with "
        "model.safetensors or pytorch_model.bin; BertModel, BertForMaskedLM, "
        "BertForPreTraining, ...) or a Google TensorFlow BERT checkpoint "
        "(bert_config.json + bert_model.ckpt) into a work directory: config.json, "
        "the vocab, and a checkpoint at step 0 that fill-mask, export and "
        "train.init_from read. Heads the source lacks are freshly initialized, "
        "and listed.")
    p.add_argument("--from", dest="source", required=True, metavar="SRC",
                   help="Hugging Face directory or repo id (e.g. google-bert/bert-base-uncased, "
                   "found in the local Hugging Face cache or downloaded), Google checkpoint "
                   "directory or prefix, or a bert-jax work directory; a path that exists wins")
    p.add_argument("--output", required=True, help="work directory to create (must not exist)")
    p.add_argument("--config", help="run config to start from (default: the defaults); the model "
                   "fields are the checkpoint's")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set model.scan_layers=False")
    p.add_argument("--vocab", help="vocab.txt or SentencePiece .model (default: the source's own)")
    p.add_argument("--seed", type=int, default=0, help="seed of the freshly initialized heads")
    return p


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (JAX and Flax take seconds).
    from bert_jax.cli.logging_setup import background_errors_to
    from bert_jax.convert.hub import resolve_model
    from bert_jax.convert.sentence_transformers import import_sentence_transformers, is_sentence_transformers_directory
    from bert_jax.convert.workdir_import import import_to_workdir

    args.source = resolve_model(args.source)
    # A full disk fails the checkpoint's array writes one by one, each with a traceback that
    # orbax logs; the command ends with one message. The output directory does not exist yet.
    details = os.path.join(tempfile.gettempdir(), f"bert-jax-import-{os.getpid()}-errors.log")
    with background_errors_to(details):
        if is_sentence_transformers_directory(args.source):  # its pooling etc. go to the run config
            out, imported, _ = import_sentence_transformers(args.source, args.output, args.config,
                                                            args.set, args.vocab, seed=args.seed)
        else:
            out, imported = import_to_workdir(args.source, args.output, args.config, args.set,
                                              args.vocab, seed=args.seed)
    # The log line above names the source and the freshly initialized heads.
    print(f"wrote the work directory {out} (a checkpoint at step 0, {imported.config.num_layers} "
          f"layers of {imported.config.hidden_size}): `bert-jax export --workdir {out}` and "
          f"`fill-mask` read it; `--set train.init_from={out}` continues pretraining from it")
