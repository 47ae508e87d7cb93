"""`bert-jax pretrain` whose checkpoint saves write their arrays `SLOW_SAVE_SECONDS` later (default
30), so that a test can kill the run while a save's background write is in flight
(`tests/test_resilience.py`).

Orbax's asynchronous save has a blocking phase (the temporary directory, the data iterator's
position) and then writes the arrays in a background thread while training goes on; the delay is
put into that background write, printing `ARRAY_WRITE_IN_FLIGHT: step N` first, so that a kill after the
line lands where a real preemption mostly does: arrays half written, no commit yet.
"""

import json
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import asyncio  # noqa: E402
import logging  # noqa: E402

from orbax.checkpoint._src.serialization import serialization  # noqa: E402

from bert_jax.cli import main  # noqa: E402

# Importing orbax here, before the command sets up logging, leaves a default handler on the root
# logger that would swallow the run's own log format; the command installs its own.
logging.root.handlers.clear()

ARRAY_WRITE_IN_FLIGHT = "slow_save_pretrain: an array write is in flight in the background"
_write = serialization.async_serialize_from_host


async def _slow_write(rslices_on_host, tensorstore_spec, *args, **kwargs):
    # Runs in orbax's commit thread (its own event loop), never in the training loop's. The step
    # is read from the temporary directory the array goes to, so that a test can tell this save
    # from an earlier one.
    step = re.search(r"/(\d+)\.orbax-checkpoint-tmp", json.dumps(tensorstore_spec))
    print(f"{ARRAY_WRITE_IN_FLIGHT}: step {step.group(1) if step else '?'} at {time.time():.3f}",
          file=sys.stderr, flush=True)
    await asyncio.sleep(float(os.environ.get("SLOW_SAVE_SECONDS", "30")))
    return await _write(rslices_on_host, tensorstore_spec, *args, **kwargs)


# Orbax's array handler looks the function up on the module at each write.
serialization.async_serialize_from_host = _slow_write

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
