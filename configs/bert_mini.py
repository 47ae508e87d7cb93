"""BERT-Mini (4 layers, hidden 256, 4 heads; Turc et al., 2019).

Phase 1 of pretraining as in the BERT paper: sequence length 128, batch 256, AdamW at 1e-4 with
10k warm-up steps, 1M steps. Point it at shards and their vocab:

  bert-jax pretrain --config bert_mini --workdir runs/bert_mini \
      --set data.train_files=shards/ --set data.vocab_file=vocab.txt
"""

from bert_jax.config.defaults import default_config, model_size


def get_config():
    config = default_config()
    config.model.update(model_size("mini"))
    return config
