"""`bert-jax import`: a work directory holding imported weights (`config.json`, the vocab and a
step-0 checkpoint), which `fill-mask`, `export`, `train.init_from` and `pretrain` read.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from bert_jax.config.defaults import default_config
from bert_jax.config.files import apply_overrides, load_config, save_config
from bert_jax.config.run import OptimizerConfig
from bert_jax.config.validation import bert_config
from bert_jax.convert.imported import ImportedModel, check_compatible, complete_params, in_layout
from bert_jax.convert.sources import load_pretrained
from bert_jax.model import BertConfig
from bert_jax.state.checkpointer import Checkpointer, CheckpointError
from bert_jax.state.optimizer import make_optimizer
from bert_jax.state.train_state import TrainState
from input_pipeline.tokenizers.loading import load_tokenizer
from input_pipeline.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer

logger = logging.getLogger(__name__)


def import_to_workdir(source: str | os.PathLike, output_dir: str | os.PathLike,
                      config_name: str | None = None, overrides: tuple[str, ...] | list[str] = (),
                      vocab_file: str | None = None, seed: int = 0) -> tuple[Path, ImportedModel]:
    """Writes a bert-jax work directory for the weights at `source`: `config.json`, the vocab
    (copied in), and a checkpoint at step 0 (parameters, missing heads freshly initialized, and a
    fresh optimizer state), which `fill-mask`, `export`, `train.init_from` and `pretrain` read.

    The run config is `config_name` (a config in configs/, else the defaults) with the model
    fields set to the checkpoint's, then `overrides` (e.g. "model.scan_layers=False"); the
    model's shape must still match the checkpoint's. The directory is assembled under a
    temporary name and renamed when complete; an existing directory is never overwritten.
    """

    output_dir = Path(output_dir).absolute()
    if output_dir.exists():
        raise FileExistsError(f"{output_dir} already exists; choose a new directory, nothing was written.")
    imported = load_pretrained(source, vocab_file)
    if imported.vocab_file is None:
        raise FileNotFoundError(f"{imported.source} has no vocab.txt or spiece.model beside it; "
                                "give the vocab with --vocab.")

    config = (load_config(config_name) if config_name
              else default_config())
    run_choices = {k: config.model[k] for k in ("dtype", "scan_layers", "remat", "attention")}
    config.model.update({**dataclasses.asdict(imported.config), **run_choices})
    apply_overrides(config, overrides)
    model = bert_config(config)
    check_compatible(imported.config, model, imported.source)

    tmp = output_dir.with_name(output_dir.name + f".tmp-{os.getpid()}")
    try:
        tmp.mkdir(parents=True)  # never removes a directory of that name: it may not be ours
    except FileExistsError:
        raise FileExistsError(f"{tmp} exists (left by an earlier import, or not ours); remove it, "
                              "or choose another --output. Nothing was written.") from None
    try:
        _write_workdir(tmp, output_dir, imported, config, model, seed)
    except CheckpointError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        # Its own message names the temporary directory and says to resume, which an import
        # cannot: say what failed, where the user looks.
        raise OSError(f"writing the work directory {output_dir} failed ({e.__cause__ or e}); "
                      "nothing was written under that name. Free disk space or choose another "
                      "--output, then rerun.") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written is left behind
        raise
    try:
        # Fails if the name appeared meanwhile (another import, a pretrain's new work directory):
        # a work directory is never written into, so it needs no lock (`state.workdir_lock`).
        os.replace(tmp, output_dir)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FileExistsError(f"{output_dir} appeared while importing ({e.strerror}); choose a new "
                              "directory, nothing was written into it.") from e
    logger.info("imported the %s into %s", imported.describe(), output_dir)
    return output_dir, imported


def _write_workdir(tmp: Path, output_dir: Path, imported: ImportedModel, config: Any,
                   model: BertConfig, seed: int) -> None:
    """The vocab, a step-0 checkpoint and config.json of `import_to_workdir`, into `tmp`."""
    is_sentencepiece = isinstance(load_tokenizer(imported.vocab_file), SentencePieceTokenizer)
    vocab_name = "spiece.model" if is_sentencepiece else "vocab.txt"
    shutil.copyfile(imported.vocab_file, tmp / vocab_name)
    # The final path: the config is read after the rename.
    config.data.vocab_file = str(output_dir / vocab_name)
    config.data.do_lower_case = imported.do_lower_case
    config.data.max_seq_length = min(config.data.max_seq_length, model.max_position_embeddings)

    params = jax.tree.map(jnp.asarray, in_layout(complete_params(imported, seed), model))
    optimizer, _ = make_optimizer(OptimizerConfig.from_config(config.optimizer), config.train.num_steps)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))
    checkpointer = Checkpointer(tmp, async_save=False)
    try:
        checkpointer.save(0, state, config.to_dict())
        checkpointer.wait_until_finished()
    finally:
        checkpointer.close()
    save_config(config, tmp / "config.json")

