"""sentence-transformers directories, both directions: a BERT with its sentence-embedding head
(`bert_jax.model.sentence.SentenceConfig`), which `SentenceTransformer(directory).encode(texts)`
computes as `bert-jax encode` does.

Such a directory lists its modules in `modules.json`. We represent exactly these, in this order:

  Transformer  the BERT's Hugging Face files (the directory itself, or a subdirectory named by
               its `path`), and `sentence_bert_config.json`: `max_seq_length`, `do_lower_case`
               (lower-casing before the tokenizer)
  Pooling      `<path>/config.json`: one of the mean, max or cls poolings, and `include_prompt`
  Normalize    optional: each vector scaled to unit length

and the model's `config_sentence_transformers.json`: its prompts, the default one, and the
similarity function. Anything else (a Dense projection, a pooling we do not compute, several
poolings concatenated, a setting with no counterpart here) is refused, naming the module and the
file, rather than imported into a model that would encode differently.

Exports are written as sentence-transformers 3 to 5 wrote them (module types
`sentence_transformers.models.*`, the pooling as `pooling_mode_*` flags), which those versions and
6.x, the pinned one, all load without a warning; the BERT is saved as a `BertModel` (no
pretraining heads, which `SentenceTransformer` would report as unexpected on every load).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from bert_jax.config.validation import bert_config, sentence_config
from bert_jax.convert.export_directory import staged_export
from bert_jax.convert.hf_export import huggingface_config
from bert_jax.convert.hf_import import is_huggingface_directory, load_huggingface
from bert_jax.convert.hf_tokenizer import write_tokenizer_files
from bert_jax.convert.imported import ImportedModel
from bert_jax.convert.model_card import TrainingRecord, model_card, read_training_record
from bert_jax.convert.parameter_table import to_format
from bert_jax.convert.workdir_import import import_to_workdir
from bert_jax.model import BertConfig
from bert_jax.model.sentence import SENTENCE_POOLINGS, SIMILARITIES, SentenceConfig
from bert_jax.state.trained_params import load_trained_params

MODULES = "modules.json"
TRANSFORMER_CONFIG = "sentence_bert_config.json"
MODEL_CONFIG = "config_sentence_transformers.json"

# The modules we represent, by class name, in the only order we take them.
MODULE_ORDER = ("Transformer", "Pooling", "Normalize")

# Pooling modes as the `pooling_mode_*` flags of sentence-transformers before 6.0 name them, in
# the order that library concatenates them.
POOLING_FLAGS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                 "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                 "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}

# What a Transformer module's config may hold besides max_seq_length and do_lower_case: each
# setting with the values we can follow.
TRANSFORMER_SETTINGS = {
    "transformer_task": ("feature-extraction",),
    "modality_config": ({"text": {"method": "forward", "method_output_name": "last_hidden_state"}},),
    "module_output_name": ("token_embeddings",),
    "query_length": (None,), "document_length": (None,), "query_expansion": (None,),
    # Arguments for `transformers` when loading: empty is the only setting we know to be neutral.
    **{name: ({}, None) for name in ("model_args", "model_kwargs", "tokenizer_args", "processor_kwargs",
                                     "config_args", "config_kwargs", "processing_kwargs")},
}
SPEED_SETTINGS = ("unpad_inputs",)  # change how fast, not what, sentence-transformers computes

# A tokenizer's `model_max_length` when it has none (transformers' VERY_LARGE_INTEGER) is above this.
_NO_MAX_LENGTH = 1_000_000


class UnsupportedModule(ValueError):
    """A sentence-transformers directory holds something our model cannot represent."""


def is_sentence_transformers_directory(path: str | os.PathLike) -> bool:
    return (Path(path) / MODULES).is_file()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}).") from None


def _modules(directory: Path) -> dict[str, Path]:
    """The directory of each module of `modules.json`, by class name; refuses any other module
    or order than Transformer, Pooling[, Normalize]."""
    path = directory / MODULES
    entries = _read_json(path)
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "type" in e for e in entries):
        raise ValueError(f"{path}: expected a list of modules, each with a 'type'.")
    found: dict[str, Path] = {}
    for i, entry in enumerate(entries):
        kind = str(entry["type"])
        name = kind.rpartition(".")[2]
        where = entry.get("path", "") or "."
        if not kind.startswith("sentence_transformers.") or name not in MODULE_ORDER:
            raise UnsupportedModule(
                f"{path}: module {i} is {kind} (in {where}), which bert-jax cannot represent: it "
                f"takes only {', '.join(MODULE_ORDER)} modules (a BERT, one pooling, and "
                "optionally unit length), so a model with it would encode differently here.")
        found[name] = directory / entry.get("path", "")
    names = [str(e["type"]).rpartition(".")[2] for e in entries]
    if names not in (list(MODULE_ORDER[:2]), list(MODULE_ORDER)):
        raise UnsupportedModule(f"{path}: modules {names}; bert-jax takes Transformer, Pooling and "
                                "optionally Normalize, each once and in that order.")
    return found


def _transformer_settings(directory: Path) -> tuple[int, bool]:
    """(max_seq_length, or 0 for the model's; do_lower_case) of a Transformer module."""
    path = directory / TRANSFORMER_CONFIG
    settings = _read_json(path) if path.is_file() else {}
    problems = []
    for key, value in settings.items():
        if key in ("max_seq_length", "do_lower_case") or key in SPEED_SETTINGS:
            continue
        if key not in TRANSFORMER_SETTINGS:
            problems.append(f"{key}={value!r} is not a setting bert-jax knows")
        elif value not in TRANSFORMER_SETTINGS[key]:
            problems.append(f"{key}={value!r}: bert-jax follows only {TRANSFORMER_SETTINGS[key][0]!r}")
    max_seq_length = settings.get("max_seq_length")
    if max_seq_length is None:
        # Since sentence-transformers 6, the length is the tokenizer's `model_max_length`.
        tokenizer_config = directory / "tokenizer_config.json"
        length = _read_json(tokenizer_config).get("model_max_length") if tokenizer_config.is_file() else None
        max_seq_length = int(length) if isinstance(length, (int, float)) and length < _NO_MAX_LENGTH else 0
    elif not isinstance(max_seq_length, int) or isinstance(max_seq_length, bool) or max_seq_length < 1:
        problems.append(f"max_seq_length={max_seq_length!r} must be a positive number of tokens")
    do_lower_case = settings.get("do_lower_case", False)
    if not isinstance(do_lower_case, bool):
        problems.append(f"do_lower_case={do_lower_case!r} must be true or false")
    if problems:
        raise UnsupportedModule(f"{path}: the Transformer module has settings bert-jax cannot "
                                "follow:\n  - " + "\n  - ".join(problems))
    return max_seq_length, do_lower_case


def _pooling_settings(directory: Path) -> tuple[str, bool, int | None]:
    """(pooling, include_prompt, embedding dimension) of a Pooling module's config.json, in
    either of its formats: `pooling_mode` (sentence-transformers 6) or `pooling_mode_*` flags."""
    path = directory / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the Pooling module's settings.")
    settings = _read_json(path)
    unknown = sorted(set(settings) - {"embedding_dimension", "word_embedding_dimension", "pooling_mode",
                                      "include_prompt", *POOLING_FLAGS})
    if unknown:
        raise UnsupportedModule(f"{path}: the Pooling module has settings bert-jax does not know: {unknown}.")
    # As sentence-transformers reads it: `pooling_mode` if given, else the flags set (none: mean).
    modes = settings.get("pooling_mode")
    if modes is None:
        modes = [mode for flag, mode in POOLING_FLAGS.items() if settings.get(flag)] or ["mean"]
    modes = [modes] if isinstance(modes, str) else list(modes)
    if len(modes) != 1:
        raise UnsupportedModule(f"{path}: the Pooling module concatenates {modes}; bert-jax computes "
                                f"one pooling of {SENTENCE_POOLINGS}.")
    if modes[0] not in SENTENCE_POOLINGS:
        raise UnsupportedModule(f"{path}: pooling mode {modes[0]!r} of the Pooling module is not one "
                                f"bert-jax computes ({', '.join(SENTENCE_POOLINGS)}).")
    include_prompt = settings.get("include_prompt", True)
    if type(include_prompt) is not bool:  # JSON true or false, not 1 or "yes"
        raise ValueError(f"{path}: include_prompt={include_prompt!r} must be true or false.")
    dimension = settings.get("embedding_dimension", settings.get("word_embedding_dimension"))
    return modes[0], include_prompt, dimension


def _check_normalize(directory: Path) -> None:
    """Refuses a Normalize module that scales anything but the sentence vector. Before
    sentence-transformers 6 it had no settings (and often no directory)."""
    path = directory / "config.json"
    settings = _read_json(path) if path.is_file() else {}
    for key in ("module_input_name", "module_output_name"):
        if settings.get(key, "sentence_embedding") != "sentence_embedding":
            raise UnsupportedModule(f"{path}: the Normalize module has {key}={settings[key]!r}; "
                                    "bert-jax normalizes only the sentence vector (sentence_embedding).")


def _model_settings(directory: Path) -> dict[str, Any]:
    """prompts, default_prompt_name and similarity of `config_sentence_transformers.json`."""
    path = directory / MODEL_CONFIG
    settings = _read_json(path) if path.is_file() else {}
    problems = []
    unknown = sorted(set(settings) - {"__version__", "model_type", "prompts", "default_prompt_name",
                                      "similarity_fn_name", "truncate_dim"})
    if unknown:
        problems.append(f"settings bert-jax does not know: {unknown}")
    if settings.get("model_type", "SentenceTransformer") != "SentenceTransformer":
        problems.append(f"model_type={settings['model_type']!r}: bert-jax reads SentenceTransformer models only")
    if settings.get("truncate_dim") is not None:
        problems.append(f"truncate_dim={settings['truncate_dim']!r}: bert-jax keeps every dimension")
    prompts = settings.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(v, (str, type(None))) for v in prompts.values()):
        problems.append(f"prompts={prompts!r} must map names to texts")
        prompts = {}
    # sentence-transformers reads a null prompt as an empty one.
    prompts = {str(name): text or "" for name, text in prompts.items()}
    default = settings.get("default_prompt_name") or ""
    if default and default not in prompts:
        problems.append(f"default_prompt_name={default!r} is not one of the prompts {sorted(prompts)}")
    # Unset, sentence-transformers compares with the cosine.
    similarity = settings.get("similarity_fn_name") or "cosine"
    if similarity not in SIMILARITIES:
        problems.append(f"similarity_fn_name={similarity!r} must be one of {SIMILARITIES}")
    if problems:
        raise UnsupportedModule(f"{path}: " + "; ".join(problems) + ".")
    return {"prompts": prompts, "default_prompt_name": default, "similarity": similarity}


