"""`bert-jax pretrain` whose checkpoint saves take `SLOW_SAVE_SECONDS` longer (default 30), so
that a test can kill the run while a save is in flight (`tests/test_resilience.py`)."""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bert_jax import checkpointing  # noqa: E402
from bert_jax.cli import main  # noqa: E402

_save = checkpointing.DataIteratorHandler.save


def _slow_save(self, directory, args):
    _save(self, directory, args)
    time.sleep(float(os.environ.get("SLOW_SAVE_SECONDS", "30")))


checkpointing.DataIteratorHandler.save = _slow_save

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
