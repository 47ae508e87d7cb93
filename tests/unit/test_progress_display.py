"""`input_pipeline.progress`, the one way every long command shows progress: a tqdm bar with
throughput and ETA on a terminal, log lines every few seconds otherwise, nothing with "off", a
closing summary in every case; and the Python API's messages shown while the program has
configured no logging."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest

from input_pipeline import progress as progress_module
from input_pipeline.progress import Progress, set_progress, show_logs


@pytest.fixture(autouse=True)
def _mode_reset(monkeypatch):
    monkeypatch.delenv("BERT_JAX_PROGRESS", raising=False)
    yield
    set_progress(None)


def _work(progress: Progress) -> str:
    for _ in range(4):
        progress.update(250_000, instances=100)
    return progress.close("4 shards in out/", read_all=True)


def test_lines_when_the_output_is_no_terminal(monkeypatch, caplog):
    monkeypatch.setenv("BERT_JAX_PROGRESS_SECONDS", "0")
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: "auto" means lines
    with caplog.at_level(logging.INFO, logger="input_pipeline.progress"):
        summary = _work(Progress("create-data", 2_000_000, unit="B", unit_scale=True, counts=("instances",)))
    lines = [r.getMessage() for r in caplog.records if r.name == "input_pipeline.progress"]
    assert len(lines) == 5 and lines[-1] == summary
    assert re.fullmatch(r"create-data: 250kB of 2\.00MB \(12%\), [\d.]+[kMG]?B/s, 100 instances "
                        r"\([\d,.]+/s\), ETA \dm\d\ds", lines[0]), lines[0]
    assert "1.00MB of 2.00MB (50%)" in lines[3]
    # The whole input was read: the summary counts all of it, with the rates and the outputs.
    assert re.fullmatch(r"create-data: 2\.00MB in 0m00s \([\d.]+[kMG]?B/s; 400 instances, [\d,.]+ "
                        r"instances/s\) -> 4 shards in out/", summary), summary


def test_a_bar_on_a_terminal_with_the_logs_above_it(capsys):
    set_progress("bar")
    library = logging.getLogger("bert_jax")
    handler = logging.StreamHandler(sys.stderr)
    library.addHandler(handler)
    try:
        with Progress("pretrain", 10, unit="steps", counts=("sequences",)) as bar:
            bar.update(5, sequences=80)
            bar.describe("loss 7.1234")
            library.warning("a line of the training loop")
            bar.update(5, sequences=80)
            bar.close("checkpoints in workdir/checkpoints")
    finally:
        library.removeHandler(handler)
    err = capsys.readouterr().err
    assert "pretrain: 100%" in err and "10/10" in err and "steps/s" in err
    assert "loss 7.1234" in err and "sequences" in err
    assert re.search(r"\ra line of the training loop\n", err)  # the bar cleared, the line whole
    assert handler.stream is sys.stderr  # the handler's stream given back


def test_off_shows_nothing_but_the_summary(capsys, caplog):
    set_progress("off")
    with caplog.at_level(logging.INFO, logger="input_pipeline.progress"):
        summary = _work(Progress("vocab: counting words", 1_000_000, unit="B", unit_scale=True))
    assert capsys.readouterr().err == ""
    assert [r.getMessage() for r in caplog.records] == [summary]


def test_an_unknown_mode_is_refused(monkeypatch):
    monkeypatch.setenv("BERT_JAX_PROGRESS", "fancy")
    with pytest.raises(ValueError, match="BERT_JAX_PROGRESS='fancy': choose one of auto, bar, lines, off"):
        Progress("vocab")


def test_the_python_api_shows_its_messages_until_the_program_configures_logging(monkeypatch, capsys):
    monkeypatch.setattr(logging.root, "handlers", [])  # a script or notebook: no logging configured
    for name in progress_module.LIBRARY_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "handlers", [])
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    set_progress("off")
    show_logs()
    logging.getLogger("bert_jax").info("hidden: progress is off")
    set_progress("lines")
    show_logs()
    show_logs()  # once is enough
    logging.getLogger("bert_jax").info("step 10/40 | loss 7.0")
    assert capsys.readouterr().err.splitlines()[-1].endswith(" step 10/40 | loss 7.0")
    assert "hidden" not in capsys.readouterr().err
    monkeypatch.setattr(logging.root, "handlers", [logging.NullHandler()])  # now it configures logging
    logging.getLogger("bert_jax").info("theirs now")
    assert capsys.readouterr().err == ""