def read_sentence_config(directory: str | os.PathLike) -> tuple[SentenceConfig, Path]:
    """(the sentence-embedding head of a sentence-transformers directory, the directory of its
    BERT's Hugging Face files). Raises ValueError naming the module and the file of anything our
    model cannot represent (see the module docstring)."""
    sentence, transformer, _ = _read(Path(directory))
    return sentence, transformer


def _read(directory: Path) -> tuple[SentenceConfig, Path, tuple[Path, int | None]]:
    """`read_sentence_config`, and (the Pooling module's config file, the vector size it names)."""
    modules = _modules(directory)
    max_seq_length, do_lower_case = _transformer_settings(modules["Transformer"])
    pooling, include_prompt, dimension = _pooling_settings(modules["Pooling"])
    if "Normalize" in modules:
        _check_normalize(modules["Normalize"])
    sentence = SentenceConfig(pooling=pooling, normalize="Normalize" in modules,
                              max_seq_length=max_seq_length, do_lower_case=do_lower_case,
                              include_prompt=include_prompt, **_model_settings(directory))
    return sentence, modules["Transformer"], (modules["Pooling"] / "config.json", dimension)


def load_sentence_transformers(directory: str | os.PathLike) -> tuple[ImportedModel, SentenceConfig]:
    """The BERT of a sentence-transformers directory as our parameters, and its head."""
    directory = Path(directory)
    sentence, transformer, (pooling_file, dimension) = _read(directory)
    if not is_huggingface_directory(transformer):
        raise FileNotFoundError(f"{transformer}: the Transformer module of {directory / MODULES} holds "
                                "no Hugging Face BERT (config.json and weights).")
    imported = load_huggingface(transformer)
    if dimension is not None and dimension != imported.config.hidden_size:
        raise ValueError(f"{pooling_file}: the Pooling module takes vectors of {dimension}; the "
                         f"BERT's hidden_size is {imported.config.hidden_size}.")
    imported.kind = "sentence-transformers"
    imported.source = str(directory)
    return imported, sentence


