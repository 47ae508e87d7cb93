"""Where a run's numbers go besides its log and `metrics.jsonl` (`training.progress`): TensorBoard
(scalars, the config as text and as hyperparameters) and, with `train.report_to` naming it,
Weights & Biases. Only the first process writes.

`clu.metric_writers` was the maintained candidate; its TensorBoard writer writes scalars as
tensors, which readers of `EventAccumulator.Tags()['scalars']` do not find, and it has no
Weights & Biases writer, so both are written here directly, each in a few lines.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from typing import Any

from input_pipeline import remote_files


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """`config` (nested dicts) as `{"section.field": value}`, every value a bool, number or string
    (what TensorBoard's hyperparameters and W&B's config take): others as JSON text."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat |= flat_config(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value, default=str)
    return flat


class TensorBoardWriter:
    """Event files in `workdir/tensorboard`: scalars as scalars (`simple_value`, listed by
    `EventAccumulator.Tags()['scalars']`), and the config as a text summary and as hparams."""

    def __init__(self, workdir: str):
        import tensorflow as tf  # only the writing process pays for importing TensorFlow

        self._tf = tf
        self._writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        tf = self._tf
        summary = tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(tag=tag, simple_value=float(value))
                                              for tag, value in scalars.items()])
        with self._writer.as_default():
            tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=step)
        self._writer.flush()

    def write_config(self, config: Mapping[str, Any]) -> None:
        from tensorboard.plugins.hparams import api as hparams  # (TensorFlow's, imported above)

        text = json.dumps(config, indent=2, sort_keys=True, default=str)
        with self._writer.as_default():
            hparams.hparams(flat_config(config))
            # Indented four spaces: TensorBoard's text tab shows it as a code block.
            self._tf.summary.text("config", "".join(f"    {line}\n" for line in text.splitlines()), step=0)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class WandbWriter:
    """A Weights & Biases run named after the work directory, the same one again when the run
    resumes (its id kept in `workdir/wandb_run_id`). `WANDB_PROJECT` names the project
    ("bert-jax" by default); `WANDB_MODE=offline` keeps it on disk, in `workdir/wandb`."""

    def __init__(self, workdir: str):
        try:
            import wandb  # an optional dependency
        except ImportError:
            raise ValueError("train.report_to names wandb, which is not installed: pip install "
                             "'bert-jax[wandb]' (or remove wandb from train.report_to).") from None
        local = not remote_files.is_remote(workdir)
        id_file = os.path.join(workdir, "wandb_run_id")
        if local and os.path.exists(id_file):
            with open(id_file, encoding="utf-8") as f:
                run_id = f.read().strip()
        else:
            run_id = uuid.uuid4().hex[:12]  # W&B run ids: lower-case letters and digits
            if local:
                with open(id_file, "w", encoding="utf-8") as f:
                    f.write(run_id + "\n")
        self._run = wandb.init(project=os.environ.get("WANDB_PROJECT", "bert-jax"),
                               name=os.path.basename(os.path.normpath(workdir)), id=run_id,
                               resume="allow", dir=workdir if local else None)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        self._run.log(dict(scalars), step=step)

    def write_config(self, config: Mapping[str, Any]) -> None:
        self._run.config.update(flat_config(config), allow_val_change=True)

    def close(self) -> None:
        self._run.finish()


def metric_writers(workdir: str, report_to: tuple[str, ...]) -> list[TensorBoardWriter | WandbWriter]:
    """The writers `report_to` names (some of `config.defaults.REPORT_TO`)."""
    kinds = {"tensorboard": TensorBoardWriter, "wandb": WandbWriter}
    return [kinds[name](workdir) for name in report_to]
