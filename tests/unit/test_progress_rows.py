"""`metrics.jsonl` after a resume holds each report once: the rows a killed run logged after its
last checkpoint are replaced by the resumed run's, and an evaluation done again at the step a
run resumes from (a finished run rerun, or a kept best) replaces the earlier one. The whole-run
version (a real `bert-jax pretrain` killed and resumed) is
`tests/integration/test_resilience.py::test_runs_killed_anywhere_resume_to_bitwise_the_same_metrics`."""

from __future__ import annotations

import json

from bert_jax.training.progress import ProgressReporter


def _rows(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _written_by_a_killed_run(workdir) -> None:
    """Train rows of steps 1-5 and evaluations at 2 and 4, the last line cut short by the kill."""
    rows = [{"step": s, "prefix": "train", "loss": 10.0 - s} for s in range(1, 6)]
    rows.insert(2, {"step": 2, "prefix": "eval", "loss": 9.5})
    rows.insert(5, {"step": 4, "prefix": "eval", "loss": 9.0})
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (workdir / "metrics.jsonl").write_text(text + '{"step": 6, "prefix": "tra')


def test_a_resumed_run_replaces_the_rows_after_its_checkpoint(tmp_path):
    _written_by_a_killed_run(tmp_path)
    reporter = ProgressReporter(tmp_path, 6, 2, 16, 0.0, None)  # resumed from the checkpoint of step 2
    for step in (3, 4):
        reporter.report(step, {"loss": 1.0 * step})
    reporter.close()
    assert [(r["step"], r["prefix"], r["loss"]) for r in _rows(tmp_path)] == [
        (1, "train", 9.0), (2, "train", 8.0), (2, "eval", 9.5), (3, "train", 3.0), (4, "train", 4.0)]


def test_an_evaluation_done_again_at_the_resumed_step_replaces_the_earlier_one(tmp_path):
    _written_by_a_killed_run(tmp_path)
    reporter = ProgressReporter(tmp_path, 6, 4, 16, 0.0, None)
    reporter.report(4, {"loss": 8.75}, prefix="eval")
    reporter.report(5, {"loss": 0.5})
    reporter.close()
    steps = [(r["step"], r["prefix"]) for r in _rows(tmp_path)]
    assert len(steps) == len(set(steps))
    assert steps == [(1, "train"), (2, "train"), (2, "eval"), (3, "train"), (4, "train"), (4, "eval"), (5, "train")]
    assert [r["loss"] for r in _rows(tmp_path) if r["prefix"] == "eval"] == [9.5, 8.75]


def test_a_fresh_run_keeps_no_rows_of_a_run_killed_before_its_first_checkpoint(tmp_path):
    _written_by_a_killed_run(tmp_path)
    ProgressReporter(tmp_path, 6, 0, 16, 0.0, None).close()
    assert (tmp_path / "metrics.jsonl").read_text() == ""
