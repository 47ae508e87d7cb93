"""`bert-jax pretrain`: train from a config in a work directory, on one process or many
(`bert_jax.train_and_evaluate`)."""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import warnings

from input_pipeline import remote_files


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("pretrain", help="pretrain from a config, resuming from the work dir")
    p.add_argument("--config", required=True, help="config name in configs/ (e.g. bert_base) or path")
    p.add_argument("--workdir", help="checkpoints, config.json and TensorBoard logs (required "
                   "unless --print-config or --dry-run)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set data.train_files=shards/")
    p.add_argument("--distributed", choices=("none", "auto", "explicit"), default="none",
                   help="multi-process run: auto detects a TPU pod or SLURM job; explicit takes "
                   "the three flags below (or BERT_JAX_* variables)")
    p.add_argument("--coordinator-address", help="host:port of process 0 (explicit)")
    p.add_argument("--num-processes", type=int, help="number of processes (explicit)")
    p.add_argument("--process-id", type=int, help="this process's index (explicit)")
    p.add_argument("--heartbeat-timeout", type=int, default=100,
                   help="seconds without a heartbeat after which a process counts as dead and the "
                        "others stop with an error, instead of waiting for it forever")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective config (after --set) as JSON, as config.json would "
                   "hold it, and exit")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the config and print the plan (parameters, FLOPs and planned "
                   "device memory per step, steps per epoch of the shards), then exit without "
                   "touching the work directory")
    return p


def run(args: argparse.Namespace) -> None:
    # Imported here, not above, so that `bert-jax --help` loads none of them (JAX and TensorFlow take seconds).
    import json

    from bert_jax.cli.logging_setup import background_errors_to
    from bert_jax.config.files import load_config, to_json

    config = load_config(args.config, args.set)
    if config.train.get("init_from"):
        # The shape comes with the weights (as transformers' from_pretrained takes it), except
        # what --set gives, which the import checks against the checkpoint.
        from bert_jax.convert.sources import model_from_source

        given = {item.partition("=")[0].strip() for item in args.set}
        for change in model_from_source(config, given):
            logging.getLogger("bert_jax").info("from train.init_from: %s", change)
    if args.print_config:
        print(to_json(config))
        return
    if not args.dry_run and not args.workdir:
        raise ValueError("--workdir is required (unless --print-config or --dry-run).")

    from bert_jax.parallel import distributed

    distributed.initialize(args.distributed, args.coordinator_address, args.num_processes,
                           args.process_id, heartbeat_timeout=args.heartbeat_timeout)
    if args.dry_run:
        from bert_jax.training.plan import plan_pretraining

        print("\n".join(plan_pretraining(config).lines()))
        return

    from bert_jax.training.loop import train_and_evaluate

    # A save that failed leaves orbax's coroutines for the other items unawaited; the warning
    # about each comes at exit, after the message that says what failed.
    warnings.filterwarnings("ignore", r"coroutine '\w+CheckpointHandler\.\w+' was never awaited", RuntimeWarning)
    with background_errors_to(details_file(args.workdir)):
        results = train_and_evaluate(config, args.workdir)
    print(json.dumps(results, indent=2))


def details_file(workdir: str) -> str:
    """Where the tracebacks of background errors go: `workdir/errors.log`; a temporary file for a
    bucket, which cannot be appended to."""
    if remote_files.is_remote(workdir):
        return os.path.join(tempfile.gettempdir(), f"bert-jax-pretrain-{os.getpid()}-errors.log")
    return os.path.join(workdir, "errors.log")
