"""A subcommand's exit status: 0 when it finishes, 2 with one line for an error the user can fix,
1 with one line when a run stopped on purpose. BERT_JAX_TRACEBACK=1 shows the traceback instead."""

import argparse
import os
import sys

from bert_jax.errors import RunStopped, WorkdirInUse

USER_ERROR = 2
STOPPED = 1


def run_subcommand(args: argparse.Namespace) -> int:
    """Runs `args.run(args)` (the subcommand `args.command` chose) and returns the exit status."""
    try:
        args.run(args)
    except (ValueError, OSError, WorkdirInUse) as e:
        # Configuration, input and disk errors (a missing file, a full disk) and a work directory
        # that another run holds are the user's to fix: a message, not a stack trace.
        if os.environ.get("BERT_JAX_TRACEBACK"):
            raise
        print(f"bert-jax {args.command}: error: {e}", file=sys.stderr)
        return USER_ERROR
    except RunStopped as e:
        # The run stopped on purpose, with its last good checkpoint in place.
        if os.environ.get("BERT_JAX_TRACEBACK"):
            raise
        print(f"bert-jax {args.command}: stopped: {e}", file=sys.stderr)
        return STOPPED
    return 0
