"""The model card (README.md) of Hugging Face and sentence-transformers exports: front matter the
Hub reads, the shape (the parameter count that of the weights file), the shards' manifest and
the last metrics at the exported step, how to load it; every exported file readable by others."""

from __future__ import annotations

import json
import os
import re
import stat

import ml_collections
import pytest
import yaml
from safetensors.numpy import load_file

from bert_jax.convert.hf_export import export_to_huggingface
from bert_jax.convert.model_card import read_training_record
from bert_jax.convert.sentence_transformers import export_sentence_transformers
from bert_jax.model import BertConfig, SentenceConfig
from tests.support.export_fixtures import CONFIG, perturbed_params

MANIFEST = {"format": "bert-pretraining-tfrecord", "masking": "static", "num_instances": 12345,
            "num_documents": 678, "num_sentences": 9012, "input_characters": 3456789, "max_seq_length": 128,
            "statistics": {"mean_tokens": 97.25, "mean_predictions": 14.5, "random_next_fraction": 0.5,
                           "unk_fraction": 0.0021},
            "inputs": ["wiki-1.txt", "wiki-2.txt"]}


@pytest.fixture(scope="module")
def model(uncased_vocab_path):
    config = BertConfig(**{**CONFIG.__dict__, "vocab_size": 30522})
    return config, perturbed_params(config)


@pytest.fixture
def record(tmp_path):
    """The training record of step 20 of a work directory with a manifest beside its shards and
    reports at steps 10, 20 and 30 (a later checkpoint's), one line torn by a kill."""
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "manifest.json").write_text(json.dumps(MANIFEST))
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    rows = [{"step": step, "prefix": prefix, "loss": 9.0 - step / 10, "mlm_accuracy": step / 100}
            for step in (10, 20, 30) for prefix in ("train", "eval")]
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4')
    run_config = ml_collections.ConfigDict({"data": {"train_files": f"{shards}/*.tfrecord",
                                                     "phase2_train_files": "", "eval_files": ""}})
    return read_training_record(workdir, run_config, 20)


def _front_matter(card: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", card, re.DOTALL)
    assert match, card[:200]
    return yaml.safe_load(match.group(1))


def _modes(directory) -> dict[str, int]:
    return {os.path.relpath(os.path.join(root, name), directory): stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode)
            for root, dirs, files in os.walk(directory) for name in dirs + files}


def _exported_with_umask_022(export, *args, **kwargs):
    previous = os.umask(0o022)
    try:
        return export(*args, **kwargs)
    finally:
        os.umask(previous)


def test_huggingface_card(model, record, uncased_vocab_path, tmp_path):
    config, params = model
    out = _exported_with_umask_022(export_to_huggingface, params, config, uncased_vocab_path, True,
                                   tmp_path / "hf", record=record)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert _front_matter(card) == {"library_name": "transformers", "pipeline_tag": "fill-mask",
                                   "tags": ["fill-mask", "bert", "bert-jax"]}
    # What transformers' BertModel holds: the weights file's `bert.` tensors (the tests of
    # test_export.py load it into transformers with nothing missing).
    encoder = sum(value.size for name, value in load_file(out / "model.safetensors").items()
                  if name.startswith("bert."))
    assert f"| parameters (encoder and pooler) | {encoder:,} |" in card
    assert "| layers | 3 |" in card and "| hidden size | 48 |" in card
    assert "| training instances | 12,345 |" in card and "| documents | 678 |" in card
    assert "| mean tokens per instance | 97.25 |" in card and "`wiki-2.txt`" in card
    # The reports of the exported step 20, not those of step 30 after it.
    assert card.count("(step 20, `metrics.jsonl`)") == 2 and "step 30" not in card
    assert "| loss | 7 |" in card and "| mlm_accuracy | 0.2 |" in card
    assert "BertForPreTraining.from_pretrained(" in card and 'pipeline("fill-mask"' in card
    assert set(_modes(out).values()) == {0o644}, _modes(out)


def test_sentence_transformers_card(model, uncased_vocab_path, tmp_path):
    """Without a training record (a model imported, not trained here): no Training section."""
    config, params = model
    sentence = SentenceConfig(pooling="cls", normalize=True, max_seq_length=64, prompts={"query": "q: "},
                              default_prompt_name="query")
    out = _exported_with_umask_022(export_sentence_transformers, params, config, uncased_vocab_path, True,
                                   sentence, tmp_path / "st")
    card = (out / "README.md").read_text(encoding="utf-8")
    front = _front_matter(card)
    assert front["library_name"] == "sentence-transformers" and front["pipeline_tag"] == "sentence-similarity"
    assert "cls pooling, normalized to unit length" in card and "at most 64 tokens" in card
    assert "## Training" not in card and "SentenceTransformer(" in card and "- `query`: 'q: '" in card
    modes = _modes(out)
    assert {modes[name] for name in modes if os.path.isdir(out / name)} == {0o755}
    assert {modes[name] for name in modes if not os.path.isdir(out / name)} == {0o644}, modes
