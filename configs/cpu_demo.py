"""The CPU demo: a BERT-Tiny-sized model on the standard library's docstrings, a few minutes on
two cores. `bert-jax demo` fills in the data paths of its work directory."""

from bert_jax.experiment_config import default_config, model_size


def get_config():
    config = default_config()
    config.model.update(model_size("tiny"))
    config.model.vocab_size = 8000  # Set from the trained vocab by the demo.
    config.data.max_seq_length = 128
    config.data.max_predictions_per_seq = 20
    config.data.shuffle_buffer = 2_000
    config.optimizer.learning_rate = 1e-3   # A tiny model on a small corpus tolerates a high rate.
    config.optimizer.warmup_steps = 100
    config.train.global_batch_size = 32
    config.train.num_steps = 1_500
    config.train.log_every = 100
    config.train.checkpoint_every = 500
    config.train.eval_every = 500
    config.train.eval_steps = 0
    return config
