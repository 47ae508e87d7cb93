"""Sentence-BERT on STS (Reimers and Gurevych, 2019): cosine similarity of the two sentences'
vectors regressed on the gold score / 5 (CosineSimilarityLoss), batch 16, AdamW at 2e-5, warm-up
over 10%. Evaluated by the Spearman correlation of cosine similarity and gold scores; the best kept.
SBERT trains NLI first, then STS from it (--init-from the NLI run's work directory).

  bert-jax sbert-train --objective sts --init-from runs/sbert_nli --workdir runs/sbert_sts \\
      --train stsbenchmark/train.tsv --format glue/stsb --eval stsbenchmark/dev.tsv --set sbert.epochs=4
"""

from bert_jax.tasks.sentence_embeddings.training_config import sentence_training_defaults


def get_config():
    return sentence_training_defaults("sts")
