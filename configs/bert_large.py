"""BERT-Large (24 layers, hidden 1024, 16 heads; 340M parameters).

Phase 1 of pretraining as in the BERT paper: sequence length 128, batch 256, AdamW at 1e-4 with
10k warm-up steps, 1M steps. Point it at shards and their vocab:

  bert-jax pretrain --config bert_large --workdir runs/bert_large \
      --set data.train_files=shards/ --set data.vocab_file=vocab.txt
"""

from bert_jax.config.defaults import default_config, model_size


def get_config():
    config = default_config()
    config.model.update(model_size("large"))
    return config
