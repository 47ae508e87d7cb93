"""The parameters of a run's best evaluation by one metric (F1, Matthews or Spearman correlation,
a loss), kept apart from the rolling checkpoints in `workdir/best/<step>/`: what fine-tuning hands
on, since the last step is rarely the best one.

One copy is kept: the parameters alone (no optimizer state), the run's config and the evaluation's
metrics. Orbax writes it to a temporary directory renamed once complete, then deletes the copy it
replaces, which is always one this class wrote (the only one in that directory); a kill in
between leaves both, and the newest is the best. A resumed run replays its evaluations to the same
numbers, so it ends with the copy an uninterrupted run would have kept: an evaluation replaces the
copy only if strictly better (the earliest of equals stays).
"""

from __future__ import annotations

import math
import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from input_pipeline import remote_files

BEST_DIR = "best"
MODES = ("max", "min")


def best_directory(workdir: str | os.PathLike) -> str:
    """`workdir/best`, absolute for a local work dir; a gs://... one stays as it is."""
    directory = os.path.join(workdir, BEST_DIR)
    return directory if remote_files.is_remote(directory) else os.path.abspath(directory)


class BestParams:
    """Keeps the parameters of the evaluation with the best `metric` ("max" or "min" `mode`).
    Call `update` on every process, with the same metrics."""

    def __init__(self, workdir: str | os.PathLike, metric: str, mode: str = "max"):
        if mode not in MODES:
            raise ValueError(f"the best checkpoint's mode is {mode!r}; it must be one of {MODES}.")
        self.metric = metric
        self.mode = mode
        self.manager = ocp.CheckpointManager(
            best_directory(workdir),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1, best_fn=lambda metrics: metrics[metric], best_mode=mode,
                enable_async_checkpointing=False, cleanup_tmp_directories=True),
            item_names=("params", "config"))

    @property
    def directory(self) -> str:
        return os.fspath(self.manager.directory)

    @property
    def best(self) -> tuple[int, float] | None:
        """(step, value) of the copy kept, or None."""
        step = self.manager.best_step()
        return None if step is None else (step, float(self.manager.metrics(step)[self.metric]))

    def update(self, step: int, metrics: dict[str, float], params: Any, config: dict) -> bool:
        """Keeps `params` (evaluated at `step` to `metrics`) if their metric beats the copy kept;
        returns whether it did."""
        if self.metric not in metrics:
            raise KeyError(f"the best checkpoint is chosen by {self.metric!r}, which the evaluation "
                           f"does not report; it reports {sorted(metrics)}.")
        value, kept = float(metrics[self.metric]), self.best
        better = math.isfinite(value) and (kept is None or (value > kept[1] if self.mode == "max"
                                                            else value < kept[1]))
        if better:
            self.manager.save(step, args=ocp.args.Composite(
                params=ocp.args.StandardSave(params), config=ocp.args.JsonSave(config)),
                metrics={k: float(v) for k, v in metrics.items()}, force=True)
        return better

    def close(self) -> None:
        self.manager.close()


def load_best_params(workdir: str | os.PathLike) -> tuple[Any, ml_collections.ConfigDict, int, dict[str, float]]:
    """(parameters, config, step, metrics) of the best evaluation kept in `workdir`, the
    parameters on this host's first device, whatever the model (they are read as saved)."""
    directory = best_directory(workdir)
    missing = FileNotFoundError(f"no best parameters in {directory}: a run keeps them when it "
                                "evaluates with a best metric set (CheckpointConfig.best_metric).")
    if not remote_files.isdir(directory):  # checked first: a manager would create the directory
        raise missing
    manager = ocp.CheckpointManager(directory, item_names=("params", "config"))
    try:
        step = manager.latest_step()
        if step is None:
            raise missing
        saved = ocp.StandardCheckpointer().metadata(os.path.join(directory, str(step), "params"))
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                              saved.item_metadata.tree)
        restored = manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(target), config=ocp.args.JsonRestore()))
        metrics = manager.metrics(step)
    finally:
        manager.close()
    return restored["params"], ml_collections.ConfigDict(restored["config"]), step, metrics


def best_metrics(workdir: str | os.PathLike) -> tuple[int, dict[str, float]] | None:
    """(step, metrics) of the best evaluation kept in `workdir`, without reading its
    parameters; None if none is kept."""
    directory = best_directory(workdir)
    if not remote_files.isdir(directory):  # checked first: a manager would create the directory
        return None
    manager = ocp.CheckpointManager(directory, item_names=("params", "config"))
    try:
        step = manager.latest_step()
        return None if step is None else (step, dict(manager.metrics(step)))
    finally:
        manager.close()
