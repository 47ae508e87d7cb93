"""Fine-tuning BERT-Large (and other large models): the GLUE recipe with what large models need
to be fine-tuned stably and to fit. Devlin et al. (2019, section 4.1) found BERT-Large
"sometimes unstable on small datasets" and restarted with other seeds: `--seeds 5`. Mosbach et
al. (2021, "On the Stability of Fine-tuning BERT") trace failed runs to vanishing gradients
early in training and advise bias-corrected Adam (optax's AdamW is), a small learning rate and
more steps: here 1e-5 for 5 epochs (the paper's sweep {2e-5, 3e-5, 5e-5} stays one
`--set optimizer.learning_rate=...` away). To save accelerator memory, activations are computed in
bfloat16 (parameters stay float32) and recomputed in the backward pass (`model.remat=dots`);
on a CPU set `--set model.dtype=float32`.
"""

from bert_jax.config.finetuning import default_finetuning_config


def get_config():
    config = default_finetuning_config()
    config.optimizer.learning_rate = 1e-5
    config.train.num_epochs = 5.0
    config.model.dtype = "bfloat16"
    config.model.remat = "dots"
    config.model.scan_layers = True  # 24 layers compile as fast as 2
    return config
