"""Progress reporting of the training loop: log lines, `metrics.jsonl`, TensorBoard and W&B (`metric_writers`)
(every report at full precision, one JSON object per line) with throughput, ETA, TFLOP/s and MFU.
Only the first process writes."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bert_jax.training.metric_writers import metric_writers
from input_pipeline import remote_files  # (also quiets TensorFlow's start-up before it is imported)
from input_pipeline.progress import format_duration

logger = logging.getLogger("bert_jax")


class ProgressReporter:
    """Turns per-interval metrics into a log line and TensorBoard scalars.

    Throughput is measured between two reports, so it covers the steps in between, including the
    input pipeline, not only the device time.
    """

    def __init__(self, workdir: str | os.PathLike | None, num_steps: int, start_step: int,
                 global_batch_size: int, flops_per_step: float, peak_flops_total: float | None,
                 is_main_process: bool = True, report_to: tuple[str, ...] = ("tensorboard",)):
        self.num_steps = num_steps
        self.global_batch_size = global_batch_size
        self.flops_per_step = flops_per_step
        self.peak_flops_total = peak_flops_total
        self.is_main = is_main_process
        self._last_step = start_step
        self._last_time = time.perf_counter()
        self._writers = []
        self._jsonl = None
        self._jsonl_path = None
        self._start_step = start_step
        self._reported_before_at_start: set[str] = set()
        if workdir is not None and is_main_process:
            # Appended to: a resumed run adds its reports after those of the runs before it, whose
            # rows past its checkpoint's step it reports again and so replaces (a killed run
            # logged steps after its last checkpoint; a rerun of a finished run evaluates again).
            # (Cloud Storage objects cannot be appended to; there, TensorBoard has the numbers.)
            if not remote_files.is_remote(workdir):
                self._jsonl_path = os.path.join(workdir, "metrics.jsonl")
                kept = _rewrite_rows(self._jsonl_path, lambda row: row["step"] <= start_step)
                self._reported_before_at_start = {row.get("prefix") for row in kept if row["step"] == start_step}
                self._jsonl = open(self._jsonl_path, "a", encoding="utf-8")
            self._writers = metric_writers(os.fspath(workdir), report_to)

    def restart_clock(self, step: int) -> None:
        """Starts the next throughput interval now (e.g. after compiling or evaluating)."""
        self._last_step = step
        self._last_time = time.perf_counter()

    def report(self, step: int, metrics: dict[str, float], prefix: str = "train") -> dict[str, float]:
        """Logs `metrics` at `step` with throughput since the last report; returns what it logged."""
        now = time.perf_counter()
        steps = step - self._last_step
        seconds = now - self._last_time
        values = dict(metrics)
        # Real sequences and tokens per step, as the objective counts them (packed rows hold
        # several sequences; padding is no token); else the rows of a batch, and no token count.
        sequences = values.pop("sequences", self.global_batch_size)
        tokens = values.pop("tokens", None)
        # FLOPs per step as the objective counts them for each batch's shape (length buckets),
        # else the one figure of the compiled step.
        flops_per_step = values.pop("flops", self.flops_per_step)
        if prefix == "train" and steps > 0 and seconds > 0:
            steps_per_second = steps / seconds
            values |= {"steps_per_second": steps_per_second, "step_seconds": 1 / steps_per_second,
                       "sequences_per_second": steps_per_second * sequences}
            if tokens is not None:
                values["tokens_per_second"] = steps_per_second * tokens
            if flops_per_step:
                values["tflops_per_second"] = steps_per_second * flops_per_step / 1e12
            if flops_per_step and self.peak_flops_total:
                values["mfu"] = steps_per_second * flops_per_step / self.peak_flops_total
            eta = (self.num_steps - step) / steps_per_second
            self._last_step, self._last_time = step, now
        else:
            eta = None
        if self.is_main:
            logger.info(_log_line(prefix, step, self.num_steps, values, eta))
            self.write_scalars(step, values, prefix)
            if self._jsonl is not None:
                if step == self._start_step and prefix in self._reported_before_at_start:
                    # Reported again at the step it resumed from (an evaluation): replaced.
                    self._reported_before_at_start.discard(prefix)
                    self._jsonl.close()
                    _rewrite_rows(self._jsonl_path, lambda row: (row["step"], row.get("prefix")) != (step, prefix))
                    self._jsonl = open(self._jsonl_path, "a", encoding="utf-8")
                self._jsonl.write(json.dumps({"step": step, "prefix": prefix} | values) + "\n")
                self._jsonl.flush()
        return values

    def write_scalars(self, step: int, values: dict[str, float], prefix: str) -> None:
        """Writes `values` as `prefix/name` scalars of `step` (TensorBoard, W&B)."""
        for writer in self._writers:
            writer.write_scalars(step, {f"{prefix}/{name}": value for name, value in values.items()})

    def write_config(self, config: dict[str, Any]) -> None:
        """Writes the run's config (nested dicts): TensorBoard's text and hparams, W&B's config."""
        for writer in self._writers:
            writer.write_config(config)

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._jsonl is not None:
            self._jsonl.close()


