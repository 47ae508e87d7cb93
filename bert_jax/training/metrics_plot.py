"""Curves of a run from its `metrics.jsonl` (`training.progress`): loss, masked-LM accuracy, the
accuracy on replaced tokens, next-sentence accuracy and throughput, training and evaluation, as
one PNG (`bert-jax plot`)."""

from __future__ import annotations

import io
import json
import os

from input_pipeline.output_file import refuse_existing_file, write_output_file

# (metric, panel title), in the order the panels are drawn.
PANELS = (
    ("loss", "loss"),
    ("mlm_accuracy", "masked-LM accuracy"),
    ("mlm_replaced_accuracy", "accuracy on replaced tokens"),
    ("nsp_accuracy", "next-sentence accuracy"),
    ("sequences_per_second", "throughput (sequences/s)"),
    ("learning_rate", "learning rate"),
)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The rows of a `metrics.jsonl`; lines that are not a JSON object with a step (one cut short
    by a kill) are skipped."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                rows.append(row)
    return rows


def plot_metrics(workdir: str | os.PathLike, output: str | os.PathLike | None = None, *,
                 overwrite: bool = False) -> str:
    """Writes the curves of `workdir/metrics.jsonl` to `output` (default
    `workdir/metrics.png`): one panel per metric of `PANELS` that the run logged, training as a
    line, evaluation as points joined. Returns the path written.

    Raises:
      FileNotFoundError: if `workdir` has no metrics.jsonl (no run logged there yet).
      FileExistsError: if `output` exists and not `overwrite`.
      ValueError: if the file holds none of the metrics of `PANELS`.
    """
    workdir = os.fspath(workdir)
    path = os.path.join(workdir, "metrics.jsonl")
    output = os.fspath(output) if output is not None else os.path.join(workdir, "metrics.png")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist: no run has logged in {workdir} yet (a "
                                "run writes a row every train.log_every steps).")
    refuse_existing_file(output, overwrite)
    rows = read_metrics(path)
    panels = [(name, title) for name, title in PANELS if any(name in row for row in rows)]
    if not panels:
        raise ValueError(f"{path} holds none of the metrics plotted ({', '.join(n for n, _ in PANELS)}) "
                         f"in its {len(rows)} rows.")
    png = _draw(rows, panels, title=os.path.basename(os.path.normpath(workdir)))
    write_output_file(output, lambda f: f.write(png), overwrite=overwrite)
    return output


def _draw(rows: list[dict], panels: list[tuple[str, str]], title: str) -> bytes:
    # Imported here: matplotlib takes half a second, and only this command needs it; Agg draws
    # without a display.
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(panels))
    lines = -(-len(panels) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.2 * lines), squeeze=False)
    for ax, (name, panel_title) in zip(axes.flat, panels):
        for prefix, style in (("train", {"linewidth": 1.2}), ("eval", {"marker": "o", "markersize": 3})):
            points = sorted((row["step"], row[name]) for row in rows if row.get("prefix") == prefix and name in row)
            if points:
                ax.plot(*zip(*points), label=prefix, **style)
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()
