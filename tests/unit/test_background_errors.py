"""`bert_jax.cli.logging_setup.background_errors_to`: the errors of the libraries' background work,
also those reported only when the failed run's objects are freed, go to the details file."""

from __future__ import annotations

import asyncio
import errno
import gc
import io
import logging

import pytest

from bert_jax.cli.logging_setup import background_errors_to
from bert_jax.errors import RunStopped


def _run_whose_write_task_failed_unwatched() -> None:
    """As orbax's array writes on a full disk: a write task fails on an event loop that is then
    closed, nobody having asked for its exception, and the task is reachable only from this
    frame when the run stops."""
    loop = asyncio.new_event_loop()

    async def write_fragment() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    task = loop.create_task(write_fragment())
    loop.call_soon(loop.stop)
    loop.run_forever()  # one iteration: the task fails
    loop.close()
    assert task.done()
    raise RunStopped("saving a checkpoint (step 3) failed")


def test_a_failed_task_freed_with_the_error_is_logged_to_the_details_file_not_the_console(tmp_path, capsys):
    details = tmp_path / "errors.log"
    console = io.StringIO()
    handler = logging.StreamHandler(console)
    logging.getLogger().addHandler(handler)
    try:
        with pytest.raises(RunStopped) as stopped, background_errors_to(str(details)):
            _run_whose_write_task_failed_unwatched()
        del stopped  # the last reference to the error: its frames and what they held are freed
        gc.collect()
    finally:
        logging.getLogger().removeHandler(handler)
    assert "Task exception was never retrieved" not in console.getvalue()
    text = details.read_text()
    assert "Task exception was never retrieved" in text and "No space left on device" in text
    assert "Traceback" in text
    assert f"with their tracebacks: {details})" in capsys.readouterr().err
