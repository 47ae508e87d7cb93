"""What a run leaves to watch it by, on one tiny run with evaluations (4 steps, an evaluation
every 2) reporting to TensorBoard and to Weights & Biases (offline: on disk, no network): scalars
as scalars and the config in TensorBoard, the same numbers in W&B, the export's summary, and a
finished run started again does nothing and says so."""

from __future__ import annotations

import json
import logging
import re

import pytest


@pytest.fixture(scope="module")
def finished_run(tiny_run_config, tmp_path_factory):
    """(config, work directory, results) of a finished tiny run with evaluations at 2 and 4."""
    from bert_jax.training.loop import train_and_evaluate

    workdir = tmp_path_factory.mktemp("watched_run")
    config = tiny_run_config(num_steps=4, log_every=2)
    config.train.eval_every, config.train.eval_steps = 2, 2
    config.optimizer.warmup_steps = 1
    config.train.report_to = "tensorboard,wandb"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        yield config, workdir, train_and_evaluate(config, workdir)


def _rows(workdir) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_tensorboard_holds_scalars_and_the_config(finished_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    _, workdir, _ = finished_run
    events = EventAccumulator(str(workdir / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    for tag in ("train/loss", "train/mlm_accuracy", "train/mlm_replaced_accuracy", "train/nsp_accuracy",
                "train/sequences_per_second", "train/compile_seconds", "eval/loss", "eval/mlm_accuracy"):
        assert tag in scalars, (tag, scalars)
    for row in _rows(workdir):
        logged = {e.step: e.value for e in events.Scalars(f"{row['prefix']}/loss")}
        assert logged[row["step"]] == pytest.approx(row["loss"], rel=1e-6)
    # The config as hyperparameters (TensorBoard's HParams tab) and as text.
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["model.hidden_size"].number_value == 64
    assert hparams["train.report_to"].string_value == "tensorboard,wandb"
    text = events.Tensors("config")[0].tensor_proto.string_val[0].decode()
    assert '"hidden_size": 64' in text


def _wandb_records(path):
    """The records of a W&B run file (`run-ID.wandb`): LevelDB's log format (32 KiB blocks;
    each chunk a 7-byte header: CRC, length, type), each record a `wandb_internal_pb2.Record`."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, record = 7, b""
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a header is padding
            position += 32768 - position % 32768
            continue
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), data[position + 6]
        if kind == 0:
            break
        record += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            yield wandb_internal_pb2.Record.FromString(record)
            record = b""


def _key(item) -> str:
    return item.key or ".".join(item.nested_key)  # wandb-core writes the key in one or the other


def test_wandb_holds_the_same_numbers_and_the_config(finished_run):
    _, workdir, _ = finished_run
    [run_file] = (workdir / "wandb").glob("offline-run-*/run-*.wandb")
    history, config = {}, {}
    for record in _wandb_records(run_file):
        if record.HasField("history"):
            items = {_key(item): json.loads(item.value_json) for item in record.history.item}
            history.setdefault(items.get("_step", record.history.step.num), {}).update(items)
        elif record.HasField("config"):
            config |= {_key(item): json.loads(item.value_json) for item in record.config.update}
    for row in _rows(workdir):
        for name in ("loss", "mlm_accuracy", "nsp_accuracy"):
            assert history[row["step"]][f"{row['prefix']}/{name}"] == pytest.approx(row[name], rel=1e-6)
    assert config["model.hidden_size"] == 64 and config["train.report_to"] == "tensorboard,wandb"


def test_export_ends_with_a_summary(finished_run, tmp_path, caplog):
    from bert_jax.cli import main

    _, workdir, _ = finished_run
    with caplog.at_level(logging.INFO):
        assert main(["export", "--workdir", str(workdir), "--output", str(tmp_path / "export")]) == 0
    summaries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("export: ")]
    assert len(summaries) == 1
    assert re.fullmatch(r"export: 2 stages in \dm\d\ds \([\d.]+ stages/s\) -> .*export \([\d.]+ MB\)",
                        summaries[0]), summaries


def _files(directory):
    return sorted((p.relative_to(directory), p.stat().st_size) for p in directory.rglob("*") if p.is_file())


def test_a_finished_run_started_again_does_nothing_and_says_so(finished_run, caplog, tmp_path):
    from bert_jax.training.loop import train_and_evaluate

    config, workdir, results = finished_run
    before = _files(workdir)
    with caplog.at_level(logging.INFO, logger="bert_jax"):
        again = train_and_evaluate(config, workdir)
    assert "training is complete and evaluated" in caplog.text and "nothing to do" in caplog.text
    assert _files(workdir) == before  # no evaluation row, event file or config written
    assert again == pytest.approx(results, rel=1e-12)  # the first run's results, read back

    # A run stopped between its last checkpoint and its final evaluation makes that evaluation.
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("run.lock"))
    rows = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    (copy / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows
                                                if (r["step"], r["prefix"]) != (4, "eval")))
    evaluated = train_and_evaluate(config, copy)
    assert evaluated["eval_loss"] == pytest.approx(results["eval_loss"], rel=1e-6)
    rows = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["prefix"]) for r in rows] == [(2, "train"), (2, "eval"), (4, "train"), (4, "eval")]


def test_plot_draws_the_curves_of_metrics_jsonl(finished_run, tmp_path, capsys):
    import matplotlib.image

    from bert_jax.cli import main

    _, workdir, _ = finished_run
    out = tmp_path / "curves.png"
    assert main(["plot", str(workdir), "--output", str(out)]) == 0
    # Six panels (loss, three accuracies, throughput, learning rate) in 3 columns x 2 lines at 80 dpi.
    assert matplotlib.image.imread(out).shape[:2] == (512, 1008)
    assert main(["plot", str(workdir), "--output", str(out)]) == 2  # not replaced unasked
    assert "--overwrite" in capsys.readouterr().err
    assert main(["plot", str(tmp_path), "--output", str(tmp_path / "none.png")]) == 2
    assert "metrics.jsonl does not exist: no run has logged" in capsys.readouterr().err
