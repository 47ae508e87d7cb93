"""How every subcommand logs: timestamped lines at INFO, without the libraries' chatter; and how a
run keeps the errors of its libraries' background threads to one line."""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator

# The loggers of the libraries whose background threads report a failure that the run itself
# then reports once, with what to do (orbax logs through absl; asyncio reports orbax's array
# writes that failed after orbax stopped waiting for them: "Task exception was never retrieved").
_LIBRARY_LOGGERS = ("absl", "orbax", "asyncio")


def configure_logging() -> None:
    """INFO lines as `HH:MM:SS message`; absl, JAX's backend probes and orbax at WARNING."""
    # Imported here, not above: `bert-jax --help` never logs, and logging takes 4 ms to import.
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    # Orbax and JAX log every checkpoint detail and backend probe at INFO through absl.
    for name in ("absl", "jax._src.xla_bridge", "orbax"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def background_errors_to(details_file: str) -> Iterator[None]:
    """Within it, the errors that the libraries' background threads log (orbax's save threads,
    each with a traceback) and the exceptions they cannot raise (tensorstore's callbacks after
    orbax gave up, one traceback per array) are written to `details_file`, and only the first
    of them gets a line on stderr, naming the file.

    A full disk fails every array write of a checkpoint: without this, a run printed a traceback
    for each before the one message that says which step failed and what to do (the run stops
    at the next save or wait, `state.checkpointer.CheckpointError`). The file is opened for each
    error and its own write failures are ignored: on a full disk it may stay empty.

    When the block raises, the failed run's objects are freed before the diversion ends: orbax's
    write tasks that failed after it stopped waiting for them are reachable from the error's
    frames, and asyncio logs each one ("Task exception was never retrieved", with a traceback)
    only when it is freed; left to the interpreter, that was at exit, after the message. So
    the frames of the error's tracebacks are cleared (their code and line numbers stay, for
    BERT_JAX_TRACEBACK=1) and the garbage collected here.
    """
    import logging  # (here, as above)
    import traceback

    first = []

    def divert(text: str, summary: str) -> None:
        with contextlib.suppress(OSError), open(details_file, "a", encoding="utf-8") as f:
            f.write(text.rstrip("\n") + "\n\n")
        if not first:
            first.append(summary)
            print(f"{summary[:200]} (this error of a background thread and any later ones, with "
                  f"their tracebacks: {details_file})", file=sys.stderr, flush=True)

    class LibraryErrors(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.levelno < logging.ERROR or record.name.split(".")[0] not in _LIBRARY_LOGGERS:
                return True
            text = logging.Formatter("%(asctime)s %(name)s %(threadName)s: %(message)s").format(record)
            divert(text, f"{record.name.split('.')[0]}: {record.getMessage().splitlines()[0]}")
            return False

    def unraisable(u) -> None:
        text = "".join(traceback.format_exception(u.exc_type, u.exc_value, u.exc_traceback))
        divert(f"{u.err_msg or 'Exception ignored'}: {u.object!r}\n{text}",
               f"a background thread: {u.exc_type.__name__}: {u.exc_value}".splitlines()[0])

    library_errors = LibraryErrors()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(library_errors)
    previous, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    except BaseException as error:
        _free_frames_of(error)
        raise
    finally:
        sys.unraisablehook = previous
        for handler in handlers:
            handler.removeFilter(library_errors)


def _free_frames_of(error: BaseException) -> None:
    """Clears the local variables of the finished frames in the tracebacks of `error` and of the
    errors it chains (`__cause__`, `__context__`), then collects the garbage, so that what only
    those frames held (a failed run's checkpointer, orbax's tasks) is freed now."""
    import traceback  # (here, as above)

    pending, seen = [error], set()
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)  # skips the frames still running (this one)
        pending += [error.__cause__, error.__context__]
    gc.collect()
