"""The CPU demo: a BERT-Tiny-sized model on the standard library's docstrings, a few minutes on
two cores. `bert-jax demo` fills in the data paths and the vocab size of its work directory."""

from bert_jax.experiment_config import default_config, model_size


def get_config():
    config = default_config()
    config.model.update(model_size("tiny"))
    config.model.vocab_size = 8000
    # A few minutes of training underfit a 1.3 MB corpus: dropout would only slow the descent
    # (measured: held-out MLM accuracy 0.131 after 1,500 steps with dropout 0.1 and lr 1e-3,
    # 0.138 after 1,000 without dropout at lr 3e-3; 6e-3 stalls at the unigram plateau).
    config.model.hidden_dropout_rate = 0.0
    config.model.attention_dropout_rate = 0.0
    config.data.max_seq_length = 128
    config.data.max_predictions_per_seq = 20
    config.data.shuffle_buffer = 2_000
    config.optimizer.learning_rate = 3e-3
    config.optimizer.warmup_steps = 100
    config.train.global_batch_size = 32
    config.train.num_steps = 1_000
    config.train.log_every = 100
    config.train.checkpoint_every = 250
    config.train.eval_every = 250
    config.train.eval_steps = 0
    return config
