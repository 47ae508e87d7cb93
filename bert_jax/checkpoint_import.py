"""Pretrained BERT weights from elsewhere, as our parameters: to continue pretraining from
(`train.init_from`), or to turn into a work directory that `fill-mask` and `export` use
(`bert-jax import`).

Three sources, told apart by what the path holds:

* a Hugging Face BERT directory (`config.json` and weights): `bert_jax.hf_import`;
* a Google TensorFlow checkpoint (`bert_config.json` and `bert_model.ckpt`):
  `bert_jax.google_checkpoint`;
* a bert-jax work directory (`checkpoints/`): its latest checkpoint.

Each gives an `ImportedModel`: our `BertConfig`, our parameters (unscanned: one `layer_{i}` per
layer, float32 numpy arrays), and the parameters it did not hold. Only heads may be missing (the
pooler, the masked-LM and next-sentence heads: a `BertModel` has no pretraining heads); those are
freshly initialized, and every place that does so says which.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shutil
from collections.abc import Callable, Container, Iterable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from bert_jax.model import BertConfig, BertForPreTraining, scan_params, unscan_params

logger = logging.getLogger(__name__)

# Parameters a source may lack; they are initialized afresh. Everything else must be there.
HEAD_PREFIXES = ("bert/pooler/", "masked_lm/", "next_sentence/")

# The fields that fix the parameters' shapes, and those that change the function they compute:
# importing into a model that differs in any of them is refused.
SHAPE_FIELDS = ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size")
FUNCTION_FIELDS = ("hidden_act", "layer_norm_eps")


@dataclasses.dataclass
class ImportedModel:
    """Weights read from a checkpoint of another format (or another work directory)."""
    config: BertConfig  # the model the weights belong to (scan_layers=False)
    params: dict        # our unscanned parameter tree, float32 numpy arrays; missing heads absent
    missing: list[str]  # paths ("masked_lm/transform/kernel") of the head parameters not found
    ignored: list[str]  # names of source tensors that are not part of our model (task heads)
    vocab_file: str | None
    do_lower_case: bool
    source: str
    kind: str           # "Hugging Face", "Google TensorFlow" or "bert-jax"

    def describe(self) -> str:
        """One line for logs: where from, and what was freshly initialized."""
        fresh = (f"freshly initialized (not in the source): {', '.join(_group(self.missing))}"
                 if self.missing else "nothing freshly initialized")
        ignored = f"; source tensors not used: {', '.join(self.ignored)}" if self.ignored else ""
        return f"{self.kind} checkpoint {self.source}: {fresh}{ignored}"


def _group(paths: list[str]) -> list[str]:
    """Parameter paths shortened to their modules ("masked_lm/transform/kernel" and ".../bias"
    as "masked_lm/transform"), in order."""
    def module(path: str) -> str:
        parent, _, leaf = path.rpartition("/")
        return parent if leaf in ("kernel", "bias", "scale", "embedding") else path
    return list(dict.fromkeys(map(module, paths)))


# --- Parameter trees. ----------------------------------------------------------------------------

class TensorMisfit(ValueError):
    """A checkpoint tensor whose shape does not fit the parameter it maps to."""


def collect_params(entries: Iterable[tuple[str, tuple[str, ...], Any]], available: Container[str],
                   read: Callable[[str, str, Any], np.ndarray]) -> tuple[dict, list[str], list[str], set[str]]:
    """Our unscanned parameter tree from a checkpoint's named tensors, for the importers.

    `entries` are (source name, our parameter path, how to convert); `read(name, path, how)`
    returns our array, or raises `TensorMisfit` saying why the tensor does not fit. A missing
    head parameter is listed (to be initialized afresh); any other missing or misfit tensor is an
    error. Returns (params, missing paths, errors, the source names used).
    """
    params: dict = {}
    missing, errors, used = [], [], set()
    for name, path, how in entries:
        key = "/".join(path)
        if name not in available:
            if key.startswith(HEAD_PREFIXES):
                missing.append(key)
            else:
                errors.append(f"{name} is missing")
            continue
        used.add(name)
        try:
            set_path(params, path, read(name, key, how))
        except TensorMisfit as misfit:
            errors.append(str(misfit))
    return params, missing, errors, used


def set_path(tree: dict, path: tuple[str, ...], value: Any) -> None:
    """tree[path[0]][path[1]]... = value, creating the dicts on the way."""
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def flatten(tree: Any) -> dict[str, Any]:
    """{"bert/embeddings/word_embeddings/embedding": leaf, ...}."""
    flat = {}
    for keys, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        flat["/".join(str(getattr(k, "key", k)) for k in keys)] = leaf
    return flat


@functools.cache
def parameter_shapes(config: BertConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every parameter of an unscanned `BertForPreTraining` of `config`, by path."""
    import flax.linen as nn

    config = dataclasses.replace(config, scan_layers=False)
    ids = jax.ShapeDtypeStruct((1, 2), np.int32)
    boxed = jax.eval_shape(lambda x: BertForPreTraining(config).init(jax.random.key(0), x, x, x), ids)
    return {path: tuple(leaf.shape) for path, leaf in flatten(nn.unbox(boxed["params"])).items()}


