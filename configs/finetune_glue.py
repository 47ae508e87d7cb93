"""Fine-tuning as BERT's paper does it for GLUE (Devlin et al. 2019, section 4.1 and appendix
A.3): AdamW at 2e-5, weight decay 0.01, batch 32, 3 epochs, linear warm-up over the first 10%
of steps then linear decay, sequences of 128 tokens, dropout 0.1 (the checkpoint's), an
evaluation every epoch and the best one's parameters kept by the task's main metric.

The paper picks the learning rate among {2e-5, 3e-5, 5e-5} (and 5e-5 for BERT-Base) by the dev
set: `--set optimizer.learning_rate=3e-5`. Small tasks (RTE, MRPC, STS-B, CoLA) vary a lot
between seeds: `--seeds 5` reports the median and the spread. The model's shape comes from
`--init-from`.
"""

from bert_jax.config.finetuning import default_finetuning_config


def get_config():
    return default_finetuning_config()
