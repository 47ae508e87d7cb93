"""Checkpoints of other formats to ours and back: Hugging Face directories (`hf_export`,
`hf_import`, `hf_tokenizer`), Google TensorFlow checkpoints (`google_checkpoint`), the one table
of names and conversions both formats and both directions read (`parameter_table`), the shared
importer types (`imported`), finding a source by what its path holds (`sources`) and
`bert-jax import` (`workdir_import`)."""