def in_layout(params: dict, config: BertConfig) -> dict:
    """Unscanned parameters in the layout of a model of `config` (scanned or not)."""
    return scan_params(params, config.num_layers) if config.scan_layers else params


def initial_params(config: BertConfig, seed: int = 0) -> dict:
    """Freshly initialized unscanned parameters of `config`, as numpy arrays."""
    import flax.linen as nn

    config = dataclasses.replace(config, scan_layers=False)
    ids = np.zeros((1, 2), np.int32)
    init = jax.jit(lambda key: nn.unbox(BertForPreTraining(config).init(key, ids, ids, ids)["params"]))
    return jax.device_get(init(jax.random.key(seed)))


def complete_params(imported: ImportedModel, seed: int = 0) -> dict:
    """All parameters of `imported.config` (unscanned): the imported ones, and the missing heads
    freshly initialized (with `seed`)."""
    if not imported.missing:
        return imported.params
    fresh = flatten(initial_params(imported.config, seed))
    params = jax.tree.map(lambda x: x, imported.params)  # a copy of the dicts, not the arrays
    for path in imported.missing:
        set_path(params, tuple(path.split("/")), fresh[path])
    return params


def check_compatible(imported: BertConfig, model: BertConfig, source: str, where: str = "model") -> None:
    """Raises ValueError naming every field in which `model` differs from the model the imported
    weights belong to, for the fields that fix their shapes or the function they compute."""
    differences = [f"{where}.{field}: {getattr(model, field)!r}, the checkpoint's is "
                   f"{getattr(imported, field)!r}" for field in SHAPE_FIELDS + FUNCTION_FIELDS
                   if getattr(model, field) != getattr(imported, field)]
    if differences:
        raise ValueError(f"the model of the config differs from the one in {source}:\n  - "
                         + "\n  - ".join(differences) + "\nSet these fields to the checkpoint's values.")


# --- Sources. ------------------------------------------------------------------------------------

def is_workdir(path: str | os.PathLike) -> bool:
    from bert_jax.checkpointing import CHECKPOINT_DIR
    from input_pipeline import remote_files
    return remote_files.isdir(os.path.join(os.fspath(path), CHECKPOINT_DIR))


def source_exists(path: str) -> bool:
    """Whether `path` exists as a file, directory or checkpoint prefix (`prefix.index`)."""
    from input_pipeline import remote_files
    return remote_files.exists(path) or remote_files.exists(path + ".index")


def load_workdir(workdir: str | os.PathLike, step: int | None = None) -> ImportedModel:
    """The parameters of a bert-jax work directory's latest (or given) checkpoint."""
    from bert_jax.experiment_config import bert_config
    from bert_jax.train import load_trained_params

    params, config, step = load_trained_params(workdir, step)
    model = bert_config(config)
    params = jax.device_get(unscan_params(params, model.num_layers))
    return ImportedModel(config=dataclasses.replace(model, scan_layers=False), params=params,
                         missing=[], ignored=[], vocab_file=config.data.vocab_file or None,
                         do_lower_case=config.data.do_lower_case,
                         source=f"{os.fspath(workdir)} (step {step})", kind="bert-jax")


def load_pretrained(source: str | os.PathLike, vocab_file: str | None = None) -> ImportedModel:
    """The weights at `source`: a Hugging Face directory, a Google checkpoint (directory or
    prefix) or a bert-jax work directory. `vocab_file` replaces the source's own vocab."""
    from bert_jax import google_checkpoint, hf_import

    source = os.fspath(source)
    if is_workdir(source):
        imported = load_workdir(source)
    elif hf_import.is_huggingface_directory(source):
        imported = hf_import.load_huggingface(source)
    elif google_checkpoint.find_checkpoint(source) is not None:
        imported = google_checkpoint.load_google_checkpoint(source, vocab_file)
    elif not source_exists(source):
        raise FileNotFoundError(f"{source} does not exist.")
    else:
        raise ValueError(f"{source} is neither a Hugging Face BERT directory (config.json and "
                         f"{' or '.join(hf_import.WEIGHT_FILES)}), a Google BERT checkpoint "
                         f"(bert_config.json and bert_model.ckpt) nor a bert-jax work directory "
                         f"(checkpoints/).")
    if vocab_file is not None:
        from input_pipeline.sentencepiece_tokenizer import SentencePieceTokenizer
        from input_pipeline.tokenization import load_tokenizer

        imported.vocab_file = os.fspath(vocab_file)
        tokenizer = load_tokenizer(vocab_file)
        if isinstance(tokenizer, SentencePieceTokenizer):  # lower-casing is the model's own
            imported.do_lower_case = tokenizer.do_lower_case
    return imported


