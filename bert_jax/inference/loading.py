"""Loading a model for inference from a work directory, a sentence-transformers or Hugging Face
directory or a Google checkpoint (`load_model`), and refusing a task whose heads the source lacks.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import Any

import jax

from bert_jax.config.validation import bert_config, sentence_config
from bert_jax.convert.hub import resolve_model
from bert_jax.convert.imported import complete_params
from bert_jax.convert.sentence_transformers import is_sentence_transformers_directory, load_sentence_transformers
from bert_jax.convert.sources import is_workdir, load_pretrained
from bert_jax.model import BertConfig, SentenceConfig
from bert_jax.state.trained_params import load_trained_params
from input_pipeline.tokenizers.loading import load_tokenizer

logger = logging.getLogger(__name__)


Tokenizer = Any  # BertTokenizer or input_pipeline.tokenizers.sentencepiece_tokenizer.SentencePieceTokenizer


# Heads a task cannot do without, by task (parameter path prefixes, as `bert_jax.convert.imported`
# names the parameters a source may lack).
MLM_HEAD, NSP_HEAD, POOLER = "masked_lm/", "next_sentence/", "bert/pooler/"


@dataclasses.dataclass
class LoadedModel:
    """A model ready for inference, and the head parameters its source lacked."""
    params: Any                 # On the default device.
    config: BertConfig
    tokenizer: Tokenizer
    missing: list[str]          # Parameter paths freshly initialized (a BertModel has no heads).
    source: str
    # Its sentence-embedding head: a sentence-transformers directory's modules, a work directory's
    # run config; the defaults (mean pooling) for other sources.
    sentence: SentenceConfig = dataclasses.field(default_factory=SentenceConfig)


def load_model(path: str | os.PathLike, step: int | None = None, dtype: str | None = None
               ) -> tuple[Any, BertConfig, Tokenizer]:
    """(params, BertConfig, tokenizer) of a model, for inference: see `load_for_inference`."""
    loaded = load_for_inference(path, step, dtype)
    return loaded.params, loaded.config, loaded.tokenizer


def load_for_inference(path: str | os.PathLike, step: int | None = None, dtype: str | None = None
                       ) -> LoadedModel:
    """A model from a bert-jax work directory (its latest checkpoint, or `step`), a Hugging Face
    directory (`bert-jax export`'s, or any BERT `transformers` saved; or a repo id, found in the
    local Hugging Face cache: `bert_jax.convert.hub`) or a Google BERT checkpoint;
    the last two through `bert_jax.convert.sources.load_pretrained`. Heads the source lacks (a `BertModel` has
    none) are freshly initialized, logged, and listed in `missing`, so tasks that need them can
    refuse. `dtype` ("float32", "bfloat16", "float16") overrides the compute dtype.

    Raises:
      FileNotFoundError: if `path` does not exist or holds no model.
      ValueError: if it holds a model this project cannot run, or has no vocab.
    """

    path = resolve_model(path)  # a Hugging Face repo id: its directory in the local cache
    if is_workdir(path):

        # Read directly (not through the importer) to keep the run's layout: scanned layers
        # compile in a time that does not grow with depth.
        params, run_config, step = load_trained_params(path, step)
        config = bert_config(run_config)
        tokenizer = load_tokenizer(run_config.data.vocab_file, do_lower_case=run_config.data.do_lower_case)
        # A task's run (a Sentence-BERT bi-encoder) has no pretraining heads: tasks that read them refuse.
        missing = [head for head in (MLM_HEAD, NSP_HEAD) if head.rstrip("/") not in params]
        loaded = LoadedModel(params, config, tokenizer, missing, f"{path} (step {step})",
                             sentence_config(run_config))
    else:
        if step is not None:
            raise ValueError(f"{path} is not a work directory; --step applies to work directories only.")
        sentence = SentenceConfig()
        if is_sentence_transformers_directory(path):
            imported, sentence = load_sentence_transformers(path)
        else:
            imported = load_pretrained(path)
        if imported.vocab_file is None:
            raise ValueError(f"{path} has no vocab (vocab.txt or spiece.model) to tokenize with.")
        if imported.missing:
            logger.warning("%s", imported.describe())
        tokenizer = load_tokenizer(imported.vocab_file, do_lower_case=imported.do_lower_case)
        params = jax.device_put(complete_params(imported))
        loaded = LoadedModel(params, imported.config, tokenizer, imported.missing, imported.source, sentence)
    if dtype is not None:
        loaded.config = dataclasses.replace(loaded.config, dtype=dtype)
    return loaded


def require_heads(loaded: LoadedModel, prefixes: Sequence[str], task: str) -> None:
    """Raises ValueError if the source of `loaded` lacked a parameter under `prefixes`."""
    lacking = [p.rstrip("/") for p in prefixes if any(m.startswith(p) for m in loaded.missing)]
    if lacking:
        raise ValueError(f"{loaded.source} has no {' and no '.join(lacking)} parameters (it was "
                         f"saved without these heads, e.g. as a BertModel); {task} needs them.")

