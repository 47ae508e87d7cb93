"""The public Python API: every name in `bert_jax.__all__` is the object at its module path
(written out again here, so a name pointing at the wrong object fails), unknown names raise a
clear AttributeError, `dir(bert_jax)` lists the names and the README lists exactly them. The calls
of the README's notebook example, on the tiny trained model: tests/integration/test_public_api_notebook.py.
(That `import bert_jax` imports no JAX needs a fresh interpreter: tests/integration/test_cli.py.)"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

import bert_jax

README = Path(__file__).resolve().parents[2] / "README.md"

# Public name -> the module that defines it.
EXPECTED = {
    "train_vocab_from_files": "input_pipeline.vocabulary.wordpiece",
    "train_sentencepiece_from_files": "input_pipeline.vocabulary.sentencepiece",
    "load_tokenizer": "input_pipeline.tokenizers.loading",
    "CreationConfig": "input_pipeline.creation.create_pretraining_data",
    "create_pretraining_data": "input_pipeline.creation.create_pretraining_data",
    "load_config": "bert_jax.config.files",
    "train_and_evaluate": "bert_jax.training.loop",
    "finetune": "bert_jax.tasks.finetuning",
    "run_glue": "bert_jax.tasks.glue",
    "sentence_training_config": "bert_jax.tasks.sentence_embeddings.training_config",
    "train_sentence_embeddings": "bert_jax.tasks.sentence_embeddings.training",
    "plot_metrics": "bert_jax.training.metrics_plot",
    "set_progress": "input_pipeline.progress",
    "load_trained_params": "bert_jax.state.trained_params",
    "export_to_huggingface": "bert_jax.convert.hf_export",
    "import_to_workdir": "bert_jax.convert.workdir_import",
    "load_pretrained": "bert_jax.convert.sources",
    "load_model": "bert_jax.inference.loading",
    "FillMask": "bert_jax.inference.fill_mask",
    "NextSentencePredictor": "bert_jax.inference.next_sentence",
    "SentenceEncoder": "bert_jax.inference.encode",
    "TextClassifier": "bert_jax.inference.text_classifier",
    "TokenClassifier": "bert_jax.inference.token_classifier",
    "QuestionAnswerer": "bert_jax.inference.question_answerer",
    "export_serving": "bert_jax.inference.serving_export",
    "DemoOptions": "bert_jax.demos.pretraining",
    "run_demo": "bert_jax.demos.pretraining",
}


def test_all_holds_the_public_names_once_each():
    assert sorted(bert_jax.__all__) == sorted(EXPECTED)
    assert len(set(bert_jax.__all__)) == len(bert_jax.__all__)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_public_name_is_the_object_defined_at_its_module_path(name):
    public = getattr(bert_jax, name)
    assert public is getattr(importlib.import_module(EXPECTED[name]), name)
    assert (public.__module__, public.__qualname__) == (EXPECTED[name], name)  # Defined there.
    assert public.__doc__


def test_an_unknown_name_raises_a_clear_attribute_error():
    with pytest.raises(AttributeError, match=r"^module 'bert_jax' has no attribute 'FilMask'; did you "
                       r"mean 'FillMask'\? The public names are in bert_jax.__all__") as error:
        bert_jax.FilMask  # noqa: B018
    assert error.value.name == "FilMask"
    with pytest.raises(AttributeError, match=r"no attribute 'qwertyuiop'\. The public names"):
        bert_jax.qwertyuiop  # noqa: B018
    assert not hasattr(bert_jax, "train")  # The old module, gone with the packages by role.
    with pytest.raises(ImportError, match="cannot import name 'qwertyuiop' from 'bert_jax'"):
        from bert_jax import qwertyuiop  # noqa: F401
    # `from bert_jax import` still finds the public names, and imports submodules past __getattr__.
    from bert_jax import FillMask, errors
    assert FillMask is bert_jax.FillMask
    assert errors is importlib.import_module("bert_jax.errors")


def fresh_bert_jax():
    """A new module object run from bert_jax/__init__.py, none of its names looked up yet (in this
    process `bert_jax` itself already holds those the other tests used)."""
    spec = importlib.util.spec_from_file_location("fresh_bert_jax", bert_jax.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dir_lists_the_public_names_before_any_is_used():
    fresh = fresh_bert_jax()
    assert not set(EXPECTED) & set(vars(fresh))  # Lazy: nothing is imported before it is used.
    listed = dir(fresh)
    assert set(EXPECTED) <= set(listed)
    assert listed == sorted(listed)
    assert fresh.FillMask is bert_jax.FillMask and "FillMask" in vars(fresh)


def test_the_readme_lists_exactly_the_public_names():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):text.index("\n## ", text.index("## Python API") + 1)]
    table = section[section.index("| --- |"):section.index("\n\n", section.index("| --- |"))]
    assert sorted(re.findall(r"`(\w+)`", table)) == sorted(bert_jax.__all__)
    # Every `bert_jax.NAME` the README shows is public or a module.
    for name in set(re.findall(r"\bbert_jax\.([A-Za-z]\w*)", text)):
        assert name in bert_jax.__all__ or importlib.util.find_spec(f"bert_jax.{name}"), name
