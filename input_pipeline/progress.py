"""Progress of the long commands (vocab, create-data, pretrain, export), shown one way for all:
a bar with throughput and ETA (tqdm) on a terminal or in a notebook; a log line every
`BERT_JAX_PROGRESS_SECONDS` (default 30) seconds when the output is not a terminal, so that logs
stay readable; and a closing summary line (time, throughput, outputs) in either case.

`BERT_JAX_PROGRESS` (or `set_progress`) chooses: `auto` (the default: a bar on a terminal or in
a notebook, lines otherwise), `bar`, `lines` or `off` (no bar, no lines; the summary is still
logged). The Python API reports as the CLI does: while the program has configured no logging,
the INFO messages of `bert_jax` and `input_pipeline` go to stderr (`show_logs`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Self

import tqdm

logger = logging.getLogger("input_pipeline.progress")

MODES = ("auto", "bar", "lines", "off")
# The loggers whose messages the Python API shows by default, and a bar keeps above itself.
LIBRARY_LOGGERS = ("bert_jax", "input_pipeline")

_chosen_mode: str | None = None


def set_progress(mode: str | None) -> None:
    """Chooses how this process shows progress: "auto", "bar", "lines" or "off" (None: back to
    `BERT_JAX_PROGRESS`, else "auto")."""
    global _chosen_mode
    if mode is not None and mode not in MODES:
        raise ValueError(f"progress mode {mode!r}: choose one of {', '.join(MODES)}.")
    _chosen_mode = mode


def progress_mode() -> str:
    """"bar", "lines" or "off": what `set_progress`, else `BERT_JAX_PROGRESS`, else the output
    (a terminal or a notebook: "bar") says."""
    mode = _chosen_mode or os.environ.get("BERT_JAX_PROGRESS", "auto")
    if mode not in MODES:
        raise ValueError(f"BERT_JAX_PROGRESS={mode!r}: choose one of {', '.join(MODES)}.")
    if mode == "auto":
        return "bar" if _in_notebook() or sys.stderr.isatty() else "lines"
    return mode


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


class _UntilConfigured(logging.StreamHandler):
    """stderr for the libraries' messages while the program has configured no logging of its own
    (then its handlers have them, and this one stays quiet)."""

    def emit(self, record: logging.LogRecord) -> None:
        if not logging.getLogger().handlers:
            super().emit(record)


def show_logs() -> None:
    """Shows the INFO messages of `bert_jax` and `input_pipeline` on stderr while the program
    has configured no logging (a notebook, a script): the training loop's lines and the
    summaries. Nothing with progress "off", or once the program configures logging."""
    if progress_mode() == "off" or logging.getLogger().handlers:
        return
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        if not any(isinstance(handler, _UntilConfigured) for handler in library.handlers):
            handler = _UntilConfigured()
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
            library.addHandler(handler)
            if library.level == logging.NOTSET:
                library.setLevel(logging.INFO)


class _AboveTheBar:
    """A text stream that writes through `tqdm.write`, which clears the bar, writes and draws
    the bar again below."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        tqdm.tqdm.write(text, file=self.stream, end="")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def _logs_above_the_bar() -> Iterator[None]:
    """Log lines to the console go above the bar instead of through it (the handlers kept, with
    their filters and formats: only their streams are wrapped)."""
    handlers = [handler for name in ("", *LIBRARY_LOGGERS) for handler in logging.getLogger(name).handlers
                if type(handler) in (logging.StreamHandler, _UntilConfigured)
                and handler.stream in (sys.stderr, sys.stdout)]
    for handler in handlers:
        handler.setStream(_AboveTheBar(handler.stream))
    try:
        yield
    finally:
        for handler in handlers:
            handler.setStream(handler.stream.stream)


