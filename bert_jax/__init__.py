"""BERT pretraining in JAX/Flax, and what is done with a trained BERT.

The functions a notebook calls are importable from here (`bert_jax.FillMask`, ...), each the
object at its module path below; README.md's "Python API" shows them at work. Each is imported
on first use, so `import bert_jax` stays cheap: it imports neither JAX nor TensorFlow, and the
`bert-jax` command (which imports this package first) answers `--help` at once.
"""

import importlib

# Public name -> "module:attribute", in the order of the stages.
_PUBLIC_NAMES = {
    # Text -> vocab -> shards.
    "train_vocab_from_files": "input_pipeline.vocabulary.wordpiece:train_vocab_from_files",
    "train_sentencepiece_from_files": "input_pipeline.vocabulary.sentencepiece:train_sentencepiece_from_files",
    "load_tokenizer": "input_pipeline.tokenizers.loading:load_tokenizer",
    "CreationConfig": "input_pipeline.creation.create_pretraining_data:CreationConfig",
    "create_pretraining_data": "input_pipeline.creation.create_pretraining_data:create_pretraining_data",
    # Pretraining.
    "load_config": "bert_jax.config.files:load_config",
    "train_and_evaluate": "bert_jax.training.loop:train_and_evaluate",
    # Fine-tuning.
    "finetune": "bert_jax.tasks.finetuning:finetune",
    "run_glue": "bert_jax.tasks.glue:run_glue",
    # Sentence embeddings (Sentence-BERT) on the same loop.
    "sentence_training_config": "bert_jax.tasks.sentence_embeddings.training_config:sentence_training_config",
    "train_sentence_embeddings": "bert_jax.tasks.sentence_embeddings.training:train_sentence_embeddings",
    "plot_metrics": "bert_jax.training.metrics_plot:plot_metrics",
    # Progress bars and lines of the long functions: "auto", "bar", "lines" or "off".
    "set_progress": "input_pipeline.progress:set_progress",
    # Checkpoints, ours and others'.
    "load_trained_params": "bert_jax.state.trained_params:load_trained_params",
    "export_to_huggingface": "bert_jax.convert.hf_export:export_to_huggingface",
    "import_to_workdir": "bert_jax.convert.workdir_import:import_to_workdir",
    "load_pretrained": "bert_jax.convert.sources:load_pretrained",
    # Inference and serving.
    "load_model": "bert_jax.inference.loading:load_model",
    "FillMask": "bert_jax.inference.fill_mask:FillMask",
    "NextSentencePredictor": "bert_jax.inference.next_sentence:NextSentencePredictor",
    "SentenceEncoder": "bert_jax.inference.encode:SentenceEncoder",
    "TextClassifier": "bert_jax.inference.text_classifier:TextClassifier",
    "TokenClassifier": "bert_jax.inference.token_classifier:TokenClassifier",
    "QuestionAnswerer": "bert_jax.inference.question_answerer:QuestionAnswerer",
    "export_serving": "bert_jax.inference.serving_export:export_serving",
    # Everything at once, on a CPU.
    "DemoOptions": "bert_jax.demos.pretraining:DemoOptions",
    "run_demo": "bert_jax.demos.pretraining:run_demo",
}

__all__ = list(_PUBLIC_NAMES)


def __getattr__(name: str) -> object:
    """Imports a public name's module on first use (PEP 562) and keeps the object here."""
    if name not in _PUBLIC_NAMES:
        # Imported here, not above: only a misspelled name needs it.
        import difflib

        close = difflib.get_close_matches(name, __all__, n=3)
        raise AttributeError(
            f"module 'bert_jax' has no attribute {name!r}"
            + (f"; did you mean {' or '.join(map(repr, close))}?" if close else ".")
            + " The public names are in bert_jax.__all__; the rest is in its modules "
            "(docs/architecture.md).", name=name)
    module, attribute = _PUBLIC_NAMES[name].split(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # Later lookups find it without calling __getattr__.
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
