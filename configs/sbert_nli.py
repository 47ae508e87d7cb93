"""Sentence-BERT on NLI (Reimers and Gurevych, 2019): a siamese BERT with mean pooling and a
softmax classifier over (u, v, |u - v|) for entailment, neutral and contradiction, batch 16, AdamW
at 2e-5, warm-up over 10% of one epoch. Evaluated by the classifier's accuracy; the best kept.

  bert-jax sbert-train --objective nli --init-from bert-base-uncased/ --workdir runs/sbert_nli \\
      --train snli_1.0_train.txt --format snli --eval snli_1.0_dev.txt
"""

from bert_jax.tasks.sentence_embeddings.training_config import sentence_training_defaults


def get_config():
    return sentence_training_defaults("nli")
