"""Fine-tuning tasks that reuse the training machinery: the objectives of the task heads
(`classification`, `tagging`, `question_answering`, on `head_objective`), their metrics
(`metrics`, `squad_metrics`; answers from QA logits are `inference.squad_postprocess`) and
Sentence-BERT (`sentence_embeddings`)."""
