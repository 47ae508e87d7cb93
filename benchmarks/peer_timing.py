"""What the in-process comparisons with a PyTorch peer share (`finetune_comparison.py`,
`sbert_comparison.py`): both sides' units of work timed in interleaved rounds, and the machine and
versions the numbers belong to.

A unit is one call that does some work and returns when it is done (a train step whose result was
waited for, or a pass that encodes every text). The sides take turns, round by round, in the order
A B, B A, A B, ... so that a burst of load from other processes on a shared machine, or a slow
drift, falls on both alike; the summary is the median over all timed units of a side, which such
bursts move less than the mean (the mean and minimum are kept too).
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import time
from collections.abc import Callable
from importlib import metadata

import numpy as np


def interleaved(sides: dict[str, Callable[[], object]], rounds: int, units: int) -> dict[str, dict]:
    """Each side's `units` calls per round, for `rounds` rounds, the order reversed every round;
    per side: every call's wall seconds, its process CPU seconds (all threads) and the 1-minute
    load average around its rounds. Warm up before: nothing here is excluded."""
    names = list(sides)
    times = {name: {"seconds": [], "cpu_seconds": [], "load": []} for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            record = times[name]
            record["load"].append(os.getloadavg()[0])
            for _ in range(units):
                cpu, start = time.process_time(), time.perf_counter()
                sides[name]()
                record["seconds"].append(time.perf_counter() - start)
                record["cpu_seconds"].append(time.process_time() - cpu)
            record["load"].append(os.getloadavg()[0])
    return times


def summary(record: dict) -> dict:
    """Median, mean and minimum wall seconds of one side's units, its CPU seconds per unit, and
    the lowest and highest load average seen during its rounds."""
    seconds = np.asarray(record["seconds"])
    return {"median_s": float(np.median(seconds)), "mean_s": float(seconds.mean()), "min_s": float(seconds.min()),
            "cpu_s": float(np.mean(record["cpu_seconds"])), "units": len(seconds),
            "load_min": min(record["load"]), "load_max": max(record["load"]), "seconds": record["seconds"]}


def timed(function: Callable[[], object]) -> tuple[object, float]:
    """`function()`'s result and its wall seconds."""
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def machine() -> dict:
    """The CPU's model name (lscpu), core count, memory, OS, date (UTC) and load average."""
    model = platform.processor() or platform.machine()
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(memory_gib, 1),
            "os": platform.platform(), "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_at_start": os.getloadavg()[0]}


def versions(*packages: str) -> dict[str, str]:
    """The installed version of each of `packages` (distribution names)."""
    return {name: metadata.version(name) for name in packages}


def describe(machine_info: dict, package_versions: dict[str, str]) -> str:
    """One line for the table's heading."""
    listed = ", ".join(f"{k} {v}" for k, v in package_versions.items())
    return (f"{machine_info['cpu']}, {machine_info['cores']} cores, {machine_info['memory_gib']} GiB, "
            f"Python {machine_info['python']}, {machine_info['date']}, load {machine_info['load_at_start']:.2f} "
            f"at start; {listed}")