class Progress:
    """One long task's progress: call `update` as work is done and `close` at the end (or use it
    in a `with` block), which logs the summary.

    `unit` names what `update` counts; with `unit_scale` it is shown with SI prefixes (bytes as
    kB, MB). `counts` name other totals given to `update` (e.g. "instances"), shown with their
    rates. `log_lines=False` leaves the periodic lines to a caller that logs its own (the training
    loop's reports); the bar and the summary stay.
    """

    def __init__(self, task: str, total: float | None = None, *, unit: str = "it",
                 unit_scale: bool = False, counts: Sequence[str] = (), initial: float = 0,
                 log_lines: bool = True, shown: bool = True):
        self.task, self.total, self.unit, self.unit_scale = task, total, unit, unit_scale
        self.shown = shown  # False: nothing at all (a process of a multi-host run other than the first)
        self.mode = progress_mode() if shown else "off"
        self._note = ""
        show_logs()
        self.initial = self.done = initial
        self.counts = dict.fromkeys(counts, 0.0)
        self.log_lines = log_lines
        self.interval = float(os.environ.get("BERT_JAX_PROGRESS_SECONDS", "30"))
        self.start = self._last_line = time.perf_counter()
        self._bar = None
        self._redirect = contextlib.ExitStack()
        if self.mode == "bar":
            bar = tqdm.tqdm
            if _in_notebook():
                from tqdm.auto import tqdm as bar  # (imports IPython's widgets: only in a notebook)
            self._redirect.enter_context(_logs_above_the_bar())
            self._bar = bar(total=total, initial=initial, desc=task, unit=unit, unit_scale=unit_scale,
                            unit_divisor=1000, dynamic_ncols=True, file=sys.stderr, smoothing=0.1)

    def update(self, n: float = 1, **counts: float) -> None:
        """Adds `n` units of work done, and `counts` to the other totals."""
        self.done += n
        for name, count in counts.items():
            self.counts[name] = self.counts.get(name, 0.0) + count
        if self._bar is not None:
            if self.counts:
                self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.update(n)
        elif self.mode == "lines" and self.log_lines:
            now = time.perf_counter()
            if now - self._last_line >= self.interval:
                self._last_line = now
                logger.info("%s: %s", self.task, self._status(now))

    def lines(self, lines: Iterable[str]) -> Iterator[str]:
        """`lines` as they are, counted as their UTF-8 bytes (and a newline each) as they pass."""
        pending = 0
        for number, line in enumerate(lines, 1):
            pending += len(line.encode("utf-8")) + 1
            if number % 1000 == 0:  # an update per line would cost more than the bar is worth
                self.update(pending)
                pending = 0
            yield line
        self.update(pending)

    def describe(self, text: str) -> None:
        """Shows `text` (e.g. the latest loss) beside the bar."""
        self._note = text
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=False)

    def _postfix(self) -> str:
        return ", ".join(filter(None, [self._note, self.counts and self._counts_text(time.perf_counter())]))

    def close(self, outputs: str = "", *, read_all: bool = False) -> str:
        """Ends the bar and logs the summary (time, throughput, `outputs`); returns it.
        `read_all`: the whole `total` was read (lines are counted without the whitespace and blank
        lines that reading strips, so the count falls a little short of the files' size)."""
        if read_all and self.total and self.done < self.total:
            if self._bar is not None:
                self._bar.update(self.total - self.done)
            self.done = self.total
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._redirect is not None:  # None: closed already
            self._redirect.close()
        self._redirect = None  # closed: the `with` block's end logs nothing more
        now = time.perf_counter()
        seconds = now - self.start
        done = self.done - self.initial
        summary = (f"{self.task}: {self._amount(done)} in {format_duration(seconds)} "
                   f"({self._amount(done / seconds if seconds > 0 else 0.0)}/s"
                   + "".join(f"; {_number(v)} {k}, {_number(v / seconds if seconds > 0 else 0.0)} {k}/s"
                             for k, v in self.counts.items()) + ")"
                   + (f" -> {outputs}" if outputs else ""))
        if self.shown:
            logger.info(summary)
        return summary

    def __enter__(self) -> Self:
        return self

    def __exit__(self, error_type, *_) -> None:
        if error_type is None:
            if self._redirect is not None:
                self.close()
            return
        # An error: the bar ends, and no summary pretends that the task was done.
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._redirect is not None:  # None: closed before the error (a check after the work)
            self._redirect.close()
            self._redirect = None

    def _amount(self, value: float) -> str:
        if self.unit_scale:
            return tqdm.tqdm.format_sizeof(value, self.unit, 1000)
        return f"{_number(value)} {self.unit}"

    def _counts_text(self, now: float) -> str:
        seconds = now - self.start
        return ", ".join(f"{_number(v)} {k} ({_number(v / seconds if seconds > 0 else 0.0)}/s)"
                         for k, v in self.counts.items())

    def _status(self, now: float) -> str:
        seconds = now - self.start
        rate = (self.done - self.initial) / seconds if seconds > 0 else 0.0
        text = self._amount(self.done)
        if self.total:
            text += f" of {self._amount(self.total)} ({100 * self.done / self.total:.0f}%)"
        text += f", {self._amount(rate)}/s"
        if self.counts:
            text += ", " + self._counts_text(now)
        if self.total and rate > 0:
            text += f", ETA {format_duration((self.total - self.done) / rate)}"
        return text


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.3g}"


def format_duration(seconds: float) -> str:
    """`1h02m03s`, or `2m03s` under an hour."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