def module_files(sentence: SentenceConfig, config: BertConfig) -> dict[str, Any]:
    """The JSON files of a sentence-transformers directory's modules, by path, for the head
    `sentence` over a BERT of `config` (whose own files go in the directory itself)."""
    modules = [("", "Transformer"), ("1_Pooling", "Pooling")]
    if sentence.normalize:
        modules.append(("2_Normalize", "Normalize"))
    files: dict[str, Any] = {
        MODULES: [{"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
                  for i, (path, kind) in enumerate(modules)],
        TRANSFORMER_CONFIG: {"max_seq_length": sentence.max_length(config.max_position_embeddings),
                             "do_lower_case": sentence.do_lower_case},
        "1_Pooling/config.json": {"word_embedding_dimension": config.hidden_size,
                                  **{flag: mode == sentence.pooling for flag, mode in POOLING_FLAGS.items()},
                                  "include_prompt": sentence.include_prompt},
        MODEL_CONFIG: {"model_type": "SentenceTransformer", "prompts": dict(sentence.prompts),
                       "default_prompt_name": sentence.default_prompt_name or None,
                       "similarity_fn_name": sentence.similarity},
    }
    if sentence.normalize:
        files["2_Normalize/config.json"] = {"module_input_name": "sentence_embedding",
                                            "module_output_name": "sentence_embedding"}
    return files


def bert_model_state_dict(params: Any, config: BertConfig) -> dict[str, np.ndarray]:
    """Our parameters (scanned or not; the pretraining heads may be absent) as the state dict of a
    Hugging Face `BertModel`, the encoder and pooler as float32 arrays: `BertModel` names them
    without the `bert.` prefix of the pretraining model."""
    tensors = to_format(params, config, "huggingface", kind="encoder")
    return {name.removeprefix("bert."): value for name, value in tensors.items()}


def export_sentence_transformers(params: Any, config: BertConfig, vocab_file: str | os.PathLike,
                                 do_lower_case: bool, sentence: SentenceConfig,
                                 output_dir: str | os.PathLike, *, overwrite: bool = False,
                                 record: TrainingRecord | None = None) -> Path:
    """Writes a sentence-transformers directory for our parameters (scanned or not) and the head
    `sentence`: the BERT as a Hugging Face `BertModel` (config.json, model.safetensors, the
    tokenizer of `vocab_file`), modules.json, 1_Pooling/, 2_Normalize/ when normalizing,
    sentence_bert_config.json, config_sentence_transformers.json and a model card, README.md
    (`bert_jax.convert.model_card`, with how the model was trained when `record` is given).

    `output_dir` must be new or empty, or hold an earlier export and `overwrite` be set: then only
    the files that export wrote are replaced (`bert_jax.convert.export_directory`, which also
    keeps a crash from leaving a half-written file under a final name).
    """
    if not Path(vocab_file).is_file():
        raise FileNotFoundError(f"vocab file {vocab_file} does not exist.")
    with staged_export(output_dir, overwrite=overwrite,
                       writer="bert-jax export --sentence-transformers") as staging:
        save_file(bert_model_state_dict(params, config), str(staging / "model.safetensors"),
                  metadata={"format": "pt"})
        files = {"config.json": {**huggingface_config(config), "architectures": ["BertModel"]},
                 **module_files(sentence, config)}
        for name, content in files.items():
            (staging / name).parent.mkdir(exist_ok=True)
            (staging / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
        write_tokenizer_files(vocab_file, do_lower_case, sentence.max_length(config.max_position_embeddings),
                              staging)
        card = model_card(config, "encoder", "BertModel", sentence=sentence, record=record)
        (staging / "README.md").write_text(card, encoding="utf-8")
    return Path(output_dir)


def export_workdir(workdir: str | os.PathLike, output_dir: str | os.PathLike, step: int | None = None,
                   vocab_file: str | os.PathLike | None = None, *, overwrite: bool = False
                   ) -> tuple[Path, int]:
    """(the sentence-transformers directory written, the step exported) for a work directory's
    latest (or given) checkpoint, with the head of its run config's `sentence` section."""
    params, run_config, step = load_trained_params(workdir, step)
    out = export_sentence_transformers(params, bert_config(run_config),
                                       vocab_file or run_config.data.vocab_file,
                                       run_config.data.do_lower_case, sentence_config(run_config),
                                       output_dir, overwrite=overwrite,
                                       record=read_training_record(workdir, run_config, step))
    return out, step


def config_overrides(sentence: SentenceConfig, source: str = "the prompts") -> list[str]:
    """`sentence.FIELD=VALUE` overrides that set a run config's head to `sentence`."""
    dotted = [name for name in sentence.prompts if "." in name]
    if dotted:
        raise ValueError(f"{source}: prompt names {dotted} hold a '.', which a run config's keys "
                         "cannot; rename them to import this model into a work directory.")
    return [f"sentence.{field.name}={getattr(sentence, field.name)!r}" for field in dataclasses.fields(sentence)]


def import_sentence_transformers(source: str | os.PathLike, output_dir: str | os.PathLike,
                                 config_name: str | None = None, overrides: tuple[str, ...] | list[str] = (),
                                 vocab_file: str | None = None, seed: int = 0
                                 ) -> tuple[Path, ImportedModel, SentenceConfig]:
    """`bert_jax.convert.workdir_import.import_to_workdir` for a sentence-transformers directory:
    a work directory of its BERT whose run config's `sentence` section is the model's head (then
    `overrides`), so that `encode` and `export_workdir` keep its pooling and normalization."""
    source = Path(source)
    sentence, transformer = read_sentence_config(source)
    head = config_overrides(sentence, str(source / MODEL_CONFIG))
    out, imported = import_to_workdir(transformer, output_dir, config_name, [*head, *overrides],
                                      vocab_file, seed)
    return out, imported, sentence
