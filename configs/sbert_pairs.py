"""Sentence-BERT on (anchor, positive[, negative]) pairs: MultipleNegativesRankingLoss, each
anchor ranked against every positive (and hard negative) of the global batch, gathered over all
data-parallel devices and hosts, scale 20. Larger batches give more negatives; GradCache
(sbert.mini_batch_size) fits a batch larger than memory. Evaluated by retrieval over the
evaluation pairs (MRR@10 kept best; Recall@k, NDCG@10 reported).

  bert-jax sbert-train --objective pairs --init-from all-MiniLM-L6-v2/ --workdir runs/pairs \\
      --train pairs.jsonl --eval dev_pairs.jsonl --set train.global_batch_size=256
"""

from bert_jax.tasks.sentence_embeddings.training_config import sentence_training_defaults


def get_config():
    return sentence_training_defaults("pairs")