def _rewrite_rows(path: str, keep: Callable[[dict], bool]) -> list[dict]:
    """Rewrites the JSON lines file `path` with the rows that `keep` accepts, atomically (a kill
    leaves the old file or the new one); a line cut short by a kill is dropped. Returns the rows
    kept."""
    if not os.path.exists(path):
        return []
    rows, text, dropped = [], [], False
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if isinstance(row, dict) and isinstance(row.get("step"), int) and keep(row):
                rows.append(row)
                text.append(line if line.endswith("\n") else line + "\n")
                dropped |= not line.endswith("\n")
            else:
                dropped = True
    if not dropped:
        return rows
    staging = f"{path}.tmp-{os.getpid()}"
    with open(staging, "w", encoding="utf-8") as f:
        f.writelines(text)
    os.replace(staging, path)
    return rows


def recorded_reports(workdir: str | os.PathLike, step: int) -> dict[str, dict[str, float]]:
    """The reports of `step` in `workdir/metrics.jsonl`, by prefix ("train", "eval"), without
    their step and prefix; empty where there is no such file (a bucket, another host's disk)."""
    path = os.path.join(os.fspath(workdir), "metrics.jsonl")
    if remote_files.is_remote(path) or not os.path.exists(path):
        return {}
    reports = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            if isinstance(row, dict) and row.get("step") == step:
                reports[row.get("prefix")] = {k: v for k, v in row.items() if k not in ("step", "prefix")}
    return reports


def interval_means(interval: list[dict[str, Any]]) -> dict[str, float]:
    """Means over a log interval's per-step metrics, skipped (non-finite) steps left out of all
    but the count of them."""
    good = [m for m in interval if not m["skipped"]] or interval
    means = {k: float(np.mean([m[k] for m in good])) for k in interval[0] if k != "skipped"}
    return means | {"skipped_steps": float(sum(m["skipped"] for m in interval))}


def _log_line(prefix: str, step: int, num_steps: int, values: dict[str, float], eta: float | None) -> str:
    parts = [f"{prefix} step {step}/{num_steps}"]
    for name in ("loss", "mlm_loss", "mlm_accuracy", "mlm_replaced_accuracy", "nsp_accuracy", "grad_norm"):
        if name in values:
            parts.append(f"{name} {values[name]:.4f}")
    if "learning_rate" in values:
        parts.append(f"lr {values['learning_rate']:.2e}")
    if "steps_per_second" in values:
        parts.append(f"{1000 * values['step_seconds']:.0f} ms/step")
        parts.append(f"{values['steps_per_second']:.2f} steps/s")
        parts.append(f"{values['sequences_per_second']:.0f} seq/s")
    if "tokens_per_second" in values:
        parts.append(f"{values['tokens_per_second']:.0f} tok/s")
    if "tflops_per_second" in values:
        parts.append(f"{values['tflops_per_second']:.3f} TFLOP/s")
    if "mfu" in values:
        parts.append(f"MFU {100 * values['mfu']:.1f}%")
    if eta is not None:
        parts.append(f"ETA {format_duration(eta)}")
    return " | ".join(parts)