# --- Continuing pretraining: `train.init_from`. -------------------------------------------------

def initialize_params(source: str, params: Any, shardings: Any, model: BertConfig) -> Any:
    """`params` (a freshly initialized train state's, in `model`'s layout) with every parameter
    that `source` holds replaced by the imported value, placed with `shardings`; the heads the
    source lacks keep their fresh values. Logs the source and what stayed fresh.

    Every process reads `source` (it must be visible to all of them) and builds the shards of
    its own devices from the full arrays.
    """
    imported = load_pretrained(source)
    check_compatible(imported.config, model, imported.source)
    found = flatten(in_layout(imported.params, model))
    targets = flatten(shardings)

    def place(path, fresh):
        key = "/".join(str(getattr(k, "key", k)) for k in path)
        if key not in found:
            return fresh
        value = found[key]
        if value.shape != fresh.shape:  # check_compatible makes this unreachable; be explicit
            raise ValueError(f"{imported.source}: {key} has shape {value.shape}, the model's is {fresh.shape}")
        value = value.astype(fresh.dtype)
        # Each process builds its own shards from the full array (a multi-host safe device_put).
        return jax.make_array_from_callback(value.shape, targets[key], lambda index: value[index])

    initialized = jax.tree_util.tree_map_with_path(place, params)
    logger.info("train.init_from: initialized from the %s", imported.describe())
    return initialized


# --- `bert-jax import`: a work directory holding the imported weights. ----------------------------

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
    from bert_jax import experiment_config

    output_dir = Path(output_dir).absolute()
    if output_dir.exists():
        raise FileExistsError(f"{output_dir} already exists; choose a new directory, nothing was written.")
    imported = load_pretrained(source, vocab_file)
    if imported.vocab_file is None:
        raise FileNotFoundError(f"{imported.source} has no vocab.txt or spiece.model beside it; "
                                "give the vocab with --vocab.")

    config = (experiment_config.load_config(config_name) if config_name
              else experiment_config.default_config())
    run_choices = {k: config.model[k] for k in ("dtype", "scan_layers", "remat", "attention")}
    config.model.update({**dataclasses.asdict(imported.config), **run_choices})
    experiment_config.apply_overrides(config, overrides)
    model = experiment_config.bert_config(config)
    check_compatible(imported.config, model, imported.source)

    tmp = output_dir.with_name(output_dir.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write_workdir(tmp, output_dir, imported, config, model, seed)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written is left behind
        raise
    os.replace(tmp, output_dir)
    logger.info("imported the %s into %s", imported.describe(), output_dir)
    return output_dir, imported


def _write_workdir(tmp: Path, output_dir: Path, imported: ImportedModel, config: Any,
                   model: BertConfig, seed: int) -> None:
    """The vocab, a step-0 checkpoint and config.json of `import_to_workdir`, into `tmp`."""
    import jax.numpy as jnp

    from bert_jax import experiment_config
    from bert_jax.checkpointing import Checkpointer
    from bert_jax.optimizer import make_optimizer
    from bert_jax.train_step import TrainState
    from input_pipeline.sentencepiece_tokenizer import SentencePieceTokenizer
    from input_pipeline.tokenization import load_tokenizer

    is_sentencepiece = isinstance(load_tokenizer(imported.vocab_file), SentencePieceTokenizer)
    vocab_name = "spiece.model" if is_sentencepiece else "vocab.txt"
    shutil.copyfile(imported.vocab_file, tmp / vocab_name)
    # The final path: the config is read after the rename.
    config.data.vocab_file = str(output_dir / vocab_name)
    config.data.do_lower_case = imported.do_lower_case
    config.data.max_seq_length = min(config.data.max_seq_length, model.max_position_embeddings)

    params = jax.tree.map(jnp.asarray, in_layout(complete_params(imported, seed), model))
    optimizer, _ = make_optimizer(config.optimizer, config.train.num_steps)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))
    checkpointer = Checkpointer(tmp, async_save=False)
    try:
        checkpointer.save(0, state, config.to_dict())
        checkpointer.wait_until_finished()
    finally:
        checkpointer.close()
    experiment_config.save_config(config, tmp / "config.json")
