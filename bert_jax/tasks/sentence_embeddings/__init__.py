"""Sentence-BERT (Reimers and Gurevych, 2019): one shared BERT encodes each text of a pair or
triplet to a sentence vector, and an objective over those vectors trains it. Each piece follows
sentence-transformers 6.2.0 exactly and is proved against it in `tests/unit` (training itself,
step by step, in tests/integration/test_sentence_training_parity.py):

  pooling            token vectors -> sentence vectors (mean, max, cls), optionally L2-normalized
  bi_encoder         the shared BERT with that pooling (and NLI's classifier), a Flax module
  similarity         cosine similarities as sentence-transformers computes them
  losses             NLI softmax, STS cosine regression, in-batch negatives ranking
  global_negatives   the ranking loss with the negatives of the global batch on a device mesh
  gradient_cache     GradCache: the exact gradient of a batch larger than memory, chunk by chunk
  objectives         NLI, STS and contrastive pairs as `training.objective.Objective`s for the loop
  evaluation         STS correlation, information retrieval metrics, NLI accuracy
  bm25_baseline      BM25 on the same retrieval evaluation, the number a trained encoder must beat
"""
